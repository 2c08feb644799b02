# openaikey-issue behind Debian's mod_auth_openidc, which signs in at the
# fake provider: the address from r->user (OIDCRemoteUserClaim email) and
# from its claim variable (OpenAIKeyUserVar OIDC_CLAIM_email).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use URI ();

plan skip_all => 'mod_auth_openidc is not installed'
    unless -f '/usr/lib/apache2/modules/mod_auth_openidc.so';
plan tests => 8;

seed_tenant('issue', 'issue-project');

# Signs in through mod_auth_openidc at $vhost; returns the browser and the
# page /issue then shows.
sub through_openidc {
    my ($vhost) = @_;
    my $ua = browser();
    # mod_auth_openidc sends only what looks like a browser to sign in.
    $ua->default_header(Accept => 'text/html');
    my $start = $ua->get(vhost_url($vhost, '/issue'));
    die 'mod_auth_openidc did not redirect: ' . $start->status_line unless $start->code == 302;
    my $callback = authorize($ua, $start->header('Location'), 'alice@example.com');
    my $back = $ua->get($callback);
    die 'its callback: ' . $back->status_line . ' ' . $back->decoded_content unless $back->code == 302;
    return ($ua, $ua->get(vhost_url($vhost, '/issue')));
}

my ($ua, $page) = through_openidc('okey_openidc');
is($page->code, 200, 'after mod_auth_openidc\'s sign-in, openaikey-issue answers');
like($page->decoded_content, qr/Signed in as <strong>alice\@example\.com<\/strong>/,
     'with the address from r->user (the email claim)');
my ($token) = $page->decoded_content =~ /name="csrf" value="([^"]+)"/;
my $res = $ua->request(HTTP::Request->new(POST => vhost_url('okey_openidc', '/issue'),
                                          ['Content-Type' => 'application/x-www-form-urlencoded'],
                                          "csrf=$token&ttl=3600"));
is($res->code, 200, 'the form issues a key');
like($res->decoded_content, qr/<pre id="key">sk-test-/, 'and shows it');
ok((grep { $_->{name} =~ /^okey-\d+-[a-z0-9]{8}-alice\@example\.com$/ }
    @{ fake_state()->{tenants}{issue}{accounts}{proj_issue} || [] }), 'named for alice');

is(browser()->get(vhost_url('okey_openidc', '/issue'), Accept => 'text/html')->code, 302,
   'without mod_auth_openidc\'s session there is no page, only its sign-in');

my (undef, $var_page) = through_openidc('okey_openidcvar');
is($var_page->code, 200, 'with OpenAIKeyUserVar OIDC_CLAIM_email');
like($var_page->decoded_content, qr/Signed in as <strong>alice\@example\.com<\/strong>/,
     'the address comes from the claim variable, not r->user (the subject)');
