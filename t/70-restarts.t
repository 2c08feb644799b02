# A thousand graceful restarts with a configuration that changes each time:
# a second httpd, configured the seed's way through its environment, with
# two virtual hosts that inherit everything from the main server. It must
# survive them all, each virtual host must report itself, and no secret may
# stay in the process environment.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes ();

my $mpm = $ENV{OKEY_MPM} // 'event';
# The full thousand under one MPM; the others show the same with fewer.
my $restarts = $ENV{OKEY_RESTARTS} // ($mpm eq 'event' ? 1000 : 100);
plan tests => 8;

my $vars = Apache::Test::vars();
my $module = "$vars->{serverroot}/../mod_openaikey.so";
my $modules = '/usr/lib/apache2/modules';
my $dir = tempdir(CLEANUP => !$ENV{OKEY_KEEP});
my $canary = 'canary-client-secret-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 16);

sub free_port {
    my $socket = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die $!;
    return $socket->sockport;
}
my ($port_one, $port_two) = (free_port(), free_port());

sub slurp { my ($path) = @_; open my $fh, '<', $path or return ''; local $/; return <$fh> }
sub spew { my ($path, $text) = @_; open my $fh, '>', $path or die "$path: $!"; print {$fh} $text; close $fh }

spew("$dir/httpd.conf", <<"CONF");
ServerRoot "$dir"
ServerName main.example
DefaultRuntimeDir "$dir"
LoadModule mpm_${mpm}_module $modules/mod_mpm_$mpm.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule openaikey_module "$module"
Listen 127.0.0.1:$port_one
Listen 127.0.0.1:$port_two
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
LogLevel info
StartServers 1
Include "$dir/changing.conf"
<VirtualHost 127.0.0.1:$port_one>
    ServerName one.example
    <Location /status>
        SetHandler openaikey-status
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:$port_two>
    ServerName two.example
    <Location /status>
        SetHandler openaikey-status
    </Location>
</VirtualHost>
CONF

local %ENV = %ENV;
# Upstreams on a port nothing listens on: each generation's first reaps
# fail at once instead of queueing a thousand requests at the fakes.
my $nowhere = 'http://127.0.0.1:' . free_port();
@ENV{qw(CLIENT_ID CLIENT_SECRET REDIRECT_URI ALLOWED_DOMAINS OPENAI_MANAGEMENT_KEY OIDC_ISSUER OPENAI_API_BASE)} =
    ('test-client', $canary, "http://127.0.0.1:$port_one/oauth2/callback", 'example.com',
     'test-admin-key', "$nowhere/oidc", "$nowhere/v1");
# One the test user may write, shared by the three key servers: each keeps
# a directory of its own in it.
$ENV{OPENAIKEY_STATE_DIR} = "$dir/state";

sub generations { my $n = () = slurp("$dir/error_log") =~ /resuming normal operations/g; return $n }

sub wait_for { my ($cond) = @_; my $deadline = Time::HiRes::time + 30;
               Time::HiRes::sleep(0.02) until $cond->() || Time::HiRes::time > $deadline; return $cond->() }

spew("$dir/changing.conf", "OpenAIKeyProject restart-0\n");
system($vars->{httpd}, '-d', $dir, '-f', "$dir/httpd.conf", '-k', 'start') == 0 or die "httpd did not start";
ok(wait_for(sub { generations() >= 1 && -s "$dir/httpd.pid" }), 'a second httpd starts, configured by its environment');
my ($parent) = slurp("$dir/httpd.pid") =~ /(\d+)/;

my $survived = 0;
my $started = Time::HiRes::time;
for my $round (1 .. $restarts) {
    my $before = generations();
    # A project no generation used before: new slots in shared memory.
    spew("$dir/changing.conf", "OpenAIKeyProject restart-$round\n");
    last unless kill('USR1', $parent);
    last unless wait_for(sub { generations() > $before });
    $survived++;
}
my $took = Time::HiRes::time - $started;
is($survived, $restarts, sprintf('%d graceful restarts with a changing configuration survived (%.1f s)', $survived, $took));
unlike(slurp("$dir/error_log"), qr/no room in shared memory|exit signal|emerg/, 'no slot ran out and no child crashed');

my $ua = LWP::UserAgent->new(timeout => 10);
my $JSON = JSON::PP->new->utf8;
my %server;
for my $port ($port_one, $port_two) {
    my $res = $ua->get("http://127.0.0.1:$port/status");
    $server{$port} = $res->is_success ? $JSON->decode($res->decoded_content)->{server} : $res->status_line;
}
is($server{$port_one}, "one.example:$port_one", 'a virtual host inheriting everything reports itself');
is($server{$port_two}, "two.example:$port_two", 'and so does the other');

# Children of earlier generations may still be finishing and leave at any
# moment: one that is gone by the time its environment is read is skipped.
sub environ_of {
    my ($pid) = @_;
    my $text = slurp("/proc/$pid/environ");
    my $zombie = slurp("/proc/$pid/stat") =~ /^\d+ \(.*\) Z /s;
    return (length $text || (kill(0, $pid) && !$zombie)) ? $text : undef;
}
my @children = map { /^(\d+)$/ ? $1 : () } split /\n/, `pgrep -P $parent`;
my @environs = grep { defined } map { environ_of($_) } $parent, @children;
ok(@environs > 1 && (grep { length } @environs) == @environs,
   sprintf('the environment of the parent and %d child processes is readable', @environs - 1));
ok(!(grep { index($_, $canary) >= 0 } @environs), 'the client secret from the environment is gone from it');

system($vars->{httpd}, '-d', $dir, '-f', "$dir/httpd.conf", '-k', 'stop');
ok(wait_for(sub { !kill(0, $parent) }), 'and it stops');
