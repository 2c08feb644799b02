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

my @seeds = split /,/, ($ENV{OKEY_MODEL_SEEDS} // '1,2,3,4,5');
my $steps = $ENV{OKEY_MODEL_STEPS} // 45;
my $budget = $ENV{OKEY_MODEL_SHRINK} // 20;
plan tests => scalar @seeds;

my $began = Time::HiRes::time();
my (%total, $total_steps, $total_faults);
for my $seed (@seeds) {
    my $ops = OkeyModel::draw_ops($seed, $steps);
    my $started = Time::HiRes::time();
    my $run = OkeyModel::run_ops($seed, $ops);
    diag(OkeyModel::summary($seed, $run->{steps}, $run->{stats})
         . sprintf(' in %.0f s', Time::HiRes::time() - $started));
    $total_steps += $run->{steps};
    $total_faults += $run->{stats}{faults};
    $total{$_} += $run->{stats}{ops}{$_} for keys %{ $run->{stats}{ops} };
    $total{"check $_"} += $run->{stats}{checks}{$_} for keys %{ $run->{stats}{checks} };
    my @failures = @{ $run->{failures} };
    if (!@failures) {
        pass("seed $seed: $steps steps, every invariant held");
        next;
    }
    diag("seed $seed fails invariant $_->{invariant}" . ($_->{kind} ? " ($_->{kind})" : "") . " first at step $_->{step}: $_->{message}") for @failures;
    for my $failure ($ENV{OKEY_MODEL_SHRINK_ALL} ? @failures : $failures[0]) {
        last if $budget <= 0;
        my ($shortest, $last, $replays) = OkeyModel::shrink($seed, $ops, $failure, $budget,
                                                            $ENV{OKEY_MODEL_VERBOSE} ? sub { diag($_[0]) } : undef);
        $budget -= $replays;
        diag(sprintf('seed %d: the shortest sequence found in %d replays (%d steps) fails invariant %s: %s',
                     $seed, $replays, scalar @$shortest, $last->{invariant}, $last->{message}));
        diag(sprintf('  %2d. %s', $_ + 1, OkeyModel::describe($shortest->[$_]))) for 0 .. $#$shortest;
        diag('      then the end of every run: each deadline passes, a reap at each server') if $last->{step} eq 'end';
    }
    my %seen;
    fail("seed $seed: invariant " . join(', ', grep { !$seen{$_}++ } map { $_->{invariant} } @failures) . ' failed');
}
diag(sprintf('model: %d seeds, %d steps, %d faults injected in %.0f s; ops: %s; checks: %s', scalar @seeds,
             $total_steps, $total_faults, Time::HiRes::time() - $began,
             join(' ', map { "$_=$total{$_}" } sort grep { !/^check / } keys %total),
             join(' ', map { my $k = $_; $k =~ s/^check //; (split / /, $k)[0] . "=$total{$_}" } sort grep { /^check / } keys %total)));
