# The scenarios of bench/faults, run inside the Apache::Test server; each
# prints its figures with diag. Copied into t/ by bench/faults only.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();

plan tests => 5;

my $JSON = JSON::PP->new->utf8;
my $vars = Apache::Test::vars();
my @httpd = ($vars->{httpd}, '-d', $vars->{serverroot}, '-f', "$vars->{t_conf}/httpd.conf",
             '-D', 'APACHE2', '-D', 'APACHE2_4', '-D', 'PERL_USEITHREADS');

sub generations { my $n = () = error_log() =~ /resuming normal operations/g; return $n }
sub wait_until { my ($cond, $seconds) = @_; my $end = Time::HiRes::time + ($seconds // 60);
                 Time::HiRes::sleep(0.05) until $cond->() || Time::HiRes::time > $end; return $cond->() }
sub graceful { my $before = generations(); system(@httpd, '-k', 'graceful') == 0 or return 0;
               return wait_until(sub { generations() > $before }) }
sub org { return fake_state()->{tenants}{ $_[0] } || {} }
sub accounts { my ($o) = @_; my $n = 0; $n += @$_ for values %{ $o->{accounts} || {} }; return $n }

sub children_rss {
    my ($parent) = slurp_pid();
    my $kb = 0;
    for my $pid (split /\n/, `pgrep -P $parent`) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}
sub slurp_pid { open my $fh, '<', "$vars->{t_logs}/httpd.pid" or die $!; my $pid = <$fh>; chomp $pid; return $pid }

# --- graceful restarts under load ----------------------------------------------
reset_fake();
{
    my $url = vhost_url('okey', '/');
    my $pid = open(my $wrk, '-|', 'wrk', '-t2', '-c16', '-d12s', $url) // die "wrk: $!";
    Time::HiRes::sleep(1);
    my $restarts = 0;
    for (1 .. 10) { $restarts += graceful() ? 1 : 0 }
    my $out = do { local $/; <$wrk> };
    close $wrk;
    my ($requests) = $out =~ /(\d+) requests in/;
    my ($non3xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    my ($errors) = $out =~ /Socket errors: (.*)/;
    diag(sprintf 'graceful restarts under wrk load: %d of 10 restarts, %d login requests, %d answered other than 2xx/3xx, socket errors: %s',
                 $restarts, $requests // 0, $non3xx // 0, $errors // 'none');
    ok($restarts == 10, 'restarts under load');
}

# --- upstream faults at sign-in -------------------------------------------------
{
    my @faults = (['429 Retry-After 30', status => 429, retry_after => 30],
                  ['500', status => 500], ['401', status => 401],
                  ['garbage', status => 200, body => 'this is not json'],
                  ['hang past the timeout', delay => 3]);
    my @lines;
    for my $fault (@faults) {
        my ($name, %f) = @$fault;
        reset_fake();
        add_fault(method => 'POST', path => 'service_accounts$', %f);
        my $res = sign_in(browser(), 'alice@example.com');
        Time::HiRes::sleep(1.5) if $f{delay};   # let the hung creation finish upstream
        my $shown = $res->code == 200 ? 1 : 0;
        my $orphans = accounts(fake_state()->{openai}) - $shown;
        # An orphan is the reaper's to delete, three timeouts after the creation.
        my $start = Time::HiRes::time();
        Time::HiRes::sleep(0.25) while $orphans
            && accounts(fake_state()->{openai}) > $shown && Time::HiRes::time() - $start < 30;
        my $left = accounts(fake_state()->{openai}) - $shown;
        push @lines, sprintf('%s: %d, retry-after %s, orphan accounts %d%s', $name, $res->code,
                             $res->header('Retry-After') // '-', $orphans,
                             !$orphans ? '' : $left ? ", $left still there after 30 s"
                             : sprintf(', deleted by the reaper %.1f s later', Time::HiRes::time() - $start));
    }
    diag("upstream faults at sign-in: $_") for @lines;
    ok(1, 'upstream faults');
}

# --- a child killed mid-reap ------------------------------------------------------
reset_fake({ tenants => { kill => {
    projects => [{ id => 'proj_kill', object => 'organization.project', name => 'kill-project', status => 'active', created_at => 1 }],
    accounts => { proj_kill => [map { { id => "svc_acct_k$_", name => sprintf('okey-%d-k%d@example.com', time - 10, $_), created_at => time - 60 } } 1 .. 5] } } } });
add_fault(tenant => 'kill', method => 'DELETE', path => 'svc_acct_k1$', status => 503, retry_after => 60);
{
    my $revoke = sub { browser()->request(HTTP::Request->new(POST => vhost_url('okey_kill', '/revoke'), [Accept => 'application/json'])) };
    my $first = $revoke->();
    my ($pid) = (error_log() =~ /OKEY031: reap of kill-project claimed by pid (\d+)/g)[-1];
    kill 'KILL', $pid;
    open my $fh, '>>', "$vars->{t_logs}/killed-pids" or die $!;
    print {$fh} "$pid\n";
    close $fh;
    my $killed = Time::HiRes::time;
    my $res;
    wait_until(sub { $res = $revoke->(); $res->code == 200 }, 60);
    diag(sprintf 'kill -9 of the reaping child: first call %d, a new reap reported %.1f s after the kill (%s)',
                 $first->code, Time::HiRes::time - $killed, $res->code);
    ok($res->code == 200, 'kill mid-reap');
}

# --- a slow upstream with many sign-ins in flight -----------------------------------
reset_fake();
{
    my $n = 40;
    my @flows = map { my $ua = browser(); my $login = start_login($ua);
                      [$ua, authorize($ua, $login->header('Location'), 'alice@example.com')] } 1 .. $n;
    add_fault(method => 'POST', path => 'service_accounts$', delay => 1.5, times => $n);
    my @pids;
    pipe(my $reader, my $writer) or die $!;
    for my $flow (@flows) {
        my $pid = fork // die $!;
        if (!$pid) {
            close $reader;
            # A connection kept alive since the authorization may have timed out.
            $flow->[0]->conn_cache(undef);
            my $res = $flow->[0]->get($flow->[1]);
            my $internal = ($res->header('Client-Warning') // '') eq 'Internal response';
            print {$writer} $res->code, $internal ? ' (client: ' . $res->message . ')' : '', "\n";
            close $writer;
            require POSIX;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $writer;
    Time::HiRes::sleep(0.3);
    my @latency;
    my $plain = LWP::UserAgent->new(timeout => 10);
    for (1 .. 30) {
        my $t = Time::HiRes::time;
        $plain->get(main_url('/index.html'));
        push @latency, Time::HiRes::time - $t;
    }
    my @codes = <$reader>;
    waitpid($_, 0) for @pids;
    chomp @codes;
    my %count;
    $count{$_}++ for @codes;
    @latency = sort { $a <=> $b } @latency;
    diag(sprintf 'slow upstream (1.5 s), %d sign-ins in flight: %s; unrelated requests meanwhile p50 %.0f ms, max %.0f ms',
                 $n, join(', ', map { "$count{$_} x $_" } sort keys %count),
                 1000 * $latency[@latency / 2], 1000 * $latency[-1]);
    ok(1, 'slow upstream');
}

# --- memory over many sign-ins --------------------------------------------------------
# The fake slows down as its organisation fills up: it is emptied every 50.
{
    my $n = $ENV{OKEY_SIGN_INS} // 300;
    reset_fake();
    sign_in(browser(), 'alice@example.com') for 1 .. 20;   # warm every cache first
    # Growth in the first half is mostly allocators keeping what they have
    # freed; a leak shows as growth in the second half as well. The children
    # also run the fakes' Perl: bench/memory measures the module alone.
    my @rss = (children_rss());
    my $ok = 0;
    for my $i (1 .. $n) {
        reset_fake() if $i % 50 == 1;
        $ok++ if sign_in(browser(), 'alice@example.com')->code == 200;
        push @rss, children_rss() if $i == int($n / 2) || $i == $n;
    }
    diag(sprintf 'memory, fakes included: %d sign-ins (%d keys), children RSS %d -> %d -> %d KiB: '
                 . '%.0f KiB per 1000 sign-ins in the first half, %.0f in the second',
                 $n, $ok, @rss, ($rss[1] - $rss[0]) * 1000 / int($n / 2),
                 ($rss[2] - $rss[1]) * 1000 / ($n - int($n / 2)));
    ok($ok == $n, 'memory run');
}
