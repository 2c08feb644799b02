# Bounds that hold across children and outlast any one process: a reap
# lease that lapses when its holder stops, though its PID lives on.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();

plan tests => 6;

my $JSON = JSON::PP->new->utf8;
my $now = time;

sub org { return fake_state()->{tenants}{ $_[0] } || {} }

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

ok(first_reaps_done('okey_lease'), 'the reap after startup is done');

# --- a reap whose holder stops: the lease lapses, another child reaps ----------
# A stopped child keeps its PID, as a reused PID would be kept by another
# process: only the lapse of time frees its claim.
reset_fake({ tenants => { lease => {
    projects => [project('proj_lease', 'lease-project')],
    accounts => { proj_lease => [map { account("svc_acct_e$_", sprintf('okey-%d-e%d@example.com', $now - 10, $_)) } 1 .. 5] } } } });
add_fault(tenant => 'lease', method => 'DELETE', path => 'svc_acct_e1$', status => 503, retry_after => 60);
{
    my $revoke = sub {
        my $req = HTTP::Request->new(POST => vhost_url('okey_lease', '/revoke'), [Accept => 'application/json']);
        return browser()->request($req)->code;
    };
    is($revoke->(), 202, 'a reap waiting out Retry-After 60 s: 202');
    my ($pid) = (error_log() =~ /OKEY031: reap of lease-project claimed by pid (\d+)/g)[-1];
    ok($pid && kill('STOP', $pid), 'the child running it stops');
    my $code = 0;
    # The lease lasts 2 * 2 + 5 s from its last renewal; /revoke waits 4 s.
    ok(wait_for(40, sub { $code = $revoke->(); $code == 200 }), "another child then reaps ($code)");
    is(scalar @{ org('lease')->{accounts}{proj_lease} }, 0, 'and every expired key goes');
    kill('CONT', $pid);
    ok(wait_for(15, sub { error_log() =~ /OKEY037: the reap lease of lease-project lapsed/ }),
       'the resumed child finds its lease taken over, and records nothing');
}
