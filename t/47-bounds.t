# Bounds that hold across children and outlast any one process: the
# upstream places of OpenAIKeyMaxInFlight, shared by every child and freed
# when a holder is killed; logins that must ask the provider take one, and
# a failed discovery is not asked again at once; a reap lease that lapses
# when its holder stops, though its PID lives on.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use LWP::UserAgent ();
use MIME::Base64 qw(encode_base64url);
use POSIX ();
use Time::HiRes ();

plan tests => 22;

my $now = time;
my $control = LWP::UserAgent->new(timeout => 30);

sub org { return fake_state()->{tenants}{ $_[0] } || {} }

# Runs $code in a process of its own; collect() returns the line it printed.
sub start {
    my ($code) = @_;
    pipe(my $reader, my $writer) or die $!;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $reader;
        print {$writer} $code->();
        close $writer;
        POSIX::_exit(0);
    }
    close $writer;
    return [$pid, $reader];
}

sub collect {
    my ($started) = @_;
    my ($pid, $reader) = @$started;
    local $/;
    my $text = <$reader>;
    waitpid($pid, 0);
    return $text;
}

# Polls $cond for at most $seconds; true once it holds.
sub wait_for {
    my ($seconds, $cond) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    my $held = $cond->();
    while (!$held && Time::HiRes::time() < $deadline) {
        Time::HiRes::sleep(0.1);
        $held = $cond->();
    }
    return $held;
}

sub answer { my ($res) = @_; return join ' ', $res->code, $res->header('Retry-After') // '-' }

# Children a test kills on purpose, so that the runner forgives their death.
sub note_killed {
    open my $fh, '>>', Apache::Test::vars('t_logs') . '/killed-pids' or die $!;
    print {$fh} "$_\n" for @_;
    close $fh;
}

sub project {
    my ($id, $name) = @_;
    return { id => $id, object => 'organization.project', name => $name, status => 'active',
             archived_at => undef, created_at => 1000 };
}

sub account {
    my ($id, $name) = @_;
    return { object => 'organization.project.service_account', id => $id, name => $name,
             role => 'member', created_at => $now - 60 };
}

ok(first_reaps_done(qw(okey_flight okey_lease)), 'the reaps after startup are done');

# --- OpenAIKeyMaxInFlight holds for the key server, in all its children ------
# Two places: two issues wait on an OpenAI that does not answer; three more,
# in whatever child, are refused at once; a static file is still served.
reset_fake({ tenants => { flight => { projects => [project('proj_flight', 'flight-project')] } } });
{
    my $log_before = length error_log();
    add_fault(tenant => 'flight', method => 'POST', path => 'service_accounts$', hold => 'flight',
              delay => 15, times => 2);
    my $issue = sub {
        my $req = HTTP::Request->new(POST => vhost_url('okey_flight', '/issue'),
                                     ['Content-Type' => 'application/json', Accept => 'application/json',
                                      'X-Test-User' => encode_base64url('alice@example.com')], '{}');
        # Not browser(): a request its child died under is not sent again.
        return answer(LWP::UserAgent->new(timeout => 30)->request($req));
    };
    my @held = map { start($issue) } 1 .. 2;
    ok(wait_for(10, sub { (org('flight')->{in_flight} // 0) == 2 }), 'two issues wait on OpenAI');
    my @refused = map { collect($_) } map { start($issue) } 1 .. 3;
    is_deeply(\@refused, [('503 5') x 3], 'three more get 503 with Retry-After at once');
    my $static = browser()->get(main_url('/index.html'));
    is($static->code, 200, 'a static file is served meanwhile');
    is(org('flight')->{in_flight}, 2, 'while both issues still wait');

    # The children holding the places die without a word: their places
    # come back once httpd has seen them die.
    my %holders = map { $_ => 1 } substr(error_log(), $log_before) =~
        /\[pid (\d+)[^\]]*\].*OKEY008: took one of the 2 places/g;
    my @holders = sort keys %holders;
    ok(@holders && @holders <= 2, 'the children holding the places are known (' . join(', ', @holders) . ')');
    note_killed(@holders);
    is(scalar(grep { kill('KILL', $_) } @holders), scalar @holders, 'and killed');
    my $after = '';
    ok(wait_for(15, sub { $after = $issue->(); $after =~ /^200 / }),
       "an issue after their death gets a place and a key ($after)");
    release_fault('flight');
    collect($_) for @held;
}

# --- a login that must ask the provider takes a place -------------------------
reset_fake();
{
    add_fault(provider => 1, method => 'GET', path => 'openid-configuration$', hold => 'discovery',
              delay => 15, times => 1);
    my $login = sub { return answer(browser()->get(vhost_url('okey_login', '/'))) };
    my $held = start($login);
    ok(wait_for(10, sub { (fake_state()->{counters}{'oidc.discovery'} // 0) >= 1 }),
       'a login asks a provider that does not answer');
    my @refused = map { collect($_) } map { start($login) } 1 .. 3;
    is_deeply(\@refused, [('503 5') x 3], 'three more logins meanwhile get 503 with Retry-After at once');
    is(fake_state()->{counters}{'oidc.discovery'}, 1, 'without asking the provider');
    release_fault('discovery');
    like(collect($held), qr/^302 /, 'the waiting login goes on once the provider answers');
}

# --- a failed discovery is told again for a few seconds, not asked again ------
reset_fake();
{
    add_fault(provider => 1, method => 'GET', path => 'openid-configuration$', status => 500, times => 1);
    my $ua = browser();   # keep-alive: one child, which has never asked
    is($ua->get(vhost_url('okey_cold', '/'))->code, 502, 'a login whose discovery fails: 502');
    is($ua->get(vhost_url('okey_cold', '/'))->code, 502, 'the next login at once: 502 too');
    is(fake_state()->{counters}{'oidc.discovery'}, 1, 'without asking the provider again');
    my $code = 0;
    ok(wait_for(15, sub { $code = $ua->get(vhost_url('okey_cold', '/'))->code; $code == 302 }),
       "a few seconds later a login asks again, and goes on ($code)");
    is(fake_state()->{counters}{'oidc.discovery'}, 2, 'having asked once more in all');
}

# --- a reap whose holder stops: the lease lapses, another child reaps ----------
# A stopped child keeps its PID, as a reused PID would be kept by another
# process: only the lapse of time frees its claim.
reset_fake({ tenants => { lease => {
    projects => [project('proj_lease', 'lease-project')],
    accounts => { proj_lease => [map { account("svc_acct_e$_", sprintf('okey-%d-e%d@example.com', $now - 10, $_)) } 1 .. 5] } } } });
add_fault(tenant => 'lease', method => 'DELETE', path => 'svc_acct_e1$', status => 503, retry_after => 60);
# Only under event: worker and prefork serialise accept() with a mutex that
# an idle child holds while it waits for connections, so a stopped child
# may stop the whole server, which says nothing about leases.
my $stopped;
END { kill('CONT', $stopped) if $stopped }
SKIP: {
    skip 'a stopped child may hold the accept mutex of the ' . $ENV{OKEY_MPM} . ' MPM', 5
        if ($ENV{OKEY_MPM} // 'event') ne 'event';
    my $revoke = sub {
        my $req = HTTP::Request->new(POST => vhost_url('okey_lease', '/revoke'), [Accept => 'application/json']);
        return browser()->request($req)->code;
    };
    is($revoke->(), 202, 'a reap waiting out Retry-After 60 s: 202');
    my ($pid) = (error_log() =~ /OKEY031: reap of lease-project claimed by pid (\d+)/g)[-1];
    $stopped = $pid;
    ok($pid && kill('STOP', $pid), 'the child running it stops');
    my $code = 0;
    # The lease lasts 2 * 2 + 5 s from its last renewal; /revoke waits 4 s.
    ok(wait_for(40, sub { $code = $revoke->(); $code == 200 }), "another child then reaps ($code)");
    is(scalar @{ org('lease')->{accounts}{proj_lease} }, 0, 'and every expired key goes');
    kill('CONT', $pid);
    $stopped = undef;
    ok(wait_for(15, sub { error_log() =~ /OKEY037: the reap lease of lease-project lapsed/ }),
       'the resumed child finds its lease taken over, and records nothing');
}
