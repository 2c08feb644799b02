# Reaping: only expired keys of ours go, in parallel, through retries; the
# cleanup and status handlers; one sweep per interval across all children.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();

plan tests => 43;

my $JSON = JSON::PP->new->utf8;
my $now = time;
my $day = 86400;

sub account {
    my ($id, $name, $created) = @_;
    return { object => 'organization.project.service_account', id => $id, name => $name,
             role => 'member', created_at => $created // $now - 60 };
}


sub org { return fake_state()->{tenants}{ $_[0] } }
sub names_left { return [sort map { $_->{name} } @{ org($_[0])->{accounts}{"proj_$_[0]"} || [] }] }

# Calls within RECENT seconds of a reap's end report that reap: a fresh
# reap is asked for once the last one ended longer ago than that.
my $RECENT = 2;
sub status_of { return $JSON->decode(browser()->get(vhost_url($_[0], '/status'))->decoded_content) }
sub last_end {
    my ($vhost) = @_;
    my $end = status_of($vhost)->{last_reap}{end} // return 0;
    my ($y, $m, $d, $H, $M, $S) = $end =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/ or return 0;
    require Time::Local;
    return Time::Local::timegm($S, $M, $H, $d, $m - 1, $y);
}
sub past_recent {
    my ($vhost) = @_;
    my $deadline = Time::HiRes::time + 30;
    my $end = last_end($vhost);
    Time::HiRes::sleep(0.1) while Time::HiRes::time < $end + $RECENT + 1 && Time::HiRes::time < $deadline;
}

# POSTs /revoke. A reap that outlasts the handler's wait answers 202 with
# Retry-After; the helper then asks again until the reap's report comes.
sub revoke {
    my ($vhost, $accept, $no_wait, $first) = @_;
    past_recent($vhost) unless $no_wait;
    my $req = HTTP::Request->new(POST => vhost_url($vhost, '/revoke'));
    $req->header(Accept => $accept // 'application/json');
    my $res = browser()->request($req);
    $$first = $res if $first;
    my $deadline = Time::HiRes::time + 60;
    while ($res->code == 202 && Time::HiRes::time < $deadline) {
        Time::HiRes::sleep(0.2);
        $res = browser()->request($req);
    }
    return $res;
}

my @expired = map { account("svc_acct_old$_", sprintf('okey-%d-user%03d@example.com', $now - 100, $_)) } 1 .. 150;
my @live = map { account("svc_acct_live$_", sprintf('okey-%d-live%d@example.com', $now + 3600, $_)) } 1 .. 3;
my $outlived = account('svc_acct_outlived', sprintf('okey-%d-long@example.com', $now + 30 * $day), $now - 2 * $day);
my @foreign = (account('svc_acct_bot', 'ci-bot', $now - 30 * $day),
               account('svc_acct_garbage', 'okey-soon-x@example.com', $now - 30 * $day),
               account('svc_acct_legacy', 'legacy@example.com', $now - 2 * $day));

# --- what goes and what stays ------------------------------------------------------
seed_tenant('reap', 'reap-project', @expired, @live, $outlived, @foreign);
{
    my $res = revoke('okey_reap');
    is($res->code, 200, 'cleanup handler: 200');
    like($res->header('Content-Type'), qr{application/json}, 'JSON when asked for it');
    my $summary = $JSON->decode($res->decoded_content);
    # Deletes go a page at a time. The first page's last account is expired
    # and the cursor of the second: deleted before the second page was
    # asked for, the fake would have ended the list there, at 100.
    is($summary->{deleted}, 151, 'expired keys and one that outlived the expiration deleted');
    is($summary->{failed}, 0, 'no failures');
    is($summary->{listed}, 157, 'every account listed, across two pages');
    is($summary->{kept}, 6, 'six kept');
    is_deeply(names_left('reap'), [sort map { $_->{name} } @live, @foreign],
              'live keys, foreign names and (legacy off) bare addresses are kept');
    my $org = org('reap');
    is($org->{counters}{'openai.list_service_accounts'}, 2, 'pages of 100');
    cmp_ok($org->{max_in_flight}, '>=', 4, "deletes ran in parallel (max $org->{max_in_flight} in flight)");
    my $log = error_log();
    like($log, qr/\[openaikey:notice\].*reaped key: service_account=svc_acct_old7 email=user007\@example\.com project=reap-project \(proj_reap\) expires=\d{4}-/,
         'one audit line per reaped key');
    like($log, qr/OKEY030: reap of project reap-project \(1 projects\): listed 157, deleted 151, revoked 0 \(cap\) 0 \(policy\) 0 \(budget\), failed 0, kept 6, not attempted 0 in [\d.]+ s/,
         'one summary line per reap');

    # Right after it, another call reports that reap instead of reaping again.
    my $lists = org('reap')->{counters}{'openai.GET'};
    my $again = $JSON->decode(revoke('okey_reap', undef, 1)->decoded_content);
    is($again->{start}, $summary->{start}, 'a call right after a reap reports that reap');
    is(org('reap')->{counters}{'openai.GET'}, $lists, 'and lists nothing');
    unlike($log, qr/reaped key: service_account=svc_acct_(?:live|bot|garbage|legacy)/, 'nothing else reaped');
}

# --- legacy names with OpenAIKeyReapLegacy On -----------------------------------------
seed_tenant('legacy', 'legacy-project', account('svc_acct_l1', 'old@example.com', $now - 2 * $day),
     account('svc_acct_l2', 'recent@example.com', $now - 60), account('svc_acct_l3', 'ci-bot', $now - 9 * $day));
{
    my $summary = $JSON->decode(revoke('okey_legacy')->decoded_content);
    is($summary->{deleted}, 1, 'legacy on: one bare address older than the expiration deleted');
    is_deeply(names_left('legacy'), ['ci-bot', 'recent@example.com'], 'the recent one and the foreign one stay');
}

# --- 404, 429 with Retry-After, and a failing delete ------------------------------
seed_tenant('reap', 'reap-project', @expired[0 .. 9]);
add_fault(tenant => 'reap', method => 'DELETE', path => 'svc_acct_old1$', status => 404);
add_fault(tenant => 'reap', method => 'DELETE', path => 'svc_acct_old2$', status => 429, retry_after => 6);
add_fault(tenant => 'reap', method => 'DELETE', path => 'svc_acct_old3$', status => 503, times => 10);
{
    my $started = Time::HiRes::time;
    my $summary = $JSON->decode(revoke('okey_reap', undef, 0, \my $first)->decoded_content);
    my $took = Time::HiRes::time - $started;
    is($first->code, 202, 'a reap that outlasts the wait (Retry-After 6 s) is answered 202 at once');
    is($first->header('Retry-After'), 10, 'with Retry-After');
    is($summary->{deleted}, 8, 'a 404 is not counted as deleted, and 429 succeeds on retry');
    is($summary->{failed}, 1, 'a delete that keeps failing with 503 fails alone');
    is_deeply(names_left('reap'), [$expired[0]{name}, $expired[2]{name}],
              'the 404 one was already gone; the 503 one stays for the next reap');
    cmp_ok($took, '>=', 6, 'the retry waited for Retry-After');
    my $deletes = org('reap')->{counters}{'openai.DELETE'} // 0;
    is($deletes, 10 + 1 + 3, 'the 429 one retried once, the 503 one tried four times in all, no more');
    like(error_log(), qr/\[openaikey:debug\].*could not delete service account svc_acct_old3 \(user003\@example\.com\): OpenAI delete answered 503/,
         'the failure is logged at debug');
    like(error_log(), qr/\[openaikey:error\].*OKEY304: could not delete 1 service accounts \(by status: 503: 1\), e\.g\. svc_acct_old3/,
         'and summed up in one error line');
}

# --- a cleanup during a reap waits for it and reports it -----------------------------
seed_tenant('reap', 'reap-project', @expired[0 .. 4]);
add_fault(tenant => 'reap', method => 'GET', path => 'service_accounts$', delay => 1);
{
    # Two requests at once, from two processes.
    pipe(my $reader, my $writer) or die $!;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $reader;
        print {$writer} revoke('okey_reap')->decoded_content;
        close $writer;
        require POSIX;
        POSIX::_exit(0);
    }
    close $writer;
    # The second goes out once the first one's reap is under way.
    my $deadline = Time::HiRes::time + 20;
    until ($JSON->decode(browser()->get(vhost_url('okey_reap', '/status'))->decoded_content)->{last_reap}{running}
           || Time::HiRes::time > $deadline) {
        Time::HiRes::sleep(0.05);
    }
    my $second = $JSON->decode(revoke('okey_reap', undef, 1)->decoded_content);
    my $first = $JSON->decode(do { local $/; <$reader> });
    waitpid($pid, 0);
    is($first->{deleted} + $second->{deleted}, 10, 'both report the one reap that deleted five');
    is($first->{start}, $second->{start}, 'the same reap');
    is(org('reap')->{counters}{'openai.GET'}, 2, 'one listing (projects, then accounts): no second reap');
}

# --- text output and the listing failing ----------------------------------------------
seed_tenant('reap', 'reap-project', @expired[0 .. 1]);
add_fault(tenant => 'reap', method => 'GET', path => 'service_accounts$', status => 500, times => 1);
{
    my $res = revoke('okey_reap', 'text/plain');
    like($res->header('Content-Type'), qr{text/plain}, 'text by default');
    like($res->decoded_content, qr/reap of project reap-project: listed 0, deleted 0, failed 0, kept 0, not attempted 0; upstream answered 500/,
         'a failed listing says so, by its class only, and deletes nothing');
    is(scalar @{ names_left('reap') }, 2, 'nothing deleted');
}

# --- status --------------------------------------------------------------------------
{
    my $status = $JSON->decode(browser()->get(vhost_url('okey_reap', '/status'))->decoded_content);
    cmp_ok($status->{reaps}, '>=', 3, 'reaps counted');
    cmp_ok($status->{keys_reaped}, '>=', 160, 'reaped keys counted');
    cmp_ok($status->{reap_failures}, '>=', 2, 'failed reaps counted');
    is($status->{last_reap}{result}, 'upstream answered 500', 'the last result, as a class');
    unlike($JSON->encode($status), qr/injected fault|\.conf|\/tmp\//, 'no upstream text and no file path in the status');
    like($status->{last_reap}{end}, qr/^\d{4}-\d\d-\d\dT/, 'and when it ended');
    unlike($JSON->encode($status), qr/\@/, 'no address in the status');

    reset_fake();
    my $before = $JSON->decode(browser()->get(vhost_url('okey', '/status'))->decoded_content);
    sign_in(browser(), 'alice@example.com');
    add_fault(method => 'POST', path => 'service_accounts$', status => 500);
    sign_in(browser(), 'alice@example.com');
    my $after = $JSON->decode(browser()->get(vhost_url('okey', '/status'))->decoded_content);
    is($after->{keys_issued} - $before->{keys_issued}, 1, 'issued keys counted across children');
    is($after->{issue_failures} - $before->{issue_failures}, 1, 'issue failures counted');
}

# --- one sweep per interval, not one per child -------------------------------------------
{
    # okey_sweep reaps every 2 s; every reap starts by listing projects, and
    # the fake notes when. Wait, by polling, for four more of them.
    my $times = sub { fake_state()->{tenants}{sweep}{project_list_times} || [] };
    my $seen = @{ $times->() };
    my $deadline = Time::HiRes::time + 30;
    Time::HiRes::sleep(0.2) until @{ $times->() } >= $seen + 4 || Time::HiRes::time > $deadline;
    my @sweeps = @{ $times->() }[$seen .. $#{ $times->() }];
    my @gaps = map { $sweeps[$_] - $sweeps[$_ - 1] } 1 .. $#sweeps;
    my ($shortest) = sort { $a <=> $b } @gaps;
    cmp_ok(scalar @sweeps, '>=', 4, 'the sweeping server keeps reaping');
    # Whole-second timestamps and 200 ms ticks allow a gap just over 1 s;
    # one reap per child would come a tick or two apart.
    cmp_ok($shortest // 0, '>', 1, sprintf('sweeps at least a second apart (gaps %s s): one per interval, not one per child',
                                           join(', ', map { sprintf '%.2f', $_ } @gaps)));
    my $span = $sweeps[-1] - $sweeps[0];
    cmp_ok(scalar @sweeps - 1, '<=', $span / 2 + 1, sprintf('%d sweeps in %.1f s: about one per 2-second interval', scalar @sweeps, $span));
}
