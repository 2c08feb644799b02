# The randomized model test (t/95-model.t) again, its two key servers now
# sharing the Redis ledger as a fleet does (okey_modelr and okey_modelr2,
# t/conf/extra.conf.in): every invariant must hold when the cap, the lease,
# the one-time marks and the records live in Redis.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use OkeyModel;
use OkeyFleet qw(start_redis stop_redis redis_cli metrics wait_until);

my $mpm = $ENV{OKEY_MPM} // 'event';
plan skip_all => "the model runs under the event MPM (this is $mpm)"
    if $mpm ne 'event' && !$ENV{OKEY_MODEL_SEEDS};
plan skip_all => 'redis-server is not installed (scripts/deps)'
    unless grep { -x "$_/redis-server" } split /:/, $ENV{PATH};

my @servers = ('okey_modelr', 'okey_modelr2');
my @seeds = (11 .. 13);
plan tests => OkeyModel::seed_count(@seeds) + 2;

start_redis();
END { stop_redis() }
# Children that tried the Redis before it ran wait out a backoff on their
# own ledger: new children reach it on first use.
ok(OkeyModel::graceful(), 'a graceful restart once the Redis runs');

OkeyModel::configure(servers => \@servers, tenant => 'modelr', shared_ledger => 1);
OkeyModel::run_test(seeds => \@seeds, steps => 45, note => \&diag, pass => \&pass, fail => \&fail);

# The run went through the Redis: both servers say so, and it holds their
# records.
my @up = map { metrics(vhost_url($_, ''))->{openaikey_ledger_up} } @servers;
my @records = redis_cli('--scan', '--pattern', 'okey:*:u:*');
ok("@up" eq '1 1' && @records > 0, sprintf('both servers used the Redis ledger (up: %s; %d people recorded)',
                                          "@up", scalar @records));
