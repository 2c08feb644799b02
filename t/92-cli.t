# openaikey, the command-line helper, end to end: the test plays the browser,
# following the printed sign-in address through the provider to the
# helper's loopback listener; and what the login refuses from a helper.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use OkeyCli;
use Crypt::JWT qw(encode_jwt);
use Crypt::PK::RSA ();
use Digest::SHA qw(sha256);
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64url decode_base64url);
use URI ();

plan tests => 114;

my $JSON = JSON::PP->new->utf8->canonical;
my $server = vhost_url('okey_cli', '/');
my $key_pattern = qr/sk-[A-Za-z0-9_-]+/;

sub fresh { seed_tenant('cli', 'cli-project') }
sub issued_keys { return fake_state()->{tenants}{cli}{issued_keys} || {} }
sub accounts_of {
    my ($project) = @_;
    return fake_state()->{tenants}{cli}{accounts}{$project} || [];
}

sub param_of {
    my ($url, $name) = @_;
    return { URI->new($url)->query_form }->{$name};
}

sub mode_of { return (stat $_[0])[2] & 07777 }

# The cache file of $server's key: named by its digest.
sub cache_file {
    my ($home, $server) = @_;
    return "$home/cache/openaikey/key-" . encode_base64url(substr(sha256($server), 0, 12)) . '.json';
}

sub read_json { my ($file) = @_; open my $fh, '<', $file or die "$file: $!"; local $/; return $JSON->decode(<$fh>) }

# Leaves the cached key less than the minute a key must have left.
sub expire_soon {
    my ($file) = @_;
    my $cached = read_json($file);
    $cached->{expires_at} = time + 30;
    open my $fh, '>', $file or die $!;
    print {$fh} $JSON->encode($cached);
    close $fh;
}

# --- a sign-in from the terminal ------------------------------------------------
fresh();
my $home = tempdir(CLEANUP => 1);
my $first_key;
{
    my $h = helper_start($home, 'login', $server, '--no-browser', '--ttl', '8h');
    my $url = helper_url($h);
    ok($url, 'login --no-browser prints a sign-in address');
    my $port = param_of($url, 'cli_port');
    like($url, qr{^\Q$server\E\?cli_port=\d+&cli_key=[A-Za-z0-9_-]+&ttl=8h$},
         'the server\'s address with cli_port, cli_key and ttl');
    my $jwk = $JSON->decode(decode_base64url(param_of($url, 'cli_key')));
    is($jwk->{kty}, 'RSA', 'cli_key is an RSA public key');
    ok(!exists $jwk->{d}, 'with nothing private in it');
    cmp_ok(length(decode_base64url($jwk->{n})) * 8, '>=', 3072, 'of at least 3072 bits');

    my $flow = follow($url, 'alice@example.com');
    my $callback = $flow->{callback};
    is($callback->code, 302, 'the callback redirects');
    like($callback->header('Location'), qr{^http://127\.0\.0\.1:\Q$port\E/\?result=[A-Za-z0-9_.-]+$},
         'to the helper\'s port on the loopback address, with the result');
    like($callback->decoded_content, qr/sent to the openaikey command in your terminal/,
         'its page says where the key went');
    is($callback->header('Cache-Control'), 'no-store', 'and is not cached');
    like($callback->header('Set-Cookie') // '', qr/okey_session=/, 'the browser is signed in to My keys as well');
    is($flow->{listener}->code, 200, 'the listener takes the result');
    like($flow->{listener}->decoded_content, qr/Key sent to your terminal.*alice\@example\.com/s,
         'and tells the browser the key went to the terminal');

    is(helper_finish($h), 0, 'the helper ends with 0');
    my ($key) = $h->{stdout} =~ /^export OPENAI_API_KEY='($key_pattern)'\n\z/;
    ok($key, 'and prints only the export line on stdout');
    $first_key = $key;
    my ($account) = @{ accounts_of('proj_cli') };
    is(issued_keys()->{ $account->{id} }, $key, 'the key the server issued');
    my ($expires) = $account->{name} =~ /^okey-(\d+)-[a-z0-9]{8}-alice\@example\.com$/;
    ok($expires && abs($expires - (time + 8 * 3600)) < 120, 'for the lifetime asked for');
    like($h->{stderr}, qr/a key for alice\@example\.com in project cli-project, valid for 8 hours/,
         'stderr says whose key it is and for how long');
    ok(!grep({ index($_, $key) >= 0 } @{ $flow->{seen} }, $h->{stderr}),
       'no address, header or page the browser saw holds the key');

    my $file = cache_file($home, $server);
    ok(-f $file, 'the key is cached');
    is(mode_of($file), 0600, 'in a file of mode 0600');
    is(mode_of("$home/cache/openaikey"), 0700, 'in a directory of mode 0700');
    is(read_json($file)->{api_key}, $key, 'holding the key');
    ok(!glob("$home/cache/openaikey/.tmp-*"), 'and no temporary file is left');
    unlike(error_log(), qr/\Q$key\E/, 'the key is not in the error log');
}

# --- openaikey key answers from the cache -----------------------------------------
{
    my $before = fake_state()->{tenants}{cli}{counters} // {};
    # Any request the helper made would go to a proxy that is not there.
    local $ENV{http_proxy} = 'http://127.0.0.1:9';
    local $ENV{HTTP_PROXY} = 'http://127.0.0.1:9';
    my $h = helper_start($home, 'key');
    is(helper_finish($h), 0, 'openaikey key, with a valid key cached, ends with 0');
    is($h->{stdout}, "$first_key\n", 'printing the cached key alone');
    is($h->{stderr}, '', 'saying nothing else');
    is_deeply(fake_state()->{tenants}{cli}{counters} // {}, $before, 'without any request upstream');
    $h = helper_start($home, 'key', '--server', $server);
    is(helper_finish($h), 0, 'the same with --server naming it');
    is($h->{stdout}, "$first_key\n", 'the same key');

    chmod 0755, "$home/cache/openaikey";
    $h = helper_start($home, 'key');
    is(helper_finish($h), 0, 'a cache directory others could enter still answers');
    is(mode_of("$home/cache/openaikey"), 0700, 'and is made private again');
    my $file = cache_file($home, $server);
    chmod 0644, $file;
    $h = helper_start($home, 'key', '--no-browser', '--timeout', '1');
    is(helper_finish($h), 1, 'a cache file others can read is not used');
    like($h->{stderr}, qr{^\s+http://}m, 'a sign-in starts instead');
    chmod 0600, $file;
}

# --- and signs in again once the cached key has (nearly) expired ---------------
{
    my $file = cache_file($home, $server);
    expire_soon($file);
    my $h = helper_start($home, 'key', '--no-browser');
    my $url = helper_url($h);
    ok($url, 'an expiring cached key makes openaikey key sign in again');
    is(follow($url, 'alice@example.com')->{listener}->code, 200, 'through the browser');
    is(helper_finish($h), 0, 'and end with 0');
    my ($key) = $h->{stdout} =~ /^($key_pattern)\n\z/;
    ok($key && $key ne $first_key, 'printing a new key alone');
    is(read_json($file)->{api_key}, $key, 'which replaces the cached one');
    is(mode_of($file), 0600, 'still mode 0600');
}

# --- tools asking at once: one signs in, the others take its key -------------------
{
    expire_soon(cache_file($home, $server));
    my $made = @{ accounts_of('proj_cli') };
    my @h = map { helper_start($home, 'key', '--server', $server, '--no-browser') } 1 .. 3;
    my $signing = sub { grep { $_->{stderr} =~ m{^\s+http://}m } @h };
    my $waiting = sub { grep { $_->{stderr} =~ /waiting for another openaikey/ } @h };
    my $deadline = time + 60;
    until ($signing->() + $waiting->() == 3 || time > $deadline) {
        helper_read($_, 0.1) for @h;
    }
    my ($signer) = $signing->();
    is(scalar $signing->(), 1, 'of three openaikey key at once, one signs in');
    is(scalar $waiting->(), 2, 'and the other two wait for it');
    my ($url) = $signer ? $signer->{stderr} =~ m{^\s+(http://\S+)$}m : ();
    ok($url && follow($url, 'alice@example.com')->{listener}->code == 200, 'that sign-in completes');
    my @status = map { helper_finish($_) } @h;
    is_deeply(\@status, [0, 0, 0], 'all three end with 0');
    my %keys = map { $_->{stdout} => 1 } @h;
    ok(keys %keys == 1 && (keys %keys)[0] =~ /^$key_pattern\n\z/, 'printing the same key');
    is(scalar @{ accounts_of('proj_cli') }, $made + 1, 'for which one account was made');
}

# --- the sign-in is refused: the reason reaches the terminal ------------------------
{
    my $h = helper_start($home, 'login', $server, '--no-browser');
    my $flow = follow(helper_url($h), 'eve@evil.example');
    is($flow->{callback}->code, 302, 'a refused sign-in is sent to the helper too');
    like($flow->{listener}->decoded_content, qr/Sign-in failed.*not allowed/s,
         'whose page gives the reason');
    is(helper_finish($h), 1, 'the helper ends with 1');
    is($h->{stdout}, '', 'printing nothing on stdout');
    like($h->{stderr}, qr/^openaikey: the sign-in failed: Your account is not allowed[^\n]*\n\z/m,
         'and one line with the reason on stderr');
}

# --- a profile, and openaikey-issue -----------------------------------------------
{
    my $h = helper_start($home, 'login', vhost_url('okey_cli', '/team'), '--no-browser', '--ttl', '20m');
    my $flow = follow(helper_url($h), 'alice@example.com');
    is(helper_finish($h), 0, 'a profile\'s sign-in address works with the helper');
    my ($key) = $h->{stdout} =~ /^export OPENAI_API_KEY='($key_pattern)'$/;
    my ($team) = grep { $_->{name} eq 'team-project' } @{ fake_state()->{tenants}{cli}{projects} };
    my ($account) = @{ accounts_of($team->{id}) };
    ok($key && issued_keys()->{ $account->{id} } eq $key, 'with a key in the profile\'s project');
    $h = helper_start($home, 'login', vhost_url('okey_cli', '/team'), '--no-browser', '--ttl', '1h');
    is(helper_finish($h), 1, 'a lifetime over the profile\'s maximum is refused before any browser');
    like($h->{stderr}, qr/^openaikey: the server refused \(400\): [^\n]*20 minutes[^\n]*\n\z/,
         'in one line naming the range');

    local $ENV{OPENAIKEY_PASSWORD} = 'secret';
    $h = helper_start($home, 'key', '--issue', vhost_url('okey_cli', '/issue'), '--user',
                      'alice@example.com', '--ttl', '2h');
    is(helper_finish($h), 0, 'openaikey key --issue --user gets a key from openaikey-issue');
    ($key) = $h->{stdout} =~ /^($key_pattern)\n\z/;
    ok($key && grep({ $_ eq $key } values %{ issued_keys() }), 'one the server issued');
    $h = helper_start($home, 'key', '--issue', vhost_url('okey_cli', '/issue'), '--user',
                      'alice@example.com');
    is(helper_finish($h), 0, 'asked again');
    is($h->{stdout}, "$key\n", 'it comes from the cache');
    $h = helper_start($home, 'key');
    is(helper_finish($h), 0, 'openaikey key alone asks the last server, openaikey-issue');
    is($h->{stdout}, "$key\n", 'answering from its cache');
    expire_soon(cache_file($home, vhost_url('okey_cli', '/issue')));
    $h = helper_start($home, 'key');
    is(helper_finish($h), 0, 'and once that key expires, gets a new one');
    my ($again) = $h->{stdout} =~ /^($key_pattern)\n\z/;
    ok($again && $again ne $key && grep({ $_ eq $again } values %{ issued_keys() }),
       'from openaikey-issue, as the same user, with no browser');
    local $ENV{OPENAIKEY_PASSWORD} = 'wrong';
    $h = helper_start($home, 'login', '--issue', vhost_url('okey_cli', '/issue'), '--user',
                      'alice@example.com');
    is(helper_finish($h), 1, 'a wrong password ends with 1');
    like($h->{stderr}, qr/^openaikey: the server did not accept the sign-in \(401\)\n\z/, 'saying so');

    # This machine's name as the user of another host's address: the
    # password must not leave. The host here is the server itself, which
    # would answer with a key if it were asked.
    local $ENV{OPENAIKEY_PASSWORD} = 'secret';
    my $issued = keys %{ issued_keys() };
    (my $disguised = vhost_url('okey_cli', '/issue')) =~ s{^http://}{http://localhost@};
    $h = helper_start($home, 'key', '--issue', $disguised, '--user', 'alice@example.com');
    is(helper_finish($h), 1, 'an --issue address with localhost as its user ends with 1');
    like($h->{stderr}, qr/^openaikey: the server's address names a user[^\n]*\n\z/,
         'in one line saying so');
    is($h->{stdout}, '', 'printing no key');
    is(scalar(keys %{ issued_keys() }), $issued, 'and nothing was asked of the server');
}

# --- results from elsewhere are refused; two helpers at once --------------------------
{
    my $a = helper_start($home, 'login', $server, '--no-browser');
    my $b = helper_start($home, 'login', $server, '--no-browser');
    my ($url_a, $url_b) = (helper_url($a), helper_url($b));
    my ($port_a, $port_b) = (param_of($url_a, 'cli_port'), param_of($url_b, 'cli_port'));
    isnt($port_a, $port_b, 'two helpers listen on two ports');
    my $ua = LWP::UserAgent->new(timeout => 10, max_redirect => 0);
    my $at = sub { my ($port, $path) = @_; $ua->get("http://127.0.0.1:$port$path") };

    is($at->($port_a, '/')->code, 404, 'the listener answers 404 to anything but a result');
    is($at->($port_a, '/?result=garbage')->code, 400, 'and 400 to a result that is not one');
    my $other = Crypt::PK::RSA->new;
    $other->generate_key(256);
    my $forged = encode_jwt(payload => '{"api_key":"sk-forged","expires_at":9999999999,'
                                       . '"project":"p","email":"e","service_account_id":"s"}',
                            alg => 'RSA-OAEP', enc => 'A256GCM', key => $other);
    is($at->($port_a, "/?result=$forged")->code, 400, 'and to a result sealed to another key');
    my $req = HTTP::Request->new(GET => "http://127.0.0.1:$port_a/?result=x", [Host => 'evil.example']);
    is($ua->request($req)->code, 400, 'and to a request for another host');

    # Sockets that never send a request (browsers open spare ones) must not
    # keep the listener from the one that does.
    my @idle = map { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port_a") or die $! } 1 .. 12;
    my $flow_a = follow($url_a, 'alice@example.com');
    is($flow_a->{listener}->code, 200, 'the listener takes a result while a dozen idle connections are open');
    close $_ for @idle;
    my $sent_to_a = $flow_a->{callback}->header('Location');
    (my $sent_to_b = $sent_to_a) =~ s/:$port_a\//:$port_b\//;
    is($ua->get($sent_to_b)->code, 400, 'a result for one helper is refused by the other');
    is(helper_finish($a), 0, 'the first helper ends with its key');
    is(follow($url_b, 'carol@example.org')->{listener}->code, 200, 'the second still takes its own');
    is(helper_finish($b), 0, 'and ends with 0');
    my ($key_a) = $a->{stdout} =~ /'($key_pattern)'/;
    my ($key_b) = $b->{stdout} =~ /'($key_pattern)'/;
    ok($key_a && $key_b && $key_a ne $key_b, 'each with a key of its own');
    ok($key_a ne 'sk-forged' && $a->{stderr} =~ /alice/ && $b->{stderr} =~ /carol/,
       'neither took the forged or the other\'s result');
}

# --- failures end in one line and a non-zero status --------------------------------
{
    my $h = helper_start($home, 'login', 'http://127.0.0.1:9/', '--no-browser');
    is(helper_finish($h), 1, 'an unreachable server ends with 1');
    like($h->{stderr}, qr/^openaikey: cannot reach the server: [^\n]+\n\z/, 'in one line');
    $h = helper_start($home, 'login', $server, '--no-browser', '--timeout', '1');
    is(helper_finish($h), 1, 'no result within --timeout ends with 1');
    like($h->{stderr}, qr/openaikey: no sign-in result arrived within 1 s\n\z/, 'saying so');
    $h = helper_start($home, 'login', $server, '--no-browser');
    ok(helper_url($h), 'a waiting helper');
    kill 'INT', $h->{pid};
    is(helper_finish($h), 130, 'ends with 130 on Ctrl-C');
    like($h->{stderr}, qr/openaikey: cancelled\n\z/, 'saying it was cancelled');
    $h = helper_start($home, 'login', $server, '--ttl', '10 years', '--no-browser');
    is(helper_finish($h), 1, 'a malformed --ttl ends with 1');
    is($h->{stderr}, "openaikey: --ttl takes seconds, or a whole number with s, m, h or d "
                     . "(for example 8h)\n", 'before any request, in one line');
    $h = helper_start($home, 'fetch');
    is(helper_finish($h), 2, 'an unknown command ends with 2');
    my $empty = tempdir(CLEANUP => 1);
    $h = helper_start($empty, 'key');
    is(helper_finish($h), 1, 'openaikey key with no server known ends with 1');
    like($h->{stderr}, qr/no server yet/, 'saying to log in first');
    $h = helper_start($home, '--version');
    is(helper_finish($h), 0, '--version');
    like($h->{stdout}, qr/^openaikey \d+\.\d+\.\d+$/, 'prints the version');
}

# --- what the login refuses from a helper ----------------------------------------
{
    my $good = Crypt::PK::RSA->new;
    $good->generate_key(256);
    my $jwk = $JSON->decode($good->export_key_jwk('public'));
    my $b64 = sub { encode_base64url($JSON->encode($_[0])) };
    my $small = Crypt::PK::RSA->new;
    $small->generate_key(128);
    my %bad = (
        'cli_port 80'       => [cli_port => 80, cli_key => $b64->($jwk)],
        'cli_port 0'        => [cli_port => 0, cli_key => $b64->($jwk)],
        'cli_port 70000'    => [cli_port => 70000, cli_key => $b64->($jwk)],
        'cli_port abc'      => [cli_port => 'abc', cli_key => $b64->($jwk)],
        'a cli_key that is not a key' => [cli_port => 40000, cli_key => 'bm90IGEga2V5'],
        'a symmetric cli_key' => [cli_port => 40000, cli_key => $b64->({ kty => 'oct', k => 'c2VjcmV0' })],
        'a 1024-bit cli_key' => [cli_port => 40000, cli_key => $b64->($JSON->decode($small->export_key_jwk('public')))],
        'a private cli_key' => [cli_port => 40000, cli_key => $b64->($JSON->decode($good->export_key_jwk('private')))],
        'a 3 KB cli_key'    => [cli_port => 40000, cli_key => 'A' x 3000],
        'cli_port without cli_key' => [cli_port => 40000],
        'cli_key and next'  => [cli_port => 40000, cli_key => $b64->($jwk), next => 'keys'],
        'a repeated cli_port' => [cli_port => 40000, cli_port => 40001, cli_key => $b64->($jwk)],
    );
    for my $case (sort keys %bad) {
        my $uri = URI->new($server);
        $uri->query_form(@{ $bad{$case} });
        my $res = browser()->get($uri);
        ok($res->code == 400 && !$res->header('Set-Cookie') && !$res->header('Location'),
           "$case: 400, no state cookie, no redirect");
    }
    my $uri = URI->new($server);
    $uri->query_form(cli_port => 40000, cli_key => 'A' x (100 * 1024));
    my $res = browser()->get($uri);
    ok($res->code >= 400 && $res->code < 500 && !$res->header('Set-Cookie'),
       'a 100 KB cli_key is refused (' . $res->code . ') before any state is made');
    like(browser()->get("$server?cli_port=80&cli_key=" . $b64->($jwk))->decoded_content,
         qr/cli_port must be a port from 1024 to 65535/, 'the page says which rule was broken');
    $uri = URI->new($server);
    $uri->query_form(cli_port => 40000, cli_key => $b64->($jwk));
    $res = browser()->get($uri);
    is($res->code, 302, 'a well-formed helper login goes on to the provider');
    is(browser()->get($uri, 'Sec-Fetch-Site' => 'none')->code, 302,
       'also when the browser says the person opened it');
    for my $site ('cross-site', 'same-site') {
        $res = browser()->get($uri, 'Sec-Fetch-Site' => $site);
        ok($res->code == 400 && !$res->header('Set-Cookie'),
           "but not from a link on another site (Sec-Fetch-Site: $site): 400, no state cookie");
    }
    is(browser()->get($server, 'Sec-Fetch-Site' => 'cross-site')->code, 302,
       'a sign-in link without the helper may come from anywhere');
}
