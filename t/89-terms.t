# Each key on its own terms: its lifetime, its profile's cap and allow
# rules, its project; and what a request without a session may change.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Time::HiRes ();

plan tests => 49;

my $JSON = JSON::PP->new->utf8->canonical;
my $now = time;

sub project { my ($id, $name) = @_; return { id => $id, object => 'organization.project', name => $name,
                                             status => 'active', archived_at => undef, created_at => 1711471533 } }
sub account {
    my ($id, $email, $expires, $created) = @_;
    return { object => 'organization.project.service_account', id => $id, role => 'member',
             name => "okey-$expires-$email", created_at => $created // $now - 7200 };
}
sub seed {
    my ($tenant, %projects) = @_;
    reset_fake({ tenants => { $tenant => {
        projects => [map { project($_, $projects{$_}{name}) } sort keys %projects],
        accounts => { map { ($_ => $projects{$_}{accounts} || []) } keys %projects } } } });
}
sub ids_in { my ($tenant, $project) = @_;
             return [sort map { $_->{id} } @{ fake_state()->{tenants}{$tenant}{accounts}{$project} || [] }] }
sub counter { return fake_state()->{tenants}{ $_[0] }{counters}{ $_[1] } // 0 }


ok(first_reaps_done('okey_terms', 'okey_byid'), 'the first reaps have ended');

# --- a key lives as long as it was issued for, by its own profile's rules ----
{
    my $week_key = account('svc_week', 'alice@example.com', $now + 2 * 86400);
    my @ann = map { account("svc_ann$_", 'ann@contract.example', $now + 3600, $now - 7200 + $_) } 1 .. 3;
    seed('terms', proj_terms => { name => 'terms-project', accounts => [$week_key] },
                  proj_contract => { name => 'contractors-project', accounts => \@ann });
    my $res = reap_now('okey_terms');
    is($res->code, 200, 'a reap ran');
    is_deeply(ids_in('terms', 'proj_terms'), ['svc_week'],
              'a key asked for longer than the default lifetime outlives the default');
    is_deeply(ids_in('terms', 'proj_contract'), [map { "svc_ann$_" } 1 .. 3],
              'a profile\'s keys are judged by its own allow rule and cap, not the server\'s');
    unlike(error_log(), qr/revoked key: service_account=svc_ann/, 'none was revoked');
}

# --- a profile's cap counts its own project only -----------------------------
{
    seed('terms', proj_terms => { name => 'terms-project',
                                  accounts => [account('svc_main', 'alice@example.com', $now + 3600)] },
                  proj_solo => { name => 'solo-project' });
    # The reap puts the key into the index of live keys a sign-in consults.
    reap_now('okey_terms');
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_terms', login => '/solo');
    is($page->code, 200, 'a sign-in at the profile capped at one');
    is(scalar @{ ids_in('terms', 'proj_solo') }, 1, 'issues into its project');
    is_deeply(ids_in('terms', 'proj_terms'), ['svc_main'], 'and leaves the key in the other project');
}

# --- concurrent capped issues converge on the newest N, never on fewer --------
# More live keys than the index holds: sign-ins list the project, and must
# still not revoke each other's keys.
{
    my @others = map { account(sprintf('svc_other%04d', $_), "user$_\@corp.example", $now + 3600) } 1 .. 1100;
    seed('terms', proj_terms => { name => 'terms-project', accounts => \@others });
    reap_now('okey_terms');
    for my $round (1 .. 2) {
        my @pids;
        for (1 .. 3) {
            my $pid = fork // die "fork: $!";
            if (!$pid) {
                exit(sign_in(browser(), 'alice@example.com', vhost => 'okey_terms')->code == 200 ? 0 : 1);
            }
            push @pids, $pid;
        }
        my @codes = map { waitpid($_, 0); $? >> 8 } @pids;
        my @alice = grep { $_->{name} =~ /-alice\@example\.com$/ }
                    @{ fake_state()->{tenants}{terms}{accounts}{proj_terms} };
        ok(!(grep { $_ } @codes) && @alice == 1,
           "round $round: three sign-ins at once under a cap of one leave exactly one key ("
           . scalar(@alice) . ')');
    }
}

# --- the reaper's cap keeps what the sign-ins keep -----------------------------
# A key a sign-in recorded ranks after the keys its owner held then, as the
# sign-in judged it, whatever second its creation carries: the reaper ranks
# it so too, and takes the key it never recorded instead.
{
    seed('terms', proj_terms => { name => 'terms-project' });
    reap_now('okey_terms');
    is(sign_in(browser(), 'alice@example.com', vhost => 'okey_terms')->code, 200, 'a sign-in records its key');
    my ($recorded) = @{ fake_state()->{tenants}{terms}{accounts}{proj_terms} || [] };
    # Upstream now dates it before a key of hers the ledger never saw.
    my $unrecorded = account('svc_unrecorded', 'alice@example.com', $now + 3600, time - 400);
    seed('terms', proj_terms => { name => 'terms-project',
                                  accounts => [{ %$recorded, created_at => time - 600 }, $unrecorded] });
    is(reap_now('okey_terms')->code, 200, 'a reap with two keys of hers under a cap of one');
    is_deeply(ids_in('terms', 'proj_terms'), [$recorded->{id}],
              'keeps the key the sign-in recorded and showed, not the one upstream dates later');
    like(error_log(), qr/revoked key: service_account=svc_unrecorded .*by=cap/, 'the cap took the other');
}

# --- openaikey-issue applies its profile's allow rules -----------------------
{
    seed('terms', proj_team => { name => 'team-project' });
    my $req = HTTP::Request->new(POST => vhost_url('okey_terms', '/team/issue'),
                                 ['Content-Type' => 'application/json', Accept => 'application/json',
                                  'X-Test-User' => encode_base64url('eve@elsewhere.example')], '{}');
    my $res = browser()->request($req);
    is($res->code, 403, 'a group profile gives openaikey-issue no key for an unlisted address');
    is(counter('terms', 'openai.create_service_account'), 0, 'and nothing is created');
    $req->header('X-Test-User' => encode_base64url('dave@elsewhere.example'));
    $res = browser()->request($req);
    is($res->code, 200, 'the address the profile lists gets one');
}

# --- two issues at once get two names ----------------------------------------
{
    seed('terms', proj_terms => { name => 'terms-project' }, proj_contract => { name => 'contractors-project' });
    is(sign_in(browser(), 'carol@example.org', vhost => 'okey_terms', login => '/contractors')->code, 403,
       'an address only the server allows gets nothing at the contractor profile');
    sign_in(browser(), 'ann@contract.example', vhost => 'okey_terms', login => '/contractors') for 1 .. 2;
    my %names = map { ($_->{name} => 1) } @{ fake_state()->{tenants}{terms}{accounts}{proj_contract} || [] };
    ok(keys %names == 2 && !(grep { !/^okey-\d+-[a-z0-9]{8}-ann\@contract\.example$/ } keys %names),
       'two keys of one address issued within seconds have two tagged names (' . join(' ', sort keys %names) . ')');
}

# --- a project named by its id -----------------------------------------------
{
    seed('byid', proj_ours => { name => 'shared-name',
                                accounts => [account('svc_ours_old', 'alice@example.com', $now - 60)] },
                 proj_theirs => { name => 'proj_ours',
                                  accounts => [account('svc_theirs_old', 'alice@example.com', $now - 60)] });
    my $res = reap_now('okey_byid');
    is($res->code, 200, 'a reap of the project named by id');
    is_deeply(ids_in('byid', 'proj_ours'), [], 'takes its expired key');
    is_deeply(ids_in('byid', 'proj_theirs'), ['svc_theirs_old'],
              'and never touches a project whose name is that id');
    my $page = sign_in(browser(), 'alice@example.com', vhost => 'okey_byid');
    is($page->code, 200, 'a sign-in');
    is(scalar @{ ids_in('byid', 'proj_ours') }, 1, 'issues into the project of that id');
}

# --- /keys without a session changes nothing ---------------------------------
{
    seed('terms', proj_terms => { name => 'terms-project',
                                  accounts => [account('svc_keep', 'alice@example.com', $now + 3600)] });
    my $res = browser()->request(HTTP::Request->new(
        POST => vhost_url('okey_terms', '/keys'),
        ['Content-Type' => 'application/json', Accept => 'application/json'], '{"revoke":"all"}'));
    is($res->code, 401, 'a JSON revoke without a session: 401');
    $res = browser()->request(HTTP::Request->new(
        POST => vhost_url('okey_terms', '/keys'),
        ['Content-Type' => 'application/x-www-form-urlencoded'], 'service_account=all&csrf=x'));
    is($res->code, 403, 'a form revoke without a session: 403');
    is_deeply(ids_in('terms', 'proj_terms'), ['svc_keep'], 'and nothing was revoked');
}

# --- My keys reads the ledger, and lists only on a bounded refresh ----------
{
    seed('terms', proj_terms => { name => 'terms-project' });
    is(reap_now('okey_terms')->code, 200, 'a reap fills the ledger');
    my $ua = browser();
    sign_in($ua, 'lister@corp.example', vhost => 'okey_terms', login => '/?next=keys');
    my $json = sub {
        my ($who, $query) = @_;
        return $who->request(HTTP::Request->new(GET => vhost_url('okey_terms', '/keys' . ($query // '')),
                                                [Accept => 'application/json']));
    };
    my $gets = counter('terms', 'openai.GET');
    my @codes = map { $json->($ua)->code } 1 .. 30;
    is_deeply([grep { $_ != 200 } @codes], [], 'thirty views of My keys in a row are served');
    is(counter('terms', 'openai.GET'), $gets, 'from the ledger: none lists the projects');
    is($json->($ua, '?refresh=1')->code, 200, 'a refresh is served');
    ok(counter('terms', 'openai.GET') > $gets, 'and lists the projects');
    $gets = counter('terms', 'openai.GET');
    my $res = $json->($ua, '?refresh=1');
    is($res->code, 200, 'a second refresh within the minute is served');
    is(counter('terms', 'openai.GET'), $gets, 'from the ledger, listing nothing');
    my $other = browser();
    sign_in($other, 'other@corp.example', vhost => 'okey_terms', login => '/?next=keys');
    $json->($other, '?refresh=1');
    ok(counter('terms', 'openai.GET') > $gets, 'another person\'s refresh is not held back by it');
}

# --- settings startup never saw whole are refused ----------------------------
{
    seed('nest', proj_x => { name => 'nest-x' }, proj_nest => { name => 'nest-main' },
                 proj_if => { name => 'if-project' });
    my $res = browser()->get(vhost_url('okey_nest', '/x/c'));
    is($res->code, 500, 'a profile merged from nested <Location> sections: 500');
    $res = browser()->get(vhost_url('okey_nest', '/i'));
    is($res->code, 500, 'a profile set inside <If>: 500');
    like(error_log(), qr/the settings at \/i \(project if-project\) are none that startup checked/,
         'the log says why');
    is(counter('nest', 'openai.requests'), 0, 'nothing reached OpenAI');
}

# --- key servers sharing a project share its terms ---------------------------
{
    my @keys = (account('svc_ann', 'ann@contract.example', $now + 3600),
                account('svc_zed', 'zed@nowhere.example', $now + 3600),
                account('svc_gone', 'alice@example.com', $now - 60));
    seed('vh', proj_vh => { name => 'shared-vh', accounts => \@keys });
    is(reap_now('okey_va')->code, 200, 'a reap of one server');
    is_deeply(ids_in('vh', 'proj_vh'), ['svc_ann'],
              'keeps the key the other server\'s allow rule admits, and takes what none admits');
    seed('vh', proj_vh => { name => 'shared-vh', accounts => \@keys });
    is(reap_now('okey_vb')->code, 200, 'a reap of a server naming the project by name and by id');
    is_deeply(ids_in('vh', 'proj_vh'), ['svc_ann', 'svc_zed'],
              'takes only the expired key: its terms are in doubt');
    like(error_log(), qr/OKEY307: project proj_vh is named both as shared-vh and as proj_vh/,
         'and says so');
}

# --- a key revoked during a reap does not come back to the cap ---------------
{
    seed('terms', proj_team => { name => 'team-project' },
         proj_contract => { name => 'contractors-project', accounts => [
             account('svc_k1', 'ann@contract.example', $now + 3600, $now - 300),
             account('svc_k2', 'ann@contract.example', $now + 3600, $now - 290),
             account('svc_k3', 'ann@contract.example', $now + 3600, $now - 280),
             account('svc_k4', 'ann@contract.example', $now + 3600, $now - 270),
             account('svc_g', 'ann@contract.example', $now + 3600, $now - 200),
             account('svc_e', 'bob@corp.example', $now - 10, $now - 4000)] });
    # The ledger knows her keys; then an expired key turns up that the next reap deletes slowly.
    is(reap_now('okey_terms')->code, 200, 'a reap fills the ledger');
    merge_fake({ tenants => { terms => { accounts => { proj_contract => [
        (map { account("svc_k$_", 'ann@contract.example', $now + 3600, $now - 310 + 10 * $_) } 1 .. 4),
        account('svc_g', 'ann@contract.example', $now + 3600, $now - 200),
        account('svc_e', 'bob@corp.example', $now - 10, $now - 4000)] } } } });
    add_fault(tenant => 'terms', method => 'DELETE', path => 'svc_e$', hold => 'ghost', delay => 20);
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        exit(reap_now('okey_terms')->code == 200 ? 0 : 1);
    }
    my $deadline = time + 30;
    Time::HiRes::sleep(0.05) until (fake_state()->{tenants}{terms}{in_flight} // 0) > 0 || time > $deadline;
    my $ua = browser();
    sign_in($ua, 'ann@contract.example', vhost => 'okey_terms', login => '/contractors?next=keys');
    my $res = $ua->request(HTTP::Request->new(POST => vhost_url('okey_terms', '/keys'),
        ['Content-Type' => 'application/json', Accept => 'application/json'], '{"revoke":"svc_g"}'));
    is($res->code, 200, 'ann revokes a key while a reap that listed it runs');
    release_fault('ghost');
    waitpid($pid, 0);
    is($? >> 8, 0, 'the reap ended');
    sign_in(browser(), 'ann@contract.example', vhost => 'okey_terms', login => '/contractors');
    is_deeply([grep { /^svc_k/ } @{ ids_in('terms', 'proj_contract') }], [map { "svc_k$_" } 1 .. 4],
              'her next key under a cap of five takes none of the four she kept');
}

# --- virtual hosts without a passphrase do not share a key --------------------
{
    reset_fake();
    my $ua = browser();
    my $page = sign_in($ua, 'alice@example.com', vhost => 'okey_nopass', login => '/?next=keys');
    my $own = $ua->request(HTTP::Request->new(GET => vhost_url('okey_nopass', '/keys'),
                                              [Accept => 'application/json']));
    my $other = browser();
    my $res = $other->request(HTTP::Request->new(GET => vhost_url('okey_nopass2', '/keys'),
                                                 [Accept => 'application/json',
                                                  Cookie => 'okey_session=' . ($ua->cookie_jar->as_string =~ /okey_session=([^;]+)/)[0]]));
    ok($own->code == 200 && $res->code == 401,
       'a session of one virtual host without a passphrase does not open another\'s My keys (' . $own->code . ' ' . $res->code . ')');
}
