# Profiles: <Location> settings decide who gets which key, at the single
# callback, from the path the sealed state names.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use Crypt::JWT qw(encode_jwt);
use Crypt::KeyDerivation qw(pbkdf2);
use HTTP::Request ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Time::HiRes ();

plan tests => 26;

my $JSON = JSON::PP->new->utf8->canonical;
my $now = time;

sub project { my ($id, $name) = @_; return { id => $id, object => 'organization.project', name => $name,
                                             status => 'active', archived_at => undef, created_at => 1711471533 } }
sub account {
    my ($id, $email, $expires) = @_;
    return { object => 'organization.project.service_account', id => $id, role => 'member',
             name => "okey-$expires-$email", created_at => $now - 7200 };
}
sub seed {
    my (%accounts) = @_;
    reset_fake({ tenants => { prof => { projects => [project('proj_main', 'main-project'),
                                                     project('proj_ml', 'ml-project')],
                                        accounts => { proj_main => $accounts{main} || [],
                                                      proj_ml => $accounts{ml} || [] } } } });
}
sub accounts_in { return fake_state()->{tenants}{prof}{accounts}{ $_[0] } || [] }
sub expiry_of { my ($account) = @_; return ($account->{name} =~ /^okey-(\d+)-/)[0] }

seed();
my $page = sign_in(browser(), 'dave@elsewhere.example', vhost => 'okey_profiles', login => '/ml');
is($page->code, 200, 'the /ml profile admits the address it lists');
like($page->decoded_content, qr/<dd>ml-project<\/dd>/, 'and issues into its project');
like($page->decoded_content, qr/id="lifetime">in 10 minutes</, 'with its default lifetime');
my ($ml_key) = @{ accounts_in('proj_ml') };
ok($ml_key && abs(expiry_of($ml_key) - time - 600) <= 5, 'the account lives there, named for 600 s');
is(scalar @{ accounts_in('proj_main') }, 0, 'nothing went to the server\'s project');

is(sign_in(browser(), 'alice@example.com', vhost => 'okey_profiles', login => '/ml')->code, 403,
   'an address only the server allows is refused at /ml');
$page = sign_in(browser(), 'alice@example.com', vhost => 'okey_profiles');
is($page->code, 200, 'and gets her key at /');
like($page->decoded_content, qr/<dd>main-project<\/dd>/, 'in the server\'s project');
is(sign_in(browser(), 'dave@elsewhere.example', vhost => 'okey_profiles')->code, 403,
   'the /ml address is refused at /');
$page = sign_in(browser(), 'eve@elsewhere.example', vhost => 'okey_profiles', login => '/ml',
                groups_json => '["ml-team"]');
like($page->decoded_content, qr/<dd>ml-project<\/dd>/, 'a member of the /ml group gets a key there');
is(sign_in(browser(), 'eve@elsewhere.example', vhost => 'okey_profiles', groups_json => '["ml-team"]')->code,
   403, 'but not at /, whose profile names no group');

my $res = browser()->get(vhost_url('okey_profiles', '/ml?ttl=30m'));
is($res->code, 400, 'a lifetime over the profile\'s maximum: 400');
like($res->decoded_content, qr/1 minute to 20 minutes/, 'naming the profile\'s range');
$page = sign_in(browser(), 'dave@elsewhere.example', vhost => 'okey_profiles', login => '/ml?ttl=15m');
like($page->decoded_content, qr/in 15 minutes/, 'one within it is honoured');

# The callback never takes a profile from the browser: the path is sealed.
{
    my $key = pbkdf2('correct horse battery staple', 'mod_openaikey state cookie v1', 200000, 'SHA256', 32);
    my $callback = vhost_url('okey_profiles', '/oauth2/callback');
    for my $case (['/gone', 'a profile path that no longer exists'],
                  ['/status', 'a path some other handler serves'],
                  ['/ml%2F..%2Fstatus', 'a path with encoded characters']) {
        my $state = 's' x 43;
        my $sealed = encode_jwt(payload => $JSON->encode({ s => $state, n => 'n' x 43, v => 'v' x 43,
                                                           t => int(Time::HiRes::time() * 1000),
                                                           l => 0, x => 0,
                                                           p => encode_base64url($case->[0]) }),
                                alg => 'dir', enc => 'A256GCM', key => $key);
        my $res = browser()->request(HTTP::Request->new(GET => "$callback?code=c&state=$state",
                                                        [Cookie => "okey_state_$state=$sealed"]));
        is($res->code, 400, "$case->[1]: 400");
    }
    like(error_log(), qr/state cookie names profile \/gone, which no openaikey-login serves now/,
         'the log says which profile');
}

# openaikey-issue under the profile takes its settings too.
$res = browser()->request(HTTP::Request->new(
    POST => vhost_url('okey_profiles', '/ml/issue'),
    ['Content-Type' => 'application/json', Accept => 'application/json',
     'X-Test-User' => encode_base64url('dave@elsewhere.example')], '{}'));
my $doc = $res->code == 200 ? $JSON->decode($res->decoded_content) : {};
is($doc->{project}, 'ml-project', 'openaikey-issue in the profile issues into its project');
ok($doc->{expires_at} && abs($doc->{expires_at} - time - 600) <= 5, 'with its lifetime');

# The reaper covers every profile's project.
seed(main => [account('svc_old_main', 'alice@example.com', $now - 60)],
     ml => [account('svc_old_ml', 'dave@elsewhere.example', $now - 60)]);
my $status = $JSON->decode(browser()->get(vhost_url('okey_profiles', '/status'))->decoded_content);
is_deeply([map { $_->{name} } @{ $status->{projects} }], ['main-project', 'ml-project'],
          '/status names both projects');
is_deeply([map { $_->{keys_issued} } @{ $status->{projects} }], [1, 4],
          'with the keys issued into each');
my $metrics = browser()->get(vhost_url('okey_profiles', '/metrics'))->decoded_content;
like($metrics, qr/^openaikey_project_keys_issued_total\{server="[^"]+",project="ml-project"\} 4$/m,
     '/metrics counts them per project too');
my $deadline = time + 60;
do {
    $res = browser()->request(HTTP::Request->new(POST => vhost_url('okey_profiles', '/revoke'),
                                                 [Accept => 'application/json']));
    Time::HiRes::sleep(0.5) if $res->code == 202;
} while ($res->code == 202 && time < $deadline);
is($res->code, 200, 'a reap ran');
is(scalar(@{ accounts_in('proj_main') }) + scalar(@{ accounts_in('proj_ml') }), 0,
   'and took the expired keys of both projects');
$status = $JSON->decode(browser()->get(vhost_url('okey_profiles', '/status'))->decoded_content);
is_deeply([map { $_->{keys_reaped} } @{ $status->{projects} }], [1, 1], 'counted per project');
