# Graceful restarts while sign-ins are under way: every sign-in started
# before a restart finishes after it, and no child crashes (the runner then
# checks the error log for crashes and for children that had to be killed).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();

# Half the rounds on a key server with a passphrase, half on one without:
# its random key must survive graceful restarts too.
my $restarts = 10;
plan tests => $restarts + 6;

my $vars = Apache::Test::vars();
my @defines = map { ('-D', $_) } split ' ', ($vars->{httpd_defines} // '');
my @httpd = ($vars->{httpd}, '-d', $vars->{serverroot}, '-f', "$vars->{t_conf}/httpd.conf",
             '-D', 'APACHE2', '-D', 'APACHE2_4', '-D', 'PERL_USEITHREADS');

sub generations { my $n = () = error_log() =~ /resuming normal operations/g; return $n }

# Sends a graceful restart and waits, by polling the log, for it to finish.
sub graceful {
    my $before = generations();
    system(@httpd, '-k', 'graceful') == 0 or die "graceful restart failed: $?";
    my $deadline = Time::HiRes::time + 60;
    Time::HiRes::sleep(0.1) until generations() > $before || Time::HiRes::time > $deadline;
    return generations() > $before;
}

reset_fake();
my $finished = 0;
for my $round (1 .. $restarts) {
    my $vhost = $round % 2 ? 'okey' : 'okey_nopass';
    my $ua = browser();
    my $login = start_login($ua, $vhost);
    my $callback = authorize($ua, $login->header('Location'), 'alice@example.com');
    my $restarted = graceful();
    # A fresh connection: the one before the restart may belong to an old child.
    $ua->conn_cache->drop;
    my $res = $ua->get($callback);
    ok($restarted && $res->code == 200, "round $round ($vhost): restarted, and the sign-in started before it finished");
    $finished++ if $res->code == 200;
}
is(fake_state()->{counters}{'openai.create_service_account'}, $finished, 'one key per finished sign-in');
unlike(error_log(), qr/exit signal|still did not exit/, 'no child crashed or hung');

# --- a reap cut short by a restart failed nothing ------------------------------------
# A reap waiting out a long Retry-After is cancelled when its child is told
# to stop: what it had not tried yet is "not attempted", not a failure.
{
    my $JSON = JSON::PP->new->utf8;
    my $status = sub { $JSON->decode(browser()->get(vhost_url('okey_kill', '/status'))->decoded_content) };
    reset_fake({ tenants => { kill => {
        projects => [{ id => 'proj_kill', object => 'organization.project', name => 'kill-project',
                       status => 'active', created_at => 1 }],
        accounts => { proj_kill => [map { { id => "svc_acct_c$_", name => sprintf('okey-%d-c%d@example.com', time - 10, $_),
                                            created_at => time - 60 } } 1 .. 3] } } } });
    add_fault(tenant => 'kill', method => 'DELETE', path => 'svc_acct_c1$', status => 503, retry_after => 60);
    my $failures = $status->()->{reap_failures};
    my $res = browser()->request(HTTP::Request->new(POST => vhost_url('okey_kill', '/revoke'),
                                                    [Accept => 'application/json']));
    is($res->code, 202, 'a reap waiting out Retry-After 60 s is under way');
    ok(graceful(), 'a graceful restart meanwhile');
    my $deadline = Time::HiRes::time + 30;
    my $last = $status->()->{last_reap};
    until (($last->{result} // '') eq 'cancelled' || Time::HiRes::time > $deadline) {
        Time::HiRes::sleep(0.1);
        $last = $status->()->{last_reap};
    }
    is($last->{result}, 'cancelled', 'the reap was cancelled by its child\'s stop');
    ok($last->{not_attempted} >= 1 && $last->{failed} == 0 && $status->()->{reap_failures} == $failures,
       "what it had not tried is not attempted ($last->{not_attempted}), not failed, and no reap failure is counted");
}
