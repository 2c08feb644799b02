# A randomized model-based test: random operations on two key servers that
# share an organisation, with the invariants checked after every step. A
# failure names its seed and the shortest sequence of steps found that
# still fails. OKEY_MODEL_SEEDS (e.g. 1,2,3) and OKEY_MODEL_STEPS choose the
# runs (make soak); OKEY_MODEL_SHRINK bounds the replays spent shrinking.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use OkeyModel;
use Time::HiRes ();

# The model drives real time and graceful restarts: once per suite run is
# enough, under the event MPM (the other MPMs' process models are covered
# by the fault and restart tests).
my $mpm = $ENV{OKEY_MPM} // 'event';
plan skip_all => "the model runs under the event MPM (this is $mpm)"
    if $mpm ne 'event' && !$ENV{OKEY_MODEL_SEEDS};

my @seeds = split /,/, ($ENV{OKEY_MODEL_SEEDS} // '1,2,3,4,5');
my $steps = $ENV{OKEY_MODEL_STEPS} // 45;
my $budget = $ENV{OKEY_MODEL_SHRINK} // 30;
plan tests => scalar @seeds;

for my $seed (@seeds) {
    my $ops = OkeyModel::draw_ops($seed, $steps);
    my $started = Time::HiRes::time();
    my $run = OkeyModel::run_ops($seed, $ops);
    diag(OkeyModel::summary($seed, $run->{steps}, $run->{stats})
         . sprintf(' in %.0f s', Time::HiRes::time() - $started));
    my $failure = $run->{failure};
    if (!$failure) {
        pass("seed $seed: $steps steps, every invariant held");
        next;
    }
    diag("seed $seed fails invariant $failure->{invariant} at step $failure->{step}: $failure->{message}");
    my ($shortest, $last, $replays) = OkeyModel::shrink($seed, $ops, $failure, $budget,
                                                        $ENV{OKEY_MODEL_VERBOSE} ? sub { diag($_[0]) } : undef);
    diag(sprintf('seed %d: shortest sequence found in %d replays (%d steps), failing %s: %s',
                 $seed, $replays, scalar @$shortest, $last->{invariant}, $last->{message}));
    diag(sprintf('  %2d. %s', $_ + 1, OkeyModel::describe($shortest->[$_]))) for 0 .. $#$shortest;
    fail("seed $seed: invariant $failure->{invariant} failed");
}
