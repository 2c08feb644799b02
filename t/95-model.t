# A randomized model-based test: random operations on two key servers that
# share an organisation, with the invariants checked after every step. A
# failure names its seed and the shortest sequence of steps found that
# still fails. OKEY_MODEL_SEEDS (e.g. 1,2,3) and OKEY_MODEL_STEPS choose the
# runs (make soak); OKEY_MODEL_SHRINK bounds the replays spent shrinking
# (over the whole file: twenty, about three minutes); OKEY_MODEL_SHRINK_ALL=1
# shrinks every way an invariant failed, not only each seed's first.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use OkeyModel;
use Time::HiRes ();

# The model drives real time and graceful restarts: once per suite run is
# enough, under the event MPM (the fault and restart tests cover the other
# MPMs' process models); OKEY_MODEL_SEEDS runs it under any.
my $mpm = $ENV{OKEY_MPM} // 'event';
plan skip_all => "the model runs under the event MPM (this is $mpm)"
    if $mpm ne 'event' && !$ENV{OKEY_MODEL_SEEDS};

my @seeds = (1 .. 5);
plan tests => OkeyModel::seed_count(@seeds);
OkeyModel::run_test(seeds => \@seeds, steps => 45, note => \&diag, pass => \&pass, fail => \&fail);
