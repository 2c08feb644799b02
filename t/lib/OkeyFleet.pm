package OkeyFleet;
# A fleet for t/96-fleet.t: a Redis on the port t/TEST.PL picked (started
# with t/redis-fixture), and two more httpd processes next to the test
# server, each running the fleet's key servers from t/conf/fleet.macro, as
# the test server's virtual hosts okey_fleet and okey_fleetreap do. Whatever
# it starts is stopped at exit, also when the test dies.
use strict;
use warnings;

use Apache::Test ();
use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Request ();
use IO::Socket::INET ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes ();
use URI ();

use OkeyTest qw(browser authorize vhost_url upstream_timeout);

our @EXPORT_OK = qw(start_redis kill_redis restart_redis stop_redis redis_cli redis_port
                    start_servers stop_servers fleet_urls sign_in_at metrics reap_at
                    wait_until slurp);

my $JSON = JSON::PP->new->canonical->utf8;
my $vars = Apache::Test::vars();
my $top = "$vars->{serverroot}/..";
my $redis_dir;
my @servers;

sub slurp { my ($path) = @_; open my $fh, '<', $path or return ''; local $/; return scalar <$fh> }
sub spew { my ($path, $text) = @_; open my $fh, '>', $path or die "$path: $!"; print {$fh} $text; close $fh or die "$path: $!" }

# Polls $cond every 50 ms for at most $seconds; its last answer.
sub wait_until {
    my ($seconds, $cond) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    my $result;
    until (($result = $cond->()) || Time::HiRes::time() > $deadline) {
        Time::HiRes::sleep(0.05);
    }
    return $result;
}

# --- Redis --------------------------------------------------------------------

sub redis_port { return $vars->{okey_redis_port} // die 'no okey_redis_port: run t/TEST.PL' }

sub fixture {
    my (@args) = @_;
    my $out = `"$vars->{t_dir}/redis-fixture" @args 2>&1`;
    die "t/redis-fixture @args: $out" if $?;
    return $out;
}

# Starts an empty Redis on redis_port(), in a directory of its own.
sub start_redis {
    $redis_dir //= tempdir(CLEANUP => 0) . '/redis';
    fixture('start', $redis_dir, '--port', redis_port());
}

sub kill_redis { fixture('kill', $redis_dir) }
sub restart_redis { fixture('restart', $redis_dir) }
sub stop_redis { fixture('stop', $redis_dir) if $redis_dir && -d $redis_dir; undef $redis_dir }

# redis-cli's answer to @args, lines without their ends.
sub redis_cli {
    my (@args) = @_;
    open my $cli, '-|', 'redis-cli', '-h', '127.0.0.1', '-p', redis_port(), '--no-raw', @args
        or die "redis-cli: $!";
    my @lines = map { chomp; s/^\d+\) //; s/^"(.*)"$/$1/; $_ } <$cli>;
    close $cli;
    return @lines;
}

# --- the other httpd processes -----------------------------------------------

sub free_port {
    my $socket = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)
        or die "no free port: $!";
    return $socket->sockport;
}

# The configuration of one more fleet server: the fleet's key servers on
# $fleet and $reap, with the test server's fakes, its module build and MPM.
sub server_conf {
    my ($dir, $fleet, $reap, $ledger) = @_;
    my $modules = '/usr/lib/apache2/modules';
    my $mpm = $ENV{OKEY_MPM} // 'event';
    my $fakes = "http://127.0.0.1:$vars->{port}";
    my $secret = "$vars->{t_dir}/data/client-secret";
    my $timeout = upstream_timeout();
    my %use = (fleet => "$fleet $fakes fleet fleet-project 3600",
               reap => "$reap $fakes fleetreap fleetreap-project 2");
    return <<"CONF";
ServerRoot "$dir"
ServerName 127.0.0.1
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
LogLevel info openaikey:debug
LoadModule mpm_${mpm}_module $modules/mod_mpm_$mpm.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule authz_host_module $modules/mod_authz_host.so
LoadModule macro_module $modules/mod_macro.so
LoadModule openaikey_module "$top/mod_openaikey.so"
StartServers 2
<IfModule mpm_prefork_module>
    MaxSpareServers 64
</IfModule>
<IfModule !mpm_prefork_module>
    MaxSpareThreads 1024
</IfModule>
Include "$vars->{t_conf}/fleet.macro"
Listen 127.0.0.1:$fleet
Listen 127.0.0.1:$reap
<VirtualHost 127.0.0.1:$fleet>
    ServerName 127.0.0.1:$fleet
    Use FleetServer $use{fleet} $ledger $secret $timeout $dir/state/$fleet
</VirtualHost>
<VirtualHost 127.0.0.1:$reap>
    ServerName 127.0.0.1:$reap
    Use FleetServer $use{reap} $ledger $secret $timeout $dir/state/$reap
</VirtualHost>
CONF
}

sub answers {
    my ($url) = @_;
    return LWP::UserAgent->new(timeout => 5)->get($url)->is_success;
}

# Starts $count more fleet servers (OKEY_FLEET_LEDGER names another ledger
# than the Redis, to see the tests fail without it); each answers /status
# within thirty seconds or the test dies.
sub start_servers {
    my ($count) = @_;
    my $ledger = $ENV{OKEY_FLEET_LEDGER} // 'redis://127.0.0.1:' . redis_port();
    for (1 .. $count) {
        my $dir = tempdir(CLEANUP => 0);
        my %server = (dir => $dir, fleet => free_port(), reap => free_port());
        spew("$dir/httpd.conf", server_conf($dir, $server{fleet}, $server{reap}, $ledger));
        system($vars->{httpd}, '-d', $dir, '-f', "$dir/httpd.conf", '-k', 'start') == 0
            or die "httpd in $dir did not start:\n" . slurp("$dir/error_log");
        push @servers, \%server;
        wait_until(30, sub { answers("http://127.0.0.1:$server{fleet}/status") })
            or die "httpd in $dir does not answer:\n" . slurp("$dir/error_log");
        ($server{pid}) = slurp("$dir/httpd.pid") =~ /(\d+)/;
    }
    return @servers;
}

# Stops them, waiting at most thirty seconds each, then kills what is left.
sub stop_servers {
    while (my $server = shift @servers) {
        my $pid = $server->{pid} // (slurp("$server->{dir}/httpd.pid") =~ /(\d+)/)[0];
        system($vars->{httpd}, '-d', $server->{dir}, '-f', "$server->{dir}/httpd.conf",
               '-k', 'stop');
        next unless $pid;
        unless (wait_until(30, sub { !kill(0, $pid) })) {
            kill('KILL', $pid);
            wait_until(5, sub { !kill(0, $pid) });
        }
    }
}

# The error logs of the extra servers, together.
sub error_logs { return join '', map { slurp("$_->{dir}/error_log") } @servers }

END {
    my $status = $?;
    stop_servers();
    stop_redis();
    $? = $status;
}

# The base URLs of the three servers of $which (fleet or reap): the test
# server's virtual host first.
sub fleet_urls {
    my ($which) = @_;
    my $vhost = $which eq 'fleet' ? 'okey_fleet' : 'okey_fleetreap';
    return (vhost_url($vhost), map { "http://127.0.0.1:$_->{$which}" } @servers);
}

# --- requests -----------------------------------------------------------------

# A sign-in of $email at the server $base with $ua (a fresh browser when
# undef); the callback's response. With keep => 1, stops before the
# callback and returns its URL instead.
sub sign_in_at {
    my ($base, $email, %opts) = @_;
    my $ua = $opts{ua} // browser();
    my $login = $ua->get("$base/");
    die "login at $base: " . $login->status_line unless $login->code == 302;
    my $callback = authorize($ua, $login->header('Location'), $email);
    return $callback if $opts{keep};
    return $ua->get($callback);
}

# /metrics of $base: name => value, labels dropped.
sub metrics {
    my ($base) = @_;
    my $res = LWP::UserAgent->new(timeout => 30)->get("$base/metrics");
    die "metrics at $base: " . $res->status_line unless $res->is_success;
    my %metrics;
    for (split /\n/, $res->decoded_content) {
        $metrics{$1} //= $2 if /^(\w+)(?:\{[^}]*\})?\s+(\S+)$/;
    }
    return \%metrics;
}

# Runs a reap at $base now (POST /revoke, asked again while it answers 202,
# for at most a minute); the last response.
sub reap_at {
    my ($base) = @_;
    my $ua = LWP::UserAgent->new(timeout => 60);
    my $res;
    my $deadline = time + 60;
    do {
        $res = $ua->request(HTTP::Request->new(POST => "$base/revoke",
                                               [Accept => 'application/json']));
        Time::HiRes::sleep(0.5) if $res->code == 202;
    } while ($res->code == 202 && time < $deadline);
    return $res;
}

1;
