# Self-service: lifetimes, the My keys session, revoking, the per-address
# cap, and the reaper's deprovisioning.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use Crypt::JWT qw(encode_jwt);
use Crypt::KeyDerivation qw(pbkdf2);
use HTTP::Request ();
use JSON::PP ();
use Time::HiRes ();
use URI ();

plan tests => 120;

my $JSON = JSON::PP->new->utf8->canonical;
my $now = time;
my $cookie_key = pbkdf2('correct horse battery staple', 'mod_openaikey state cookie v1',
                        200000, 'SHA256', 32);

sub account {
    my ($id, $email, $created, $expires) = @_;
    return { object => 'organization.project.service_account', id => $id,
             name => 'okey-' . ($expires // $now + 3600) . "-$email", role => 'member',
             created_at => $created // $now - 600 };
}


sub accounts_of { return fake_state()->{tenants}{ $_[0] }{accounts}{"proj_$_[0]"} || [] }
sub ids_left { return [sort map { $_->{id} } @{ accounts_of($_[0]) }] }
sub counter { return fake_state()->{tenants}{ $_[0] }{counters}{ $_[1] } // 0 }

sub keys_url { return vhost_url($_[0] // 'okey_self', '/keys') }

sub get_json {
    my ($ua, $url) = @_;
    return $ua->request(HTTP::Request->new(GET => $url, [Accept => 'application/json']));
}

sub post_json {
    my ($ua, $url, $doc, %headers) = @_;
    return $ua->request(HTTP::Request->new(
        POST => $url, [Accept => 'application/json', 'Content-Type' => 'application/json',
                       %headers], $JSON->encode($doc)));
}

sub post_form {
    my ($ua, $url, @fields) = @_;
    my $uri = URI->new('http:');
    $uri->query_form(@fields);
    return $ua->request(HTTP::Request->new(
        POST => $url, ['Content-Type' => 'application/x-www-form-urlencoded'], $uri->query));
}

sub csrf_of { my ($html) = @_; return ($html =~ /name="csrf" value="([^"]+)"/)[0] }

sub decoded { return $JSON->decode($_[0]->decoded_content) }


# --- lifetimes --------------------------------------------------------------
seed_tenant('self', 'self-project');
{
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_self', login => '/?ttl=8h');
    is($page->code, 200, 'a sign-in with ttl=8h issues a key');
    like($page->decoded_content, qr/id="lifetime">in 8 hours</, 'the key page says how long it lives');
    my ($name) = map { $_->{name} } @{ accounts_of('self') };
    my ($expires) = ($name // '') =~ /^okey-(\d+)-[a-z0-9]{8}-alice\@example\.com$/;
    ok($expires && abs($expires - (time + 28800)) <= 5, 'the account name carries the asked expiry');

    $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_self');
    like($page->decoded_content, qr/in 1 hour</, 'without ttl the key lives OpenAIKeyExpiration');

    my $creates = counter('self', 'openai.create_service_account');
    for my $ttl ('1e9', '-5', '8x', '%00', '2d', '86401', '59', '', '1.5h', '8h&ttl=1h') {
        my $res = browser()->get(vhost_url('okey_self', "/?ttl=$ttl"));
        is($res->code, 400, "ttl=$ttl: 400");
        like($res->decoded_content, qr/1 minute to 1 day|repeats a parameter|malformed/,
             "ttl=$ttl: the page names the allowed range or the fault");
        ok(!grep({ /okey_state_/ } $res->header('Set-Cookie')), "ttl=$ttl: no sign-in begins");
    }
    is(counter('self', 'openai.create_service_account'), $creates, 'refused lifetimes created nothing');
    like(error_log(), qr/OKEY010: 400: ttl is outside the allowed range/, 'the admin sees why');

    for my $next ('https://evil.example/', '//evil.example', 'KEYS', 'keys%0d%0a') {
        is(browser()->get(vhost_url('okey_self', "/?next=$next"))->code, 400,
           "next=$next: 400, never a redirect");
    }
}

# --- the session and My keys ------------------------------------------------
seed_tenant('self', 'self-project', account('svc_bob', 'bob@example.com'));
# The ledger learns what the reset fakes hold from a reap's listing.
reap_now('okey_self');
my $alice = browser();
my $key_page = sign_in($alice, 'alice@example.com', vhost => 'okey_self');
my ($session_cookie) = grep { /^okey_session=/ } $key_page->header('Set-Cookie');
like($session_cookie // '', qr/; Path=\/; Max-Age=900;.*HttpOnly; SameSite=Strict/,
     'a sign-in sets the session cookie: HttpOnly, SameSite=Strict, the session lifetime');
my $html = $key_page->decoded_content;
my ($alice_key) = map { $_->{id} } grep { $_->{name} =~ /alice/ } @{ accounts_of('self') };
like($html, qr/<form method="post" action="\/keys"><input type="hidden" name="service_account" value="\Q$alice_key\E">/,
     'the key page offers to revoke this key');
like($html, qr/<a id="my-keys" href="\/keys">My keys<\/a>/, 'and links to My keys');
like($key_page->header('Content-Security-Policy'), qr/form-action 'self'/, 'its forms may post here only');

my $mine = $alice->get(keys_url());
is($mine->code, 200, 'My keys answers a session');
like($mine->decoded_content, qr/\Q$alice_key\E/, 'and lists the key');
unlike($mine->decoded_content, qr/svc_bob|sk-test-/, 'never another person\'s key, nor a key value');

my $listed = decoded(get_json($alice, keys_url()));
is($listed->{email}, 'alice@example.com', 'the JSON names the address');
is_deeply([map { $_->{service_account_id} } @{ $listed->{keys} }], [$alice_key], 'and lists its keys');
ok($listed->{keys}[0]{expires_at} > time && $listed->{keys}[0]{created_at} > 0, 'with expiry and creation time');

# No session, a forged one, an expired one.
{
    my $res = browser()->get(keys_url());
    is($res->code, 200, 'without a session, My keys answers a page');
    like($res->decoded_content, qr/href="\/\?next=keys"/, 'that signs in for My keys');
    $res = get_json(browser(), keys_url());
    is($res->code, 401, 'scripts without a session get 401');

    my $forged = browser();
    $forged->cookie_jar->set_cookie(0, 'okey_session', 'eyJhbGciOiJkaXIifQ..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA',
                                    '/', '127.0.0.1', undef, 1, 0, 900, 0);
    $res = $forged->get(keys_url());
    unlike($res->decoded_content, qr/\Q$alice_key\E/, 'a forged session cookie sees no keys');
    like(join(' ', $res->header('Set-Cookie')), qr/okey_session=; Path=\/; Max-Age=0/, 'and is cleared');

    my $expired = encode_jwt(payload => $JSON->encode({ email => 'alice@example.com',
        iss => 'http://127.0.0.1:' . Apache::Test::vars('port') . '/oidc', sub => 's', sid => 'x',
        iat => time - 2000, exp => time - 1000 }), alg => 'dir', enc => 'A256GCM', key => $cookie_key);
    $res = browser()->request(HTTP::Request->new(GET => keys_url(), [Cookie => "okey_session=$expired",
                                                                       Accept => 'application/json']));
    is($res->code, 401, 'an expired session, sealed with the right key, is refused');

    my $valid = encode_jwt(payload => $JSON->encode({ email => 'alice@example.com',
        iss => 'http://127.0.0.1:' . Apache::Test::vars('port') . '/oidc', sub => 's', sid => 'x',
        iat => time, exp => time + 600 }), alg => 'dir', enc => 'A256GCM', key => $cookie_key);
    $res = browser()->request(HTTP::Request->new(GET => keys_url('okey_self'),
                                                 [Cookie => "okey_session=$valid", Accept => 'application/json']));
    is($res->code, 200, 'a session sealed with the passphrase\'s key is honoured (the test knows it)');
    is(browser()->request(HTTP::Request->new(GET => keys_url('okey_noself'),
                                             [Cookie => "okey_session=$valid"]))->code, 404,
       'a server with OpenAIKeySessionLifetime 0 offers no My keys');
}

# Revoking: CSRF, other people's keys, unknown ids.
{
    my $token = csrf_of($mine->decoded_content);
    ok($token, 'My keys carries a CSRF token');
    my $other = browser();
    my $other_page = sign_in($other, 'carol@example.org', vhost => 'okey_self');
    my $other_token = csrf_of($other->get(keys_url())->decoded_content);
    ok($other_token && $other_token ne $token, 'another session has another token');

    my $res = post_form($alice, keys_url(), service_account => $alice_key, csrf => $other_token);
    is($res->code, 403, 'a CSRF token from another session: 403');
    $res = post_form($alice, keys_url(), service_account => $alice_key);
    is($res->code, 403, 'no CSRF token: 403');
    $res = post_form($alice, keys_url(), service_account => $alice_key, csrf => $token, csrf => $token);
    is($res->code, 403, 'two CSRF tokens: 403');
    ok((grep { $_ eq $alice_key } @{ ids_left('self') }), 'none of these revoked anything');

    $res = post_form($alice, keys_url(), service_account => 'svc_bob', csrf => $token);
    is($res->code, 404, 'revoking another person\'s key: 404');
    $res = post_json($alice, keys_url(), { revoke => 'svc_nothing' });
    is($res->code, 404, 'revoking an id that does not exist: 404');
    like(decoded($res)->{error}, qr/no key with that id/, 'with a clear message');
    is_deeply([grep { $_ eq 'svc_bob' } @{ ids_left('self') }], ['svc_bob'], 'bob\'s key is untouched');

    $res = $alice->request(HTTP::Request->new(POST => keys_url(), ['Content-Type' => 'text/plain'], 'x'));
    is($res->code, 415, 'a body that is neither a form nor JSON: 415');
    $res = post_json($alice, keys_url(), { revoke => 'x' x 5000 });
    is($res->code, 413, 'an oversized body: 413');
    $res = $alice->request(HTTP::Request->new(OPTIONS => keys_url(),
                                              ['Access-Control-Request-Method' => 'POST']));
    is($res->code, 405, 'a CORS preflight is refused');

    $res = post_form($alice, keys_url(), service_account => $alice_key, csrf => $token);
    is($res->code, 200, 'the revoke form revokes');
    like($res->decoded_content, qr/Revoked 1 key\./, 'and the updated page says so');
    unlike($res->decoded_content, qr/\Q$alice_key\E/, 'without the key');
    ok(!(grep { $_ eq $alice_key } @{ ids_left('self') }), 'the account is gone upstream');
    like(error_log(), qr/OKEY105: revoked key: service_account=\Q$alice_key\E email=alice\@example\.com .*by=user/,
         'an audit line says who revoked which key');
    like($other_page->decoded_content, qr/Your temporary OpenAI API key/, 'carol got her key meanwhile');
}

# A key reaped meanwhile, two revokes at once, revoke all.
{
    seed_tenant('self', 'self-project', map { account("svc_a$_", 'alice@example.com', $now - 600 + $_) } 1 .. 3);
    reap_now('okey_self');
    add_fault(tenant => 'self', method => 'DELETE', path => 'svc_a1$', status => 404,
              body => '{"error":{"message":"No such service account"}}');
    my $res = post_json($alice, keys_url(), { revoke => 'svc_a1' });
    is($res->code, 200, 'a key already gone upstream (404) leaves the list without error');
    is(counter('self', 'openai.DELETE'), 1, 'after one delete that answered 404');
    is_deeply([map { $_->{service_account_id} } @{ decoded($res)->{revoked} }], ['svc_a1'], 'and is reported so');

    # Each on a connection of its own, with alice's session.
    my @pids;
    for (1 .. 2) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $ua = browser();
            $ua->cookie_jar($alice->cookie_jar);
            my $code = post_json($ua, keys_url(), { revoke => 'svc_a2' })->code;
            exit($code == 200 ? 0 : $code == 404 ? 1 : $code - 400);
        }
        push @pids, $pid;
    }
    my @exits = map { waitpid($_, 0); $? >> 8 } @pids;
    ok(!(grep { $_ > 1 } @exits) && (grep { $_ == 0 } @exits),
       "two revokes at once: one succeeds, neither fails (@{[map { $_ == 0 ? 200 : $_ == 1 ? 404 : $_ + 400 } @exits]})");
    ok(!(grep { $_ eq 'svc_a2' } @{ ids_left('self') }), 'and the key is gone');

    $res = post_json($alice, keys_url(), { revoke => 'all' });
    is($res->code, 200, 'revoke all');
    is_deeply(decoded($res)->{keys}, [], 'leaves no key');
    # svc_a1 answered 404, gone as far as anyone can tell; the fake keeps it.
    is_deeply([grep { $_ ne 'svc_a1' } @{ ids_left('self') }], [], 'upstream either');
    $res = post_json($alice, keys_url(), { revoke => 'all' });
    is($res->code, 200, 'revoke all with nothing left is fine');
}

# A revoke-all while a reap deletes the same keys.
{
    # The ledger holds alice's live keys; the expired ones come after it was filled.
    seed_tenant('self', 'self-project', (map { account("svc_y$_", 'alice@example.com', $now - 600 + $_) } 1 .. 2));
    reap_now('okey_self');
    merge_fake({ tenants => { self => { accounts => { proj_self => [
        (map { account("svc_y$_", 'alice@example.com', $now - 600 + $_) } 1 .. 2),
        (map { account("svc_x$_", 'alice@example.com', $now - 7200, $now - 60) } 1 .. 3)] } } } });
    add_fault(tenant => 'self', method => 'DELETE', path => 'svc_x\d$', delay => 1, times => 3);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        exit(reap_now('okey_self')->code == 200 ? 0 : 1);
    }
    my $deadline = time + 30;
    Time::HiRes::sleep(0.05) until decoded(browser()->get(vhost_url('okey_self', '/status')))->{last_reap}{running}
                                   || time > $deadline;
    my $res = post_json($alice, keys_url(), { revoke => 'all' });
    waitpid($pid, 0);
    is($? >> 8, 0, 'a reap deleting expired keys of alice ran');
    is($res->code, 200, 'a revoke-all during it succeeds');
    is_deeply(ids_left('self'), [], 'and nothing of alice\'s is left');
}

# --- a sign-in for My keys issues nothing ----------------------------------
{
    seed_tenant('self', 'self-project', account('svc_old', 'dave@corp.example'));
    reap_now('okey_self');
    my $ua = browser();
    my $page = sign_in($ua, 'dave@corp.example', vhost => 'okey_self', login => '/?next=keys',
                       hd => 'corp.example');
    is($page->code, 200, 'a sign-in for My keys succeeds');
    like($page->decoded_content, qr/<meta http-equiv="refresh" content="0;url=\/keys">/,
         'and leads on to My keys');
    unlike($page->decoded_content, qr/sk-/, 'without a key');
    is(counter('self', 'openai.create_service_account'), 0, 'nothing was created');
    like($ua->get(keys_url())->decoded_content, qr/svc_old/, 'the session shows the existing key');
}

# --- the cap ------------------------------------------------------------------
{
    seed_tenant('self', 'self-project', (map { account("svc_c$_", 'alice@example.com', $now - 900 + $_) } 1 .. 3),
         account('svc_c_bob', 'bob@example.com', $now - 1000));
    is(reap_now('okey_self')->code, 200, 'a reap fills the ledger');
    add_fault(tenant => 'self', method => 'POST', path => 'service_accounts$', status => 500);
    my $failed = sign_in(browser(), 'alice@example.com', vhost => 'okey_self');
    is($failed->code, 502, 'a failed creation fails the sign-in');
    is(scalar @{ accounts_of('self') }, 4, 'and revokes nothing');

    my $lists = counter('self', 'openai.list_service_accounts');
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_self');
    is($page->code, 200, 'a fourth key for alice is issued');
    is(counter('self', 'openai.list_service_accounts'), $lists, 'the sign-in consulted the ledger, not a listing');
    like($page->decoded_content, qr/revoked your oldest keys:<\/p><ul><li><code>svc_c1<\/code>/,
         'the key page names the key the cap revoked');
    is_deeply([grep { /svc_c/ } @{ ids_left('self') }], [qw(svc_c2 svc_c3 svc_c_bob)],
              'only alice\'s oldest went; bob\'s key stays');
    like(error_log(), qr/OKEY105: revoked key: service_account=svc_c1 email=alice\@example\.com .*by=cap/,
         'the audit line says the cap did it');

    $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_self');
    like($page->decoded_content, qr/revoked your oldest keys:<\/p><ul><li><code>svc_c2<\/code>/,
         'the ledger learnt of the key the last sign-in issued and the one it revoked');
    is(counter('self', 'openai.list_service_accounts'), $lists, 'still without a listing');
}

# --- deprovisioning and the cap in the reaper ------------------------------------
{
    seed_tenant('deprov', 'deprov-project',
         account('svc_d_mallory', 'mallory@example.com'),
         account('svc_d_dave', 'dave@corp.example'),
         (map { account("svc_d_alice$_", 'alice@example.com', $now - 900 + $_) } 1 .. 3),
         account('svc_d_expired', 'alice@example.com', $now - 7200, $now - 60),
         { object => 'organization.project.service_account', id => 'svc_d_foreign',
           name => 'someone-else', role => 'member', created_at => $now - 90000 });
    is(reap_now('okey_deprov')->code, 200, 'a reap ran');
    is_deeply(ids_left('deprov'), [qw(svc_d_alice2 svc_d_alice3 svc_d_dave svc_d_foreign)],
              'it took the disallowed address\'s key, alice\'s oldest beyond the cap and the expired one');
    my $status = decoded(browser()->get(vhost_url('okey_deprov', '/status')));
    is($status->{keys_revoked}{policy}, 1, '/status counts the policy\'s revocation');
    is($status->{keys_revoked}{cap}, 1, 'and the cap\'s');
    my $metrics = browser()->get(vhost_url('okey_deprov', '/metrics'))->decoded_content;
    like($metrics, qr/^openaikey_keys_revoked_total\{server="[^"]+",by="policy"\} 1$/m, 'metrics: by policy');
    like($metrics, qr/^openaikey_keys_revoked_total\{server="[^"]+",by="cap"\} 1$/m, 'metrics: by cap');
    my $log = error_log();
    like($log, qr/OKEY305: revoked key: service_account=svc_d_mallory email=mallory\@example\.com .*by=policy/,
         'an audit line for the policy\'s revocation');
    like($log, qr/OKEY305: revoked key: service_account=svc_d_alice1 .*by=cap/, 'and for the cap\'s');

    my $self_metrics = browser()->get(vhost_url('okey_self', '/metrics'))->decoded_content;
    like($self_metrics, qr/by="user"\} [1-9]/, 'revocations by their holder are counted');
}

# --- without RevokeDisallowed the reaper leaves live keys alone ----------------
{
    seed_tenant('self', 'self-project', account('svc_m', 'mallory@example.com'),
         (map { account("svc_k$_", 'alice@example.com', $now - 900 + $_) } 1 .. 3));
    is(reap_now('okey_self')->code, 200, 'a reap ran on the server without RevokeDisallowed');
    is_deeply(ids_left('self'), [qw(svc_k1 svc_k2 svc_k3 svc_m)],
              'it kept the live key of an address no longer allowed, and three keys within the cap');
}

# --- a ledger too small for the project: sign-ins list instead -------------------
SKIP: {
    skip 'listing 1100 accounts outlasts the wait under valgrind', 5 if $ENV{OKEY_VALGRIND};
    seed_tenant('deprov', 'deprov-project', map { account("svc_many$_", "user$_\@corp.example") } 1 .. 1100);
    is(reap_now('okey_deprov')->code, 200, 'a reap listed 1100 live keys');
    my $lists = counter('deprov', 'openai.list_service_accounts');
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_deprov');
    is($page->code, 200, 'a sign-in still issues a key');
    ok(counter('deprov', 'openai.list_service_accounts') > $lists, 'and lists the keys for the cap');
    like(error_log(), qr/OKEY110: the ledger cannot answer/, 'saying why, for the admin');
    is(scalar @{ accounts_of('deprov') }, 1101, 'nothing was revoked that the cap allows');
}
