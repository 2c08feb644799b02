# The sign-in state: cookies per attempt, tampering, expiry, replay, and
# malformed callbacks. None of these may issue a key.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use Crypt::JWT qw(encode_jwt);
use Crypt::KeyDerivation qw(pbkdf2);
use HTTP::Request ();
use JSON::PP ();
use URI ();

plan tests => 41;

my $callback_url = vhost_url('okey', '/oauth2/callback');

sub no_key_issued { is(fake_state()->{counters}{'openai.create_service_account'} // 0, 0, "$_[0]: no key issued") }

sub state_of { my %q = URI->new($_[0])->query_form; return $q{state} }

# The cookie key the way the module derives it from OpenAIKeyPassphrase.
my $cookie_key = pbkdf2('correct horse battery staple', 'mod_openaikey state cookie v1', 200000, 'SHA256', 32);

sub seal {
    my (%claims) = @_;
    return encode_jwt(payload => JSON::PP->new->canonical->encode(\%claims),
                      alg => 'dir', enc => 'A256GCM', key => $cookie_key);
}

# --- two sign-ins started in parallel both finish --------------------------
reset_fake();
{
    my $ua = browser();
    my $first = start_login($ua);
    my $second = start_login($ua);
    isnt(state_of($first->header('Location')), state_of($second->header('Location')), 'each attempt has its own state');
    my $cb_first = authorize($ua, $first->header('Location'), 'alice@example.com');
    my $cb_second = authorize($ua, $second->header('Location'), 'alice@example.com');
    is($ua->get($cb_second)->code, 200, 'the later attempt finishes');
    is($ua->get($cb_first)->code, 200, 'and so does the earlier one');
    is(fake_state()->{counters}{'openai.create_service_account'}, 2, 'two keys issued');

    # --- a replayed callback is refused ----------------------------------
    my $replay = $ua->get($cb_first);
    is($replay->code, 400, 'replayed callback: 400');
    like($replay->decoded_content, qr/start again/i, 'with a page that says what to do');
    is(fake_state()->{counters}{'openai.create_service_account'}, 2, 'replay issued no key');
}

# --- the same callback with the old cookie forced back in -------------------
reset_fake();
{
    my $ua = browser();
    my $login = start_login($ua);
    my ($cookie) = $login->header('Set-Cookie') =~ /^([^;]+)/;
    my $cb = authorize($ua, $login->header('Location'), 'alice@example.com');
    is($ua->get($cb)->code, 200, 'first use of the code');
    my $res = browser()->request(HTTP::Request->new(GET => $cb, [Cookie => $cookie]));
    is($res->code, 400, 'code replayed with its old cookie: 400 (the provider refuses the used code)');
    is(fake_state()->{counters}{'openai.create_service_account'}, 1, 'still one key');
}

# --- missing, tampered, expired, foreign state ------------------------------
reset_fake();
{
    my $ua = browser();
    my $login = start_login($ua);
    my $cb = authorize($ua, $login->header('Location'), 'alice@example.com');
    my $res = browser()->get($cb);
    is($res->code, 400, 'callback without the state cookie: 400');

    my ($name, $value) = $login->header('Set-Cookie') =~ /^([^=]+)=([^;]+)/;
    my @parts = split /\./, $value;
    substr($parts[3], 5, 1) = substr($parts[3], 5, 1) eq 'A' ? 'B' : 'A';
    $res = browser()->request(HTTP::Request->new(GET => $cb, [Cookie => "$name=" . join('.', @parts)]));
    is($res->code, 400, 'tampered state cookie: 400');

    my $state = state_of($login->header('Location'));
    my %sealed = (s => $state, n => 'n', v => 'v' x 43);
    $res = browser()->request(HTTP::Request->new(GET => $cb, [Cookie => "$name=" . seal(%sealed, t => (time - 601) * 1000)]));
    is($res->code, 400, 'expired state cookie: 400');
    like(error_log(), qr/state cookie expired/, 'the log says it expired');

    $res = browser()->request(HTTP::Request->new(GET => $cb, [Cookie => "$name=" . seal(%sealed, s => "another" x 4, t => time * 1000)]));
    is($res->code, 400, 'state cookie of another attempt under this name: 400');

    my $other_key = encode_jwt(payload => '{"s":"x"}', alg => 'dir', enc => 'A256GCM', key => 'k' x 32);
    $res = browser()->request(HTTP::Request->new(GET => $cb, [Cookie => "$name=$other_key"]));
    is($res->code, 400, 'state cookie sealed with another key: 400');
    like($res->header('Set-Cookie') // '', qr/^\Q$name\E=; Path=\/; Max-Age=0/, 'the state cookie is cleared even on failure');

    $res = $ua->get($cb);
    is($res->code, 200, 'the untouched cookie still completes the sign-in');
}

# --- at most a handful of cookies kept --------------------------------------
{
    my $ua = browser();
    my @logins = map { start_login($ua) } 1 .. 6;
    my @names;
    $ua->cookie_jar->scan(sub { push @names, $_[1] if $_[1] =~ /^okey_state_/ });
    is(scalar @names, 4, 'six parallel attempts leave four state cookies');
    my %kept = map { $_ => 1 } @names;
    ok(!$kept{ 'okey_state_' . state_of($logins[0]->header('Location')) }, 'the oldest was dropped');
    ok($kept{ 'okey_state_' . state_of($logins[5]->header('Location')) }, 'the newest is kept');
}

# --- malformed callbacks ------------------------------------------------------
reset_fake();
{
    my $ua = browser();
    my $login = start_login($ua);
    my $state = state_of($login->header('Location'));
    my @cases = (
        ["?error=access_denied&state=$state", 'provider error'],
        ["?state=$state", 'missing code'],
        ["?code=abc", 'missing state'],
        ["?code=a&code=b&state=$state", 'repeated code'],
        ["?code=a&state=$state&state=$state", 'repeated state'],
        ["?code=a&state=%3Cscript%3E", 'malformed state'],
    );
    for my $case (@cases) {
        my $res = $ua->get($callback_url . $case->[0]);
        is($res->code, 400, "$case->[1]: 400");
    }
    my $res = $ua->get($callback_url . "?error=%3Cb%3Ex&state=$state");
    like($res->decoded_content, qr/&lt;b&gt;x/, 'the provider error is HTML-escaped on the page');
    unlike($res->decoded_content, qr/<b>x/, 'and never raw');
    no_key_issued('malformed callbacks');
}

# --- methods -------------------------------------------------------------------
{
    my $ua = browser();
    my $res = $ua->post(vhost_url('okey', '/'));
    is($res->code, 405, 'POST to the login handler: 405');
    is($res->header('Allow'), 'GET, HEAD', 'with Allow: GET, HEAD');
    is($ua->head(vhost_url('okey', '/'))->code, 302, 'HEAD on login redirects like GET');
    $res = $ua->head($callback_url . '?code=a&state=' . 'a' x 43);
    is($res->code, 405, 'HEAD on the callback: 405 (it would spend the code)');
    is($ua->post($callback_url)->header('Allow'), 'GET', 'callback allows GET only');
}

# --- a server without the module's settings -----------------------------------
{
    my $res = browser()->get(vhost_url('okey_unset', '/login'));
    is($res->code, 500, 'handler in a server without settings: 500');
    like(error_log(), qr/openaikey-login used in server .* which has no mod_openaikey configuration/,
         'and the log says why');
}

# --- cookies cjose could not have survived -------------------------------------
# A part of length 4n+1 made cjose's decoder abort the child; a short IV or
# tag made it read past its buffer. The runner fails on any crashed child.
reset_fake();
{
    my @hostile = ('eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0A..AAAAAAAAAAAAAAAA.QkJC.CCCCCCCCCCCCCCCCCCCCCC',
                   'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAA.QkJC.CCCC');
    for my $value (@hostile) {
        my $ua = browser();
        my $login = start_login($ua);
        my $callback = authorize($ua, $login->header('Location'), 'alice@example.com');
        my $name = 'okey_state_' . state_of($callback);
        my $res = browser()->request(HTTP::Request->new(GET => $callback, [Cookie => "$name=$value"]));
        is($res->code, 400, 'a malformed sealed cookie at the callback: 400');
        is(browser()->request(HTTP::Request->new(GET => vhost_url('okey', '/'), [Cookie => "$name=$value"]))->code,
           302, 'and at the login: a fresh start');
    }
}
