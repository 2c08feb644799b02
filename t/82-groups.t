# Groups: an ID token's groups claim admits addresses the lists do not name;
# the scope asks the provider for it.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use URI ();

plan tests => 10;

reset_fake();
my $login = start_login(browser(), 'okey_groups');
my %query = URI->new($login->header('Location'))->query_form;
is($query{scope}, 'openid email groups', 'OpenAIKeyScope is what the provider is asked for');

sub signed_in {
    my ($groups_json) = @_;
    return sign_in(browser(), 'dave@elsewhere.example', vhost => 'okey_groups',
                   defined $groups_json ? (groups_json => $groups_json) : ());
}

my $creates = sub { fake_state()->{counters}{'openai.create_service_account'} // 0 };
my $before = $creates->();
is(signed_in('["staff","ML-Team"]')->code, 200, 'a member of an allowed group gets a key');
is($creates->(), $before + 1, 'one key');
for my $case (['["staff"]', 'other groups'], ['"ml-team"', 'a string'], ['{"ml-team":1}', 'an object'],
              ['[1,2]', 'numbers'], [undef, 'no claim']) {
    is(signed_in($case->[0])->code, 403, "groups claim holding $case->[1]: 403");
}
is($creates->(), $before + 1, 'and no key for any of them');
like(error_log(), qr/denied dave\@elsewhere\.example/, 'the log says who was denied');
