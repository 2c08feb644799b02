# openaikey-admin: everyone's keys and spend behind Apache authentication,
# whose a key is, and revoking a key or all of a person's keys.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use Time::HiRes ();
use URI ();

plan tests => 65;

my $JSON = JSON::PP->new->utf8->canonical;
my $T = 'admin';
my $PID = "proj_$T";
my $url = vhost_url('okey_admin', '/admin');
my $control = LWP::UserAgent->new(timeout => 30);

sub accounts { return fake_state()->{tenants}{$T}{accounts}{$PID} || [] }
sub deleted { return [map { $_->{id} } @{ fake_state()->{tenants}{$T}{deleted} || [] }] }
sub accounts_of { my ($email) = @_; return [map { $_->{id} } grep { $_->{name} =~ /-\Q$email\E$/ } @{ accounts() }] }

sub as {
    my ($user, $req) = @_;
    $req->authorization_basic($user, 'secret');
    return $req;
}
sub admin_get {
    my ($query, %headers) = @_;
    my $uri = URI->new($url);
    $uri->query_form(@$query) if $query;
    return browser()->request(as($headers{user} // 'alice@example.com',
                                 HTTP::Request->new(GET => $uri, [Accept => 'application/json'])));
}
sub admin_json {
    my ($doc, %headers) = @_;
    my $user = delete $headers{user} // 'alice@example.com';
    return browser()->request(as($user, HTTP::Request->new(
        POST => $url, ['Content-Type' => 'application/json', Accept => 'application/json', %headers],
        ref $doc ? $JSON->encode($doc) : $doc)));
}
sub admin_form {
    my ($user, @fields) = @_;
    my $uri = URI->new('http:');
    $uri->query_form(@fields);
    return browser()->request(as($user, HTTP::Request->new(
        POST => $url, ['Content-Type' => 'application/x-www-form-urlencoded'], $uri->query)));
}
sub decoded { my ($res) = @_; return eval { $JSON->decode($res->decoded_content) } || {} }
sub record_usage {
    my (%usage) = @_;
    my $res = $control->post(main_url('/fake/usage'), Content => $JSON->encode({ tenant => $T, %usage }));
    die 'usage: ' . $res->status_line unless $res->is_success;
}
sub last_poll {
    my $res = $control->get(vhost_url('okey_admin', '/metrics'));
    return $res->decoded_content =~ /^openaikey_last_usage_poll_timestamp_seconds\{[^}]*\} (\d+)/m ? $1 : 0;
}
sub issue {
    my ($email) = @_;
    my $res = sign_in(browser(), $email, vhost => 'okey_admin');
    my ($key) = $res->decoded_content =~ /<pre id="key">([^<]+)</;
    die "no key for $email: " . $res->status_line unless $key;
    return $key;
}
sub logs {
    my $dir = Apache::Test::vars('t_logs');
    my $all = '';
    for my $path (glob("$dir/*_log")) {
        open my $fh, '<', $path or die "open $path: $!";
        local $/;
        $all .= <$fh>;
    }
    return $all;
}

seed_tenant($T, 'admin-project');

# --- who may use it: Apache decides, and without authentication nothing ------
my $open = browser()->get(vhost_url('okey_admin', '/admin-open'));
is($open->code, 500, 'a location without authentication refuses to serve');
unlike($open->decoded_content, qr/<table id="people"/, 'and shows nothing');
like(error_log(), qr/OKEY010: 500: openaikey-admin at <Location \/admin-open> \(request \/admin-open\) reached without an authenticated user/,
     'one log line names the location');
is(browser()->get($url)->code, 401, 'without credentials httpd asks for them');
is(browser()->request(as('alice@example.com', HTTP::Request->new(PUT => $url)))->code, 405, 'PUT: 405');

# --- keys issued, used, and polled ----------------------------------------------
my @alice_keys = (issue('alice@example.com'), issue('alice@example.com'));
my $carol_key = issue('carol@example.org');
my $dave_key = issue('dave@corp.example');
my $alice_ids = accounts_of('alice@example.com');
my ($carol_id) = @{ accounts_of('carol@example.org') };
my ($dave_id) = @{ accounts_of('dave@corp.example') };
is(scalar @$alice_ids, 2, 'alice holds two keys');
my %key_id_of = map { ($_->{service_account} // '') => $_->{id} }
                values %{ $JSON->decode($control->get(main_url("/fake/usage?tenant=$T"))->decoded_content)->{api_keys} };
record_usage(service_account_id => $carol_id, cost_usd => 6.5, input_tokens => 1000);
record_usage(service_account_id => $alice_ids->[0], cost_usd => 1.25, input_tokens => 100);
record_usage(service_account_id => $dave_id, cost_usd => 1.25, input_tokens => 10);
my $recorded = time;
my $deadline = time + 60;
Time::HiRes::sleep(0.2) while last_poll() <= $recorded && time < $deadline;
cmp_ok(last_poll(), '>', $recorded, 'a usage poll ran after the usage was recorded');

# --- the list ------------------------------------------------------------------------
my $res = admin_get();
is($res->code, 200, 'an administrator gets the list');
is($res->header('Content-Type'), 'application/json', 'as JSON when asked');
my $doc = decoded($res);
is_deeply([sort keys %$doc], [qw(keys next_page people)], 'with people, keys and next_page');
is_deeply([map { $_->{email} } @{ $doc->{people} }], ['carol@example.org', 'alice@example.com', 'dave@corp.example'],
          'people by spend, highest first, ties by address');
is_deeply([sort keys %{ $doc->{people}[0] }], [qw(budget_usd email live_keys over_budget spend_usd)],
          'each with the fields DESIGN.md fixes');
is($doc->{people}[0]{spend_usd}, 6.5, "carol's spend this period");
ok($doc->{people}[0]{over_budget}, 'carol is over the budget');
ok(!$doc->{people}[1]{over_budget}, 'alice is not');
is($doc->{people}[1]{live_keys}, 2, 'alice has two live keys');
is($doc->{people}[1]{budget_usd}, 5, 'the budget is the server\'s');
is_deeply($doc->{keys}, [], 'no keys without a search');
ok(!defined $doc->{next_page}, 'and one page only');
is(admin_get([page => 2])->code, 200, 'a page past the end is empty, not an error');
is_deeply(decoded(admin_get([page => 2]))->{people}, [], 'with nobody on it');
is(admin_get([page => 0])->code, 400, 'page 0: 400');
is(admin_get([page => 'x'])->code, 400, 'a page that is not a number: 400');
is(browser()->request(as('alice@example.com', HTTP::Request->new(HEAD => $url)))->code, 200, 'HEAD works too');

# --- finding a key's owner ------------------------------------------------------------
$doc = decoded(admin_json({ q => 'Alice@Example.com' }));
is_deeply([sort map { $_->{service_account_id} } @{ $doc->{keys} }], [sort @$alice_ids],
          'an address, any case, finds that person\'s live keys');
is_deeply([sort keys %{ $doc->{keys}[0] }],
          [qw(api_key_id cost_usd created_at email expires_at last_used_at project service_account_id)],
          'each with the fields DESIGN.md fixes');
is($doc->{keys}[0]{project}, $PID, 'in the project');
$doc = decoded(admin_get([q => $carol_id]));
is(scalar @{ $doc->{keys} }, 1, 'a service account id finds its key');
is($doc->{keys}[0]{email}, 'carol@example.org', 'and its owner');
is($doc->{keys}[0]{cost_usd}, 6.5, 'with what it cost');
$doc = decoded(admin_get([q => $key_id_of{$dave_id}]));
is_deeply([map { $_->{email} } @{ $doc->{keys} }], ['dave@corp.example'], 'a key id finds its owner');
$doc = decoded(admin_json({ q => $alice_keys[1] }));
is_deeply([map { $_->{service_account_id} } @{ $doc->{keys} }], [$alice_ids->[1]],
          'a whole leaked key finds its owner, and that key only');
is(scalar @{ decoded(admin_json({ q => 'nobody@example.com' }))->{keys} }, 0, 'an address with no keys finds nothing');
is(admin_get([q => 'svc_acct_no such'])->code, 400, 'a malformed id: 400');

# The page's search posts: the key is in no URL, and shown only by its ends.
$res = admin_form('alice@example.com', q => $carol_key);
is($res->code, 200, 'the search form posts');
like($res->decoded_content, qr/<td>carol\@example\.org<\/td><td><code>\Q$carol_id\E<\/code>/, 'and shows whose the key is');
is(index($res->decoded_content, $carol_key), -1, 'without the key');
like($res->decoded_content, qr/<form id="search" method="post"/, 'its search form posts too');
my $logs = logs();
ok(length $logs, 'the logs were read');
is(scalar(grep { index($logs, $_) >= 0 } @alice_keys, $carol_key), 0, 'no searched key is in any log file');

# --- revoking ----------------------------------------------------------------------------
my $page = browser()->request(as('alice@example.com', HTTP::Request->new(GET => $url)));
my ($token) = $page->decoded_content =~ /name="csrf" value="([^"]+)"/;
ok($token, 'the page carries a form token');
my ($bob_token) = browser()->request(as('bob@example.com', HTTP::Request->new(GET => $url)))
                      ->decoded_content =~ /name="csrf" value="([^"]+)"/;
is(admin_form('alice@example.com', revoke => $dave_id)->code, 403, 'a revoke without the token: 403');
is(admin_form('alice@example.com', revoke => $dave_id, csrf => "x$token")->code, 403, 'with a forged one: 403');
is(admin_form('alice@example.com', revoke => $dave_id, csrf => $bob_token)->code, 403, "with another administrator's: 403");
is_deeply(deleted(), [], 'none deleted anything');

$res = admin_form('alice@example.com', revoke => $dave_id, csrf => $token);
is($res->code, 200, 'a revoke with the token');
like($res->decoded_content, qr/Revoked 1 key: \Q$dave_id\E/, 'says what it revoked');
is_deeply(deleted(), [$dave_id], 'and deleted that key upstream');
like(error_log(), qr/OKEY105: revoked key: service_account=\Q$dave_id\E email=dave\@corp\.example .*by=admin admin=alice\@example\.com/,
     'the audit line names the administrator');
is(scalar @{ decoded(admin_json({ q => $dave_id }))->{keys} }, 0,
   'a search right after the revoke no longer finds the key live, whatever the last poll listed');
is(admin_form('alice@example.com', revoke => $dave_id, csrf => $token)->code, 404, 'a key already revoked: 404');

is(admin_json({ revoke => 'svc_acct_unknown' })->code, 404, 'an id no key of ours has: 404');
is(admin_json({ revoke => 'not an id' })->code, 400, 'a malformed id: 400');
is(admin_json({ revoke_person => 'not-an-address' })->code, 400, 'a malformed address: 400');
is(admin_json({ revoke => $carol_id, revoke_person => 'carol@example.org' })->code, 400, 'a key and a person at once: 400');
is(admin_json({ revoke => ['x'] })->code, 400, 'a field that is not a string: 400');
is(admin_json('{"revoke": "' . ('a' x 5000) . '"}')->code, 413, 'an oversize body: 413');
is(admin_json({ revoke_person => 'carol@example.org' }, Origin => 'http://evil.example')->code, 403,
   'a JSON revoke from another origin: 403');
is(admin_json({ revoke_person => 'carol@example.org' }, 'Sec-Fetch-Site' => 'cross-site')->code, 403,
   'or another site: 403');
is(admin_json({ revoke_person => 'carol@example.org' }, Origin => 'null')->code, 403,
   'or an opaque origin the browser does not call its own: 403');
is(admin_json({ revoke => 'svc_acct_unknown' }, Origin => 'null', 'Sec-Fetch-Site' => 'same-origin')
   ->code, 404, 'the console\'s own page, which sends no referrer and so a null origin, is heard');
is_deeply(deleted(), [$dave_id], 'no refused request deleted anything');

$res = admin_json({ revoke_person => 'alice@example.com' });
is($res->code, 200, 'a JSON revoke of a person');
is_deeply([sort @{ decoded($res)->{revoked} }], [sort @$alice_ids], 'answers what it revoked');
is_deeply([sort @{ deleted() }], [sort $dave_id, @$alice_ids], "and deleted all of that person's keys");
