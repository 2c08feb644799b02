# The upstream services: finding or creating the project, client
# authentication, and every way they can fail.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use Time::HiRes ();

plan tests => 39;

sub counter { return fake_state()->{counters}{ $_[0] } // 0 }

# --- the project is created when missing --------------------------------------
reset_fake();
{
    my $res = sign_in(browser(), 'alice@example.com', vhost => 'okey_fresh');
    is($res->code, 200, 'sign-in on a server whose project does not exist yet');
    my $state = fake_state();
    my ($project) = grep { $_->{name} eq 'fresh-project' } @{ $state->{openai}{projects} };
    ok($project, 'the project was created');
    is($state->{counters}{'openai.create_project'}, 1, 'once');
    is(scalar @{ $state->{openai}{accounts}{ $project->{id} } || [] }, 1, 'and holds the new service account');
}

# --- the project is found beyond the first page of 100 --------------------------
{
    my @projects = map { { id => "proj_filler_$_", object => 'organization.project', name => "filler $_",
                           status => 'active', created_at => 1711471533 } } 1 .. 130;
    # An archived namesake must not be taken for it.
    splice @projects, 10, 0, { id => 'proj_archived', name => 'deep-project', status => 'archived',
                               archived_at => 1711471600, created_at => 1711471533 };
    splice @projects, 120, 0, { id => 'proj_deep', name => 'deep-project', status => 'active',
                                archived_at => undef, created_at => 1711471533 };
    reset_fake({ openai => { projects => [OkeyTest::default_project(), @projects] } });
    my $res = sign_in(browser(), 'alice@example.com', vhost => 'okey_deep');
    is($res->code, 200, 'sign-in on a server whose project is on the second page');
    is(counter('openai.list_projects'), 2, 'two pages listed');
    is(counter('openai.create_project'), 0, 'nothing created');
    is(scalar @{ fake_state()->{openai}{accounts}{proj_deep} || [] }, 1, 'the key is in the active project of that name');
}

# --- client_secret_post where discovery lists only that -------------------------
reset_fake();
{
    my $res = sign_in(browser(), 'alice@example.com', vhost => 'okey_post');
    is($res->code, 200, 'sign-in with a provider that lists only client_secret_post');
    is(counter('oidc.token.client_secret_post'), 1, 'the secret went in the body');
    is(counter('oidc.token.client_secret_basic'), 0, 'not in a Basic header');
}
reset_fake();
{
    sign_in(browser(), 'alice@example.com');
    is(counter('oidc.token.client_secret_basic'), 1, 'client_secret_basic by default');
}

# --- OpenAI failures ---------------------------------------------------------------
my @failures = (
    [{ status => 401, body => '{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}' },
     502, qr/OpenAI service account creation answered 401: Incorrect API key provided \(check OpenAIKeyManagementKey\)/, 'admin key refused (401)'],
    [{ status => 500 }, 502, qr/service account creation answered 500/, 'server error (500)'],
    [{ status => 200, body => '{"object": "organization.project.service_account", "id": ' },
     502, qr/malformed service account/, 'malformed JSON'],
    [{ status => 200, body => '{"object":"organization.project.service_account","id":"svc_acct_x","name":"n","api_key":null}' },
     502, qr/service account without api_key/, 'no api_key in the answer'],
    [{ delay => upstream_timeout() + 2 }, 504, qr/timed out after ${\ upstream_timeout()} s/, 'a hang past the timeout'],
);
for my $case (@failures) {
    my ($fault, $status, $log, $what) = @$case;
    reset_fake();
    add_fault(method => 'POST', path => 'service_accounts$', %$fault);
    my $res = sign_in(browser(), 'alice@example.com');
    is($res->code, $status, "$what: $status");
    like(error_log(), $log, "$what: the log says why");
}

# --- the hung creation finished upstream: the account it made is deleted ------------
{
    # The last case above: the module gave up after its timeout, the fake
    # made the account two seconds later. The reaper looks for it by name.
    my $deadline = time + 30;
    sleep 1 until error_log() =~ /OKEY102: creation of service account (\S+) in project proj_personal got no clear answer/ || time > $deadline;
    my ($name) = error_log() =~ /OKEY102: creation of service account (\S+) in project/;
    ok($name, 'a creation that got no answer is left to the reaper, named');
    my $gone = sub { error_log() =~ /reaped key: service_account=\S+ email=alice\@example\.com .*\(its creation got no clear answer/ };
    Time::HiRes::sleep(0.25) until $gone->() || time > $deadline;
    ok($gone->(), 'which deletes the account the upstream made after all');
    is(scalar @{ fake_state()->{openai}{accounts}{proj_personal} || [] }, 0, 'so no key lives that nobody holds');
}

# --- OpenAI busy (429): waited out when short, else 503 with its Retry-After -----------
reset_fake();
add_fault(method => 'POST', path => 'service_accounts$', status => 429, retry_after => 1);
{
    my $res = sign_in(browser(), 'alice@example.com');
    is($res->code, 200, 'a 429 asking for a second is waited out, and the key issued');
    is(counter('openai.POST'), 2, 'after asking twice');
}
reset_fake();
add_fault(method => 'POST', path => 'service_accounts$', status => 429, retry_after => 30);
{
    my $res = sign_in(browser(), 'alice@example.com');
    is($res->code, 503, 'a 429 asking for half a minute: 503');
    is($res->header('Retry-After'), 30, 'with its Retry-After');
    like($res->decoded_content, qr/OpenAI is busy .* try again in 30 seconds/, 'and a page that says when to come back');
    is(counter('openai.create_service_account'), 0, 'and no key made');
}
reset_fake();
add_fault(method => 'GET', path => 'projects$', status => 429, times => 2);
{
    my $res = sign_in(browser(), 'alice@example.com', vhost => 'okey_fresh');
    ok($res->code == 503 && $res->header('Retry-After') == 60, 'a 429 without Retry-After on the project lookup: 503, Retry-After 60');
}

# --- the provider refuses the client ------------------------------------------------
reset_fake({ oidc => { client_secret => 'rotated-secret' } });
{
    my $res = sign_in(browser(), 'alice@example.com');
    is($res->code, 502, 'token endpoint refuses the client: 502');
    like(error_log(), qr/token endpoint answered 401 \(invalid_client\); check OpenAIKeyClientID/,
         'the log points at the client settings');
    is(counter('openai.requests'), 0, 'no OpenAI request');
}

# --- an ID token the module must not trust ------------------------------------------
for my $case ([{ aud => 'someone-else' }, qr/aud does not contain the client ID/, 'another audience'],
              [{ exp => 'now-3600' }, qr/token expired/, 'an expired token'],
              [{ nonce => 'replayed' }, qr/nonce does not match/, 'another nonce']) {
    my ($claims, $log, $what) = @$case;
    reset_fake();
    my $res = sign_in(browser(), 'alice@example.com', %$claims);
    ok($res->code == 502 && error_log() =~ $log && !counter('openai.requests'), "$what: 502, logged, no key");
}

# --- the server survived all of it -----------------------------------------------------
reset_fake();
is(sign_in(browser(), 'alice@example.com')->code, 200, 'a sign-in after the failures works');
