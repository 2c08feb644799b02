# openaikey-issue: keys for people another Apache module authenticated.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use URI ();

plan tests => 53;

my $JSON = JSON::PP->new->utf8->canonical;
my $url = vhost_url('okey_issue', '/issue');

sub fresh { seed_tenant('issue', 'issue-project') }
sub accounts { return fake_state()->{tenants}{issue}{accounts}{proj_issue} || [] }
sub creates { return fake_state()->{tenants}{issue}{counters}{'openai.create_service_account'} // 0 }

sub as_alice {
    my ($req) = @_;
    $req->authorization_basic('alice@example.com', 'secret');
    return $req;
}

sub post_form {
    my ($ua, $target, $req_auth, @fields) = @_;
    my $uri = URI->new('http:');
    $uri->query_form(@fields);
    my $req = HTTP::Request->new(POST => $target,
                                 ['Content-Type' => 'application/x-www-form-urlencoded'], $uri->query);
    return $ua->request($req_auth ? $req_auth->($req) : $req);
}

sub post_json {
    my ($ua, $target, $doc, $req_auth, %headers) = @_;
    my $req = HTTP::Request->new(POST => $target, ['Content-Type' => 'application/json',
                                                   Accept => 'application/json', %headers],
                                 defined $doc ? $JSON->encode($doc) : '');
    return $ua->request($req_auth ? $req_auth->($req) : $req);
}

fresh();
my $ua = browser();

# --- Apache decides who: Basic authentication in front ------------------------
is($ua->get($url)->code, 401, 'without authentication httpd asks for it');
my $page = $ua->request(as_alice(HTTP::Request->new(GET => $url)));
is($page->code, 200, 'an authenticated GET shows the page');
like($page->decoded_content, qr/Signed in as <strong>alice\@example\.com<\/strong>/, 'naming the address');
my ($token) = $page->decoded_content =~ /name="csrf" value="([^"]+)"/;
ok($token, 'with a form token');
like($page->decoded_content, qr/<option value="86400" selected>1 day<\/option><option value="900">15 minutes/, "and lifetimes up to the maximum, the default chosen");
is($ua->request(as_alice(HTTP::Request->new(HEAD => $url)))->code, 200, 'HEAD works too');
is(creates(), 0, 'a GET never creates a key');
is($ua->request(as_alice(HTTP::Request->new(PUT => $url)))->code, 405, 'PUT: 405');

my $res = post_form($ua, $url, \&as_alice, ttl => '8h');
is($res->code, 403, 'a POST without the form token: 403');
$res = post_form($ua, $url, \&as_alice, csrf => 'x' . $token, ttl => '8h');
is($res->code, 403, 'a forged token: 403');
is(creates(), 0, 'neither created a key');

$res = post_form($ua, $url, \&as_alice, csrf => $token, ttl => '8h');
is($res->code, 200, 'the form issues a key');
my ($key) = $res->decoded_content =~ /<pre id="key">([^<]+)</;
like($key // '', qr/^sk-test-/, 'and shows it');
like($res->decoded_content, qr/id="lifetime">in 8 hours</, 'for the lifetime picked');
my @mine = grep { $_->{name} =~ /^okey-(\d+)-[a-z0-9]{8}-alice\@example\.com$/ && abs($1 - time - 28800) <= 5 } @{ accounts() };
is(scalar @mine, 1, 'named for alice, with the expiry asked for');
like(error_log(), qr/OKEY101: issued key: service_account=\Q$mine[0]{id}\E email=alice\@example\.com/,
     'with an audit line');

# A token made for someone else does not carry over.
my $bob = browser();
my $bob_page = $bob->request(do { my $r = HTTP::Request->new(GET => $url);
                                  $r->authorization_basic('bob@example.com', 'secret'); $r });
is($bob_page->code, 403, 'an authenticated address the allow-lists do not name: 403');
my $mallory = browser()->request(do { my $r = HTTP::Request->new(GET => $url);
                                      $r->authorization_basic('mallory', 'secret'); $r });
is($mallory->code, 403, 'an authenticated user whose name is not an address: 403');
like($mallory->decoded_content, qr/does not name a plain e-mail address/, 'saying why');
like($bob_page->decoded_content, qr/not allowed to get a key/, 'with a clear page');

# --- JSON for scripts ----------------------------------------------------------
$res = post_json($ua, $url, { ttl => '90m' }, \&as_alice);
is($res->code, 200, 'a JSON POST issues a key');
is($res->header('Content-Type'), 'application/json', 'and answers JSON');
my $doc = $JSON->decode($res->decoded_content);
is_deeply([sort keys %$doc], [qw(api_key email expires_at project service_account_id)],
          'with the fields DESIGN.md fixes');
like($doc->{api_key}, qr/^sk-test-/, 'the key');
ok(abs($doc->{expires_at} - time - 5400) <= 5, 'that lives the ttl asked for');
is($doc->{project}, 'issue-project', 'in the project');
$res = post_json($ua, $url, undef, \&as_alice);
is($res->code, 200, 'an empty JSON body takes the default lifetime');
$res = post_json($ua, "$url?ttl=2h", undef, \&as_alice);
ok(abs($JSON->decode($res->decoded_content)->{expires_at} - time - 7200) <= 5, 'ttl in the query works too');
my $before = creates();
for my $ttl ('2d', '-5', '1e9', 59) {
    $res = post_json($ua, $url, { ttl => $ttl }, \&as_alice);
    is($res->code, 400, "ttl $ttl: 400");
}
like($JSON->decode($res->decoded_content)->{error}, qr/1 minute to 1 day/, 'naming the allowed range');
$res = post_json($ua, $url, [1], \&as_alice);
is($res->code, 400, 'a body that is not a JSON object: 400');
is(creates(), $before, 'no refused request created a key');

# --- whatever the module in front hands over --------------------------------------
{
    my $any = vhost_url('okey_issue', '/issue-any');
    my @hostile = ("a\r\nb\@example.com", '"q"@example.com', '<x>@example.com', 'a@b@example.com',
                   ('a' x 290) . '@example.com', "\x{fc}n\x{ef}\@example.com", 'alice', '@example.com',
                   'alice@', 'alice@localhost', 'a..b@example.com', 'alice@example.com ');
    for my $user (@hostile) {
        my $shown = $user =~ s/[^\x20-\x7e]/?/gr;
        my $bytes = $user;
        utf8::encode($bytes);
        $res = post_json(browser(), $any, {}, undef, 'X-Test-User' => encode_base64url($bytes));
        is($res->code, 403, 'r->user ' . substr($shown, 0, 40) . ': 403');
    }
    is(creates(), $before, 'none of them got a key');
    unlike(error_log(), qr/a\r\nb\@example/, 'and a CR/LF in r->user never reaches the log raw');
    $res = post_json(browser(), $any, {}, undef);
    is($res->code, 403, 'no r->user at all: 403');
}

# --- the address from a variable (OpenAIKeyUserVar) ------------------------------------
{
    my $var_url = vhost_url('okey_issuevar', '/issue');
    my $page = browser()->get($var_url);
    like($page->decoded_content, qr/Signed in as <strong>carol\@example\.org<\/strong>/,
         'OpenAIKeyUserVar names the variable the address comes from');
    $res = post_json(browser(), $var_url, {});
    is($JSON->decode($res->decoded_content)->{email}, 'carol@example.org', 'and the key is hers');
    like(browser()->get(vhost_url('okey_issue', '/issue-var'))->decoded_content,
         qr/Signed in as <strong>carol\@example\.org<\/strong>/, 'OpenAIKeyUserVar works inside <Location> too');
}
