# Fault paths: racing first sign-ins, a project that vanishes, an upstream
# that pages for ever, repeated callback parameters, junk cookies, a child
# killed mid-reap, and a slow upstream with more sign-ins than places.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();
use URI ();

plan tests => 37;

my $JSON = JSON::PP->new->utf8;
my $now = time;

sub org { return fake_state()->{tenants}{ $_[0] } || {} }

# Runs each sub in a process of its own, all at once; returns their results
# (one line of text each) in order.
sub in_parallel {
    my @subs = @_;
    my @readers;
    for my $sub (@subs) {
        pipe(my $reader, my $writer) or die $!;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $reader;
            print {$writer} $sub->();
            close $writer;
            require POSIX;
            POSIX::_exit(0);
        }
        close $writer;
        push @readers, [$pid, $reader];
    }
    return map { my ($pid, $r) = @$_; local $/; my $text = <$r>; waitpid($pid, 0); $text } @readers;
}

# A browser that has been through the provider: its callback URL, not yet
# followed.
sub ready_callback {
    my ($vhost, $email) = @_;
    my $ua = browser();
    my $login = start_login($ua, $vhost);
    return ($ua, authorize($ua, $login->header('Location'), $email // 'alice@example.com'));
}

sub project {
    my ($id, $name, $created, %more) = @_;
    return { id => $id, object => 'organization.project', name => $name, status => 'active',
             archived_at => undef, created_at => $created, %more };
}

sub account {
    my ($id, $name) = @_;
    return { object => 'organization.project.service_account', id => $id, name => $name,
             role => 'member', created_at => $now - 60 };
}

sub revoke_json {
    my ($vhost) = @_;
    my $req = HTTP::Request->new(POST => vhost_url($vhost, '/revoke'), [Accept => 'application/json']);
    return browser()->request($req);
}

# --- four first sign-ins at once make one project -------------------------------
reset_fake();
add_fault(tenant => 'race', method => 'POST', path => '^/organization/projects$', delay => 1.5, times => 4);
{
    my @flows = map { [ready_callback('okey_race')] } 1 .. 4;
    my @codes = in_parallel(map { my $f = $_; sub { $f->[0]->get($f->[1])->code } } @flows);
    is_deeply(\@codes, [200, 200, 200, 200], 'four parallel first sign-ins all get a key');
    my $org = org('race');
    my @projects = grep { $_->{name} eq 'race-project' } @{ $org->{projects} };
    is(scalar @projects, 1, 'and only one project was created');
    is(scalar @{ $org->{accounts}{ $projects[0]{id} } || [] }, 4, 'which holds all four keys');
}

# --- servers that raced anyway: keys go to the oldest, reaps cover all ---------
reset_fake({ tenants => { race => {
    projects => [project('proj_newer', 'race-project', 2000), project('proj_older', 'race-project', 1000)],
    accounts => { proj_newer => [account('svc_acct_n1', sprintf('okey-%d-a@example.com', $now - 10))],
                  proj_older => [account('svc_acct_o1', sprintf('okey-%d-b@example.com', $now - 10))] } } } });
{
    # The children still hold the id of the project made above, now gone:
    # the creation answers 404, the id is forgotten and the oldest found.
    my ($ua, $callback) = ready_callback('okey_race');
    is($ua->get($callback)->code, 200, 'a sign-in after the project vanished still gets a key');
    my $org = org('race');
    is(scalar @{ $org->{accounts}{proj_older} }, 2, 'in the oldest project of the name');
    is($org->{counters}{'openai.create_project'} // 0, 0, 'without creating another');

    my $res = revoke_json('okey_race');
    my $summary = $JSON->decode($res->decoded_content);
    is($summary->{projects}, 2, 'a reap covers every project of the name');
    is($summary->{deleted}, 2, 'and deletes the expired keys in both');
}

# --- an archived project is replaced, once, for every child -------------------
{
    my $org = org('race');
    my $archived = project('proj_older', 'race-project', 1000, status => 'archived');
    merge_fake({ tenants => { race => { projects => [$archived] } } });
    my ($ua, $callback) = ready_callback('okey_race');
    is($ua->get($callback)->code, 200, 'a sign-in after the project was archived gets a key');
    $org = org('race');
    is($org->{counters}{'openai.create_project'}, 1, 'in a project made anew');
    my @codes = map { my ($u, $c) = ready_callback('okey_race'); $u->get($c)->code } 1 .. 3;
    is_deeply(\@codes, [200, 200, 200], 'and the next sign-ins, in whatever child, use it');
    is(org('race')->{counters}{'openai.create_project'}, 1, 'without making more');
}

# --- an upstream that pages for ever ---------------------------------------------
reset_fake({ tenants => { loop => {
    projects => [project('proj_loop', 'loop-project', 1000)], loop_accounts => JSON::PP::true,
    accounts => { proj_loop => [account('svc_acct_l1', 'okey-1-x@example.com'),
                                account('svc_acct_l2', 'okey-2-y@example.com')] } } } });
{
    my $res = revoke_json('okey_loop');
    my $summary = $JSON->decode($res->decoded_content);
    is($res->code, 200, 'a reap against a looping list ends');
    is($summary->{result}, 'upstream paging broken', 'and says why, as a class');
    is(org('loop')->{counters}{'openai.list_service_accounts'}, 2, 'after the second page repeats the cursor');
    is($summary->{deleted}, 0, 'deleting nothing from a list it could not finish');
    is($summary->{not_attempted}, 2, 'its expired keys are reported as not attempted');
}
merge_fake({ tenants => { loop => { loop_projects => JSON::PP::true, projects => [project('proj_l1', 'other', 1), project('proj_l2', 'other', 2)] } } });
{
    my ($ua, $callback) = ready_callback('okey_loop');
    my $res = $ua->get($callback);
    is($res->code, 502, 'a sign-in against a looping project list fails cleanly');
    cmp_ok(org('loop')->{counters}{'openai.list_projects'}, '<=', 3, 'after a bounded number of pages');
}

# --- a key the provider withdrew stops being trusted -------------------------
# The JWKS is kept as long as the provider's Cache-Control allows (here a
# second), an hour at most, and no longer.
reset_fake({ oidc => { jwks_max_age => 1 } });
{
    my $ua = browser();   # keep-alive: both callbacks reach the same child
    is(sign_in($ua, 'alice@example.com', vhost => 'okey_jwks')->code, 200, 'a sign-in with the published key');
    my $fetches = fake_state()->{counters}{'oidc.jwks'};
    merge_fake({ oidc => { withdrawn => ['rsa-1'] } });
    my ($login, $callback) = (start_login($ua, 'okey_jwks'));
    $callback = authorize($ua, $login->header('Location'), 'alice@example.com');
    # The cache's age is measured in whole seconds: let two of them pass.
    Time::HiRes::sleep(2.1);
    my $res = $ua->get($callback);
    is($res->code, 502, 'once the JWKS is older than its max-age, a token signed with a withdrawn key is refused');
    cmp_ok(fake_state()->{counters}{'oidc.jwks'}, '>', $fetches, 'after fetching the JWKS again');
}

# --- repeated callback parameters, in both orders -----------------------------
reset_fake();
{
    my @cases = (['code=X&code=%s&state=%s', 'a forged code before the real one'],
                 ['code=%s&code=X&state=%s', 'a forged code after the real one'],
                 ['code=%s&state=%s&state=%2$s', 'the state twice']);
    for my $case (@cases) {
        my ($ua, $callback) = ready_callback('okey');
        my %q = URI->new($callback)->query_form;
        my $url = vhost_url('okey', '/oauth2/callback?' . sprintf($case->[0], $q{code}, $q{state}));
        my $res = $ua->get($url);
        is($res->code, 400, "$case->[1]: 400");
    }
    is(fake_state()->{counters}{'oidc.token'} // 0, 0, 'and no code was exchanged');
}

# --- junk state cookies cost a bounded answer ---------------------------------
{
    my $junk = join '; ', map { sprintf 'okey_state_%016d=j', $_ } 1 .. 200;
    my $res = browser()->request(HTTP::Request->new(GET => vhost_url('okey', '/'), [Cookie => $junk]));
    my @cleared = grep { /Max-Age=0/ } $res->header('Set-Cookie');
    is($res->code, 302, 'a login with 200 junk state cookies still starts');
    # Each of the sixteen looked at is unreadable, so cleared; the rest are
    # left alone rather than decrypted and answered one by one.
    is(scalar @cleared, 16, 'and clears only the sixteen it looked at');
}

# --- a child killed mid-reap leaves no lasting claim -----------------------------
reset_fake({ tenants => { kill => {
    projects => [project('proj_kill', 'kill-project', 1000)],
    accounts => { proj_kill => [map { account("svc_acct_k$_", sprintf('okey-%d-k%d@example.com', $now - 10, $_)) } 1 .. 5] } } } });
add_fault(tenant => 'kill', method => 'DELETE', path => 'svc_acct_k1$', status => 503, retry_after => 60);
{
    my $first = revoke_json('okey_kill');
    is($first->code, 202, 'a reap waiting out Retry-After 60 s: 202');
    my ($pid) = (error_log() =~ /OKEY031: reap of kill-project claimed by pid (\d+)/g)[-1];
    ok($pid && kill('KILL', $pid), 'the child running it is killed');
    # The runner forgives the parent's note of this one child's death.
    open my $fh, '>>', Apache::Test::vars('t_logs') . '/killed-pids' or die $!;
    print {$fh} "$pid\n";
    close $fh;
    my $deadline = Time::HiRes::time + 30;
    my $res = revoke_json('okey_kill');
    while ($res->code == 202 && Time::HiRes::time < $deadline) {
        Time::HiRes::sleep(0.2);
        $res = revoke_json('okey_kill');
    }
    is($res->code, 200, 'the next call reaps once the lease lapses');
    is(scalar @{ org('kill')->{accounts}{proj_kill} }, 0, 'and every expired key goes');
}

# --- a slow upstream: sign-ins beyond the server's places get 503 at once ------
# OpenAIKeyMaxInFlight 1 holds for the key server whatever the MPM: one
# sign-in at a time waits on OpenAI, across all children.
reset_fake();
{
    ok(first_reaps_done('okey_busy'), 'the reap after startup is done');
    my $n = 12;
    my @flows = map { [ready_callback('okey_busy')] } 1 .. $n;
    add_fault(tenant => 'busy', method => 'POST', path => 'service_accounts$', delay => 1, times => $n);
    my @answers = in_parallel(map { my $f = $_; sub {
        my $res = $f->[0]->get($f->[1]);
        join ' ', $res->code, $res->header('Retry-After') // '-';
    } } @flows);
    my @busy = grep { /^503 5$/ } @answers;
    my @issued = grep { /^200 / } @answers;
    is(scalar(@busy) + scalar(@issued), $n, 'every sign-in got a key or a 503 with Retry-After (' . join(', ', @answers) . ')');
    cmp_ok(scalar @busy, '>=', 1, 'some sign-ins were refused');
    is(org('busy')->{max_in_flight}, 1, 'and OpenAI never had two of them at once');
    my $accounts = 0;
    $accounts += scalar @$_ for values %{ org('busy')->{accounts} || {} };
    is($accounts, scalar @issued, 'a key exists for each 200 and for nothing else');
}
