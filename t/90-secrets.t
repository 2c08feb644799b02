# Secrets never reach a log, a page or a URL. Runs last: the error log then
# holds the whole suite's traffic, at LogLevel openaikey:debug.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use URI ();

plan tests => 12;

reset_fake();
my $ua = browser();
my $login = start_login($ua);
my $authorize = $login->header('Location');
my $callback = authorize($ua, $authorize, 'alice@example.com');
my %callback_query = URI->new($callback)->query_form;
my $code = $callback_query{code};
my $page = $ua->get($callback);
is($page->code, 200, 'a key was issued');
my ($key) = $page->decoded_content =~ /<pre id="key">([^<]+)</;
ok($key, 'the page shows it');

# Failures whose pages must not echo anything secret.
reset_fake();
add_fault(method => 'POST', path => 'service_accounts$', status => 401,
          body => '{"error":{"message":"Incorrect API key provided: test-adm*****key"}}');
my $failed = sign_in(browser(), 'alice@example.com');
unlike($failed->decoded_content, qr/test-adm|test-secret|Bearer/, 'an error page names no secret');

# An upstream (a gateway, say) that echoes the credential it was sent.
add_fault(method => 'POST', path => 'service_accounts$', status => 401,
          body => '{"error":{"message":"bad header Authorization: Bearer test-admin-key"}}');
my $echoed = sign_in(browser(), 'alice@example.com');
is($echoed->code, 502, 'an upstream that echoes the admin key fails the sign-in');
like(error_log(), qr/bad header Authorization: \[redacted\]/, 'and its message is logged with the credential scrubbed');

unlike($authorize, qr/test-secret|client_secret/, 'the authorization URL carries no client secret');

my $log = error_log();
my @secrets = (['the issued key', $key], ['an authorization code', $code],
               ['the client secret', 'test-secret'], ['the management key', 'test-admin-key'],
               ['the passphrase', 'correct horse battery staple']);
for my $secret (@secrets) {
    ok(index($log, $secret->[1]) < 0, "the error log holds no $secret->[0]");
}
unlike($log, qr/sk-test-/, 'nor any key the fake issued during the whole suite');
