# /metrics: Prometheus text format 0.0.4, the counters of /status and more,
# per key server, with nothing secret or path-like in it.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use JSON::PP ();

plan tests => 13;

my $JSON = JSON::PP->new->utf8;

sub metrics {
    my $res = browser()->get(vhost_url('okey', '/metrics'));
    my %value;
    for my $line (split /\n/, $res->decoded_content) {
        next if $line =~ /^#/;
        my ($series, $number) = $line =~ /^(\S+) (\S+)$/ or next;
        $value{$series} = $number;
    }
    return ($res, \%value);
}

sub series {
    my ($values, $name, %labels) = @_;
    my ($key) = grep { /^\Q$name\E\{/ && do { my $k = $_; !grep { $k !~ /\Q$_="$labels{$_}"\E/ } keys %labels } }
                keys %$values;
    return defined $key ? $values->{$key} : undef;
}

reset_fake();
my ($res, $before) = metrics();
is($res->code, 200, '/metrics answers');
is($res->header('Content-Type'), 'text/plain; version=0.0.4; charset=utf-8', 'in the text exposition format 0.0.4');
my @lines = grep { !/^#/ } split /\n/, $res->decoded_content;
is(scalar(grep { !/^openaikey_[a-z_]+\{server="[^"]+"(,[a-z]+="[a-z_]+")?\} -?[0-9.]+$/ } @lines), 0,
   'every sample is a named series with a server label and a number');
my @missing = grep { my $n = $_; !grep { /^\Q$n\E\{/ } @lines }
              qw(openaikey_keys_issued_total openaikey_sign_ins_denied_total openaikey_upstream_errors_total
                 openaikey_keys_reaped_total openaikey_keys_revoked_total openaikey_reaps_total
                 openaikey_reap_failures_total openaikey_last_reap_timestamp_seconds
                 openaikey_last_reap_duration_seconds);
is("@missing", '', 'every series DESIGN.md names is there');

is(sign_in(browser(), 'alice@example.com')->code, 200, 'a key issued');
is(sign_in(browser(), 'mallory@elsewhere.example')->code, 403, 'a sign-in denied');
add_fault(method => 'POST', path => 'service_accounts$', status => 500);
is(sign_in(browser(), 'alice@example.com')->code, 502, 'and one failed upstream');

my ($after_res, $after) = metrics();
is(series($after, 'openaikey_keys_issued_total') - series($before, 'openaikey_keys_issued_total'), 1,
   'issued keys counted');
is(series($after, 'openaikey_sign_ins_denied_total', reason => 'not_allowed')
   - series($before, 'openaikey_sign_ins_denied_total', reason => 'not_allowed'), 1, 'denials counted by reason');
is(series($after, 'openaikey_upstream_errors_total', endpoint => 'service_accounts')
   - series($before, 'openaikey_upstream_errors_total', endpoint => 'service_accounts'), 1,
   'upstream errors counted by endpoint');
my $status = $JSON->decode(browser()->get(vhost_url('okey', '/status'))->decoded_content);
is(series($after, 'openaikey_keys_issued_total'), $status->{keys_issued}, 'the same count as /status');
unlike($after_res->decoded_content, qr{/tmp|\.conf|test-admin-key|test-secret|correct horse|injected fault|\@},
       'no path, secret, upstream text or address in it');
my $post = browser()->post(vhost_url('okey', '/metrics'));
ok($post->code == 405 && $post->header('Allow') eq 'GET, HEAD', 'other methods: 405 with Allow');
