# Answers that leave the outcome unclear: a creation whose connection drops,
# creations answered badly after the account was made, and deletes of what
# someone else already deleted. One sign-in makes at most one account, an
# account nobody holds is found again, and one key is one deletion.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes ();

plan tests => 26;

my $JSON = JSON::PP->new->utf8;
my $now = time;

sub accounts { return fake_state()->{openai}{accounts}{proj_personal} || [] }
sub tenant_ids { return [sort map { $_->{id} } @{ fake_state()->{tenants}{ $_[0] }{accounts}{"proj_$_[0]"} || [] }] }

sub account {
    my ($id, $email, $created, $expires) = @_;
    return { object => 'organization.project.service_account', id => $id,
             name => 'okey-' . ($expires // $now + 3600) . "-$email", role => 'member',
             created_at => $created // $now - 600 };
}

# The fakes keep their connections open, so that the module reuses them.
sub keep_upstream_connections {
    my $res = LWP::UserAgent->new(timeout => 30)->post(main_url('/fake/keep-alive'));
    die 'keep-alive failed: ' . $res->status_line unless $res->is_success;
}

# Waits, within a bound, until none of @ids is left upstream.
sub wait_until_gone {
    my ($deadline, @ids) = @_;
    my %wanted = map { $_ => 1 } @ids;
    my @left = @ids;
    while (@left && time < $deadline) {
        Time::HiRes::sleep(0.25);
        @left = grep { $wanted{ $_->{id} } } @{ accounts() };
    }
    return scalar @left;
}

# One sample of a counter in $vhost's /metrics.
sub metric {
    my ($vhost, $name, $label) = @_;
    my $text = browser()->get(vhost_url($vhost, '/metrics'))->decoded_content;
    my $labels = $label ? qr/\{server="[^"]+",\Q$label\E\}/ : qr/\{server="[^"]+"\}/;
    my ($value) = $text =~ /^\Q$name\E$labels (\d+)$/m;
    return $value // 0;
}

ok(first_reaps_done(qw(okey okey_gone)), 'the reaps after startup are done');

# --- a creation whose kept-alive connection drops is not sent again ----------------
# The upstream makes the account and closes the connection without an
# answer. A client that sent it again on a new connection would make a
# second account, whose key the person gets while the first lives on.
reset_fake();
keep_upstream_connections();
add_fault(method => 'POST', path => 'service_accounts$', done => 1, drop => 1);
{
    my $res = sign_in(browser(), 'alice@example.com');
    my $made = accounts();
    is(scalar @$made, 1, 'a creation whose connection closed unanswered was sent once');
    is($res->code, 502, 'and the sign-in says the key could not be made');
    my $name = $made->[0]{name} // 'none';
    like(error_log(), qr/OKEY102: creation of service account \Q$name\E in project proj_personal got no clear answer/,
         'the attempt is left to the orphan check by its name');
    is(wait_until_gone(time + 3 * upstream_timeout() + 30, map { $_->{id} } @$made), 0,
       'which deletes the account nobody holds');
}

# --- creations answered badly after the account was made ----------------------------
# A 5xx, JSON that does not parse, or a 200 without the key: the account may
# exist, and nobody holds its key. The reaper looks for each by name.
reset_fake();
my @unclear = (['alice@example.com', { status => 500 }, 'a 500'],
               ['carol@example.org', { status => 200, body => '{"object": "organization.project.service_account", "id": ' },
                'malformed JSON'],
               ['dave@corp.example', { without => 'api_key' }, 'a 200 without the key']);
add_fault(method => 'POST', path => 'service_accounts$', done => 1, %{ $_->[1] }) for @unclear;
for my $case (@unclear) {
    my ($email, undef, $what) = @$case;
    my $res = sign_in(browser(), $email, $email =~ /corp\.example$/ ? (hd => 'corp.example') : ());
    is($res->code, 502, "$what after the account was made: 502");
}
{
    my @made = @{ accounts() };
    is(scalar @made, 3, 'the upstream made all three accounts');
    my $log = error_log();
    is(scalar(grep { my $n = $_->{name}; $log =~ /OKEY102: creation of service account \Q$n\E in project proj_personal got no clear answer/ } @made),
       3, 'each is left to the orphan check by its name');
    my $left = wait_until_gone(time + 3 * upstream_timeout() + 30, map { $_->{id} } @made);
    is($left, 0, 'once the orphan check is due, the reaper deletes all three');
    $log = error_log();
    for my $account (@made) {
        like($log, qr/OKEY301: reaped key: service_account=\Q$account->{id}\E .*its creation got no clear answer/,
             "and says of $account->{id} that its creation got no clear answer");
    }
}

# --- a reap whose deletes find keys already gone -------------------------------------
# Someone else deletes an expired key and a key beyond the cap just before
# the reap does: the reap's deletes answer 404. Neither is counted, audited
# or reported as this reap's deletion.
seed_tenant('gone', 'gone-project',
            (map { account("svc_g_exp$_", 'alice@example.com', $now - 7200, $now - 60) } 1 .. 2),
            (map { account("svc_g_alice$_", 'alice@example.com', $now - 900 + $_) } 1 .. 4));
add_fault(tenant => 'gone', method => 'DELETE', path => $_, done => 1, status => 404,
          body => '{"error":{"message":"No such service account","type":"invalid_request_error"}}')
    for 'svc_g_exp1$', 'svc_g_alice1$';
# This reap's own delete of another answers 503 after deleting it: the retry
# finds it gone, and it is this reap's.
add_fault(tenant => 'gone', method => 'DELETE', path => 'svc_g_exp2$', done => 1, status => 503);
{
    my ($reaped, $capped) = (metric('okey_gone', 'openaikey_keys_reaped_total'),
                             metric('okey_gone', 'openaikey_keys_revoked_total', 'by="cap"'));
    my $res = reap_now('okey_gone');
    is($res->code, 200, 'a reap ran');
    is_deeply(tenant_ids('gone'), [qw(svc_g_alice3 svc_g_alice4)],
              'the expired keys and the oldest beyond the cap are gone, two of them deleted by someone else');
    is($JSON->decode($res->decoded_content)->{deleted}, 1,
       'the reap reports the one expired key it deleted, though its delete answered 503');
    is(metric('okey_gone', 'openaikey_keys_reaped_total') - $reaped, 1, 'the metrics count one reaped key');
    is(metric('okey_gone', 'openaikey_keys_revoked_total', 'by="cap"') - $capped, 1,
       'and one revoked by the cap');
    my $log = error_log();
    is(scalar(() = $log =~ /OKEY30[15]: [a-z]+ key: service_account=svc_g_/g), 2,
       'two audit lines, one per key the reap deleted');
    unlike($log, qr/service_account=svc_g_(?:exp1|alice1) /, 'none for a key someone else deleted');
}

# --- a sign-in's cap finds the oldest key already gone ---------------------------------
seed_tenant('gone', 'gone-project', map { account("svc_h$_", 'alice@example.com', $now - 900 + $_) } 1 .. 2);
{
    is(reap_now('okey_gone')->code, 200, 'a reap fills the index of live keys');
    add_fault(tenant => 'gone', method => 'DELETE', path => 'svc_h1$', done => 1, status => 404,
              body => '{"error":{"message":"No such service account","type":"invalid_request_error"}}');
    my $capped = metric('okey_gone', 'openaikey_keys_revoked_total', 'by="cap"');
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_gone');
    is($page->code, 200, 'a third key for alice is issued');
    is_deeply([grep { /svc_h/ } @{ tenant_ids('gone') }], [qw(svc_h2)], 'her oldest key is gone');
    is(metric('okey_gone', 'openaikey_keys_revoked_total', 'by="cap"') - $capped, 0,
       'but it was deleted by someone else, so the cap revoked nothing');
    unlike(error_log(), qr/OKEY105: revoked key: service_account=svc_h1 /, 'and no audit line says it did');
}
