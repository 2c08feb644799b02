# Sign in and get a key: who is admitted, what the page shows, what it costs.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use URI ();

plan tests => 41;

sub issued_key_of {
    my ($state, $email) = @_;
    my ($account) = grep { $_->{name} =~ /-\Q$email\E$/ } @{ $state->{openai}{accounts}{proj_personal} || [] };
    return $account ? ($account, $state->{openai}{issued_keys}{ $account->{id} }) : ();
}

# --- the login redirect ------------------------------------------------------
reset_fake();
{
    my $ua = browser();
    my $res = start_login($ua);
    is($res->code, 302, 'login redirects');
    my $loc = URI->new($res->header('Location'));
    my %q = $loc->query_form;
    like($loc->path, qr{/oidc/authorize$}, 'to the discovered authorization endpoint');
    is($q{response_type}, 'code', 'response_type=code');
    is($q{scope}, 'openid email', 'scope openid email');
    is($q{client_id}, 'test-client', 'client id');
    is($q{redirect_uri}, vhost_url('okey', '/oauth2/callback'), 'redirect uri');
    is($q{code_challenge_method}, 'S256', 'PKCE S256');
    like($q{code_challenge}, qr/^[A-Za-z0-9_-]{43}$/, 'code challenge is a SHA-256 in base64url');
    ok($q{state} && $q{nonce} && $q{state} ne $q{nonce}, 'state and nonce');
    my $cookie = $res->header('Set-Cookie');
    like($cookie, qr/^okey_state_\Q$q{state}\E=[^;]+; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/,
         'one state cookie, HttpOnly, SameSite=Lax, not Secure for an http redirect URI');
    like($res->header('Cache-Control'), qr/no-store/, 'redirect is not cached');
}

# --- an allowed address gets the key the fake issued -------------------------
reset_fake();
{
    my $ua = browser();
    my $before = time;
    my $res = sign_in($ua, 'alice@example.com');
    is($res->code, 200, 'allowed address: 200');
    my ($account, $key) = issued_key_of(fake_state(), 'alice@example.com');
    ok($key, 'the fake created a service account');
    ok(index($res->decoded_content, $key) >= 0, 'the page shows the key the fake issued');
    like($res->decoded_content, qr/export OPENAI_API_KEY=\Q$key\E/, 'with an export line');
    my ($expires) = $account->{name} =~ /^okey-(\d+)-[a-z0-9]{8}-alice\@example\.com$/;
    ok($expires && $expires >= $before + 86400 && $expires <= time + 86400,
       "named okey-<expires>-<tag>-<email> ($account->{name})");
    like($res->decoded_content, qr/personal/, 'the page names the project');
    like($res->decoded_content, qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/, 'and the expiry in UTC');
    is($res->header('Cache-Control'), 'no-store', 'Cache-Control: no-store');
    is($res->header('Referrer-Policy'), 'no-referrer', 'Referrer-Policy: no-referrer');
    is($res->header('X-Content-Type-Options'), 'nosniff', 'nosniff');
    is($res->header('X-Frame-Options'), 'DENY', 'framing denied');
    my $csp = $res->header('Content-Security-Policy') // '';
    like($csp, qr/default-src 'none'/, 'CSP default-src none');
    like($csp, qr/frame-ancestors 'none'/, 'CSP frame-ancestors none');
    unlike($csp, qr/unsafe-inline|https?:/, 'CSP allows no inline code without nonce and no hosts');
    unlike($res->decoded_content, qr/<(?:link|img)\b|src=\s*"http/i, 'no external resources');
    like($res->header('Set-Cookie') // '', qr/okey_state_[^=]+=; Path=\/; Max-Age=0/, 'state cookie cleared');
}

# --- addresses compare case-insensitively; names are lower case --------------
{
    my $res = sign_in(browser(), 'CAROL@example.org');
    is($res->code, 200, 'allowed address in other case: 200');
    my ($account) = issued_key_of(fake_state(), 'carol@example.org');
    ok($account, 'service account named with the lower-case address');
}

# --- domains: allowed through hd, refused when hd differs --------------------
{
    my $res = sign_in(browser(), 'bob@corp.example', hd => 'corp.example');
    is($res->code, 200, 'address in an allowed hd domain: 200');
}
for my $case (['eve@evil.example', {}, 'disallowed address'],
              ['alice@example.com', { email_verified => 'false' }, 'unverified address'],
              ['dave@corp.example', { hd => 'other.example' }, 'hd mismatch']) {
    my ($email, $claims, $what) = @$case;
    reset_fake();
    my $res = sign_in(browser(), $email, %$claims);
    is($res->code, 403, "$what: 403");
    is(fake_state()->{counters}{'openai.create_service_account'} // 0, 0,
       "$what: no service account created");
}

# --- steady state: one token request and one OpenAI request per login --------
{
    # Other key servers on the same fake organisation reap it once after
    # startup (under valgrind, maybe only now): their requests must not count.
    ok(first_reaps_done(qw(okey okey_fresh okey_deep okey_post okey_jwks okey_nopass okey_noself
                           okey_groups)), 'the key servers sharing the fake have done their first reaps');
    my $ua = browser();
    is(sign_in($ua, 'alice@example.com')->code, 200, 'warm-up sign-in');
    reset_fake();
    is(sign_in($ua, 'alice@example.com')->code, 200, 'steady-state sign-in');
    my $c = fake_state()->{counters};
    is_deeply([map { $c->{$_} // 0 } qw(oidc.token openai.requests oidc.discovery oidc.jwks)],
              [1, 1, 0, 0],
              'exactly one token request and one OpenAI request; discovery and JWKS cached');
}

# --- the audit line ----------------------------------------------------------
like(error_log(), qr/\[openaikey:notice\].*issued key: service_account=svc_acct_\d+ email=alice\@example\.com project=personal \(proj_personal\) expires=\d{4}-/,
     'one audit line at notice for an issued key');
