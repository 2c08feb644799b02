# Spend: usage and cost per key from the Admin API's reports, budgets at
# issue and in the reaper, My keys figures and the spend metrics.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use OkeyCli;
use File::Temp ();
use HTTP::Request ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64url);
use Time::HiRes ();
use Time::Local ();

plan tests => 56;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;
my $VHOST = 'okey_spend';
my $control = LWP::UserAgent->new(timeout => 30);

sub project {
    my ($id, $name) = @_;
    return { id => $id, object => 'organization.project', name => $name, status => 'active',
             archived_at => undef, created_at => 1711471533 };
}
sub tenant { return fake_state()->{tenants}{spend} }
sub accounts_in { return tenant()->{accounts}{ $_[0] } || [] }
sub counter { return tenant()->{counters}{ $_[0] } // 0 }
sub key_id_of { my ($svc) = @_; return tenant()->{account_keys}{$svc} }

sub record_usage {
    my (%usage) = @_;
    my $res = $control->post(main_url('/fake/usage'),
                             Content => $JSON->encode({ tenant => 'spend', %usage }));
    die 'usage: ' . $res->status_line . ' ' . $res->decoded_content unless $res->is_success;
}

sub metrics { return browser()->get(vhost_url($VHOST, '/metrics'))->decoded_content }
sub metric {
    my ($name, $labels) = @_;
    my ($value) = metrics() =~ /^\Q$name\E\{[^}]*\Q$labels\E[^}]*\} (\S+)$/m;
    return $value;
}

# Waits until a usage poll that began after this call has ended (ten
# seconds at most): the fleet's last poll is stamped with when it began.
# True when one has.
sub poll_since_now {
    my $now = time;
    my $deadline = $now + 10;
    Time::HiRes::sleep(0.1)
        while time < $deadline && (metric('openaikey_last_usage_poll_timestamp_seconds', '') // 0) <= $now;
    return (metric('openaikey_last_usage_poll_timestamp_seconds', '') // 0) > $now;
}

# Waits until a usage poll has failed after this call (ten seconds at most).
sub failed_poll_since_now {
    my $before = metric('openaikey_usage_poll_failures_total', '') // 0;
    my $deadline = time + 10;
    Time::HiRes::sleep(0.1)
        while time < $deadline && (metric('openaikey_usage_poll_failures_total', '') // 0) <= $before;
    return (metric('openaikey_usage_poll_failures_total', '') // 0) > $before;
}

sub my_keys {
    my ($ua) = @_;
    my $res = $ua->request(HTTP::Request->new(GET => vhost_url($VHOST, '/keys'),
                                              [Accept => 'application/json']));
    return $res->is_success ? $JSON->decode($res->decoded_content) : { error => $res->code };
}
# A sign-in, keeping the key value its page showed for the log check.
my @values;
sub signed_in {
    my $res = sign_in(@_);
    push @values, $res->decoded_content =~ /(sk-test-[A-Za-z0-9]+)/g;
    return $res;
}
sub key_in { my ($doc, $svc) = @_; return (grep { $_->{service_account_id} eq $svc } @{ $doc->{keys} })[0] }
sub near { my ($a, $b) = @_; return defined $a && abs($a - $b) < 0.000001 }

reset_fake({ tenants => { spend => { projects => [project('proj_spend', 'spend-project'),
                                                  project('proj_budget', 'budget-project')],
                                     accounts => { proj_spend => [], proj_budget => [] } } } });

# --- figures per key ------------------------------------------------------------
my $alice = browser();
is(signed_in($alice, 'alice@example.com', vhost => $VHOST)->code, 200, 'alice gets a key');
my ($first) = @{ accounts_in('proj_spend') };
my $first_key = key_id_of($first->{id});
like($first_key, qr/^key_/, 'whose key id the creation answered');
my $used_at = time - 60;
record_usage(api_key_id => $first_key, time => $used_at, input_tokens => 1000,
             output_tokens => 200, requests => 3, cost_usd => 0.42);
ok(poll_since_now(), 'a usage poll ran after the usage was recorded');
my $doc = my_keys($alice);
my $figures = key_in($doc, $first->{id});
is($figures->{api_key_id}, $first_key, 'My keys names the key id');
is($figures->{requests}, 3, 'its requests');
is($figures->{input_tokens}, 1000, 'tokens in');
is($figures->{output_tokens}, 200, 'tokens out');
ok(near($figures->{cost_usd}, 0.42), 'and cost, as the fake recorded them');
is($figures->{last_used_at}, $used_at, 'when it was last used');
is($doc->{spend}{period}, 'month', 'without a budget, spend is by the month');
ok(near($doc->{spend}{amount_usd}, 0.42), 'the person\'s spend this month');
is($doc->{spend}{budget_usd}, undef, 'budget null without one');
ok($doc->{spend}{resets_at} > time, 'and when the month ends');
my $page = $alice->get(vhost_url($VHOST, '/keys'))->decoded_content;
like($page, qr/<td class="n">3<\/td><td class="n">1000 \/ 200<\/td><td class="n">\$0\.42<\/td>/,
     'the page shows the same figures');
like($page, qr/Spent this month: <strong>\$0\.42<\/strong>/, 'and the spend');

# --- a failing poll keeps the last figures; a key no report named is unknown ---
add_fault(tenant => 'spend', method => 'GET', path => '^/organization/costs$', status => 500,
          times => 1000);
ok(failed_poll_since_now(), 'a poll whose cost report fails is counted as failed');
is(signed_in($alice, 'alice@example.com', vhost => $VHOST)->code, 200, 'alice gets a second key');
my ($second) = grep { $_->{id} ne $first->{id} } @{ accounts_in('proj_spend') };
ok(failed_poll_since_now(), 'polls go on failing');
$doc = my_keys($alice);
ok(near(key_in($doc, $first->{id})->{cost_usd}, 0.42), 'the first key keeps its figures');
my $unknown = key_in($doc, $second->{id});
ok($unknown && !defined $unknown->{cost_usd} && !defined $unknown->{requests}
   && !defined $unknown->{last_used_at}, 'the new key\'s figures are unknown (null), not 0');
like($alice->get(vhost_url($VHOST, '/keys'))->decoded_content,
     qr/<span class="unknown">unknown<\/span>/, 'and the page says unknown');
like(error_log(), qr/OKEY040: usage poll of spend-project .*failed: .*costs/,
     'the failure is logged with what failed');
reset_fake({ tenants => { spend => { %{ tenant() }, faults => [] } } });

# --- reports that come a bucket a page are followed to their end -------------------
{
    my @now = gmtime;
    my $today = Time::Local::timegm(0, 0, 0, $now[3], $now[4], $now[5] + 1900);
    my $monday = $today - (($now[6] + 6) % 7) * 86400;
    my $first = Time::Local::timegm(0, 0, 0, 1, $now[4], $now[5] + 1900);
    my $days = ($today - ($monday < $first ? $monday : $first)) / 86400 + 1;
    merge_fake({ tenants => { spend => { page_buckets => 1 } } });
    my $before = metric('openaikey_spend_usd', 'project="spend-project",period="month"');
    my $costs = counter('openai.costs');
    record_usage(service_account_id => $second->{id}, cost_usd => 0.05);
    ok(poll_since_now(), 'a poll ran with reports of one bucket a page');
    cmp_ok(counter('openai.costs') - $costs, '>=', $days, "the cost report was followed through its $days days");
    ok(near(metric('openaikey_spend_usd', 'project="spend-project",period="month"'), $before + 0.05),
       'and what the last page held counts');
    merge_fake({ tenants => { spend => { page_buckets => 0 } } });
}

# --- a looping report is cut short --------------------------------------------
add_fault(tenant => 'spend', method => 'GET', path => '^/organization/costs$', status => 200,
          body => $JSON->encode({ object => 'page', data => [], has_more => JSON::PP::true(),
                                  next_page => 'page_same' }),
          times => 1000);
ok(failed_poll_since_now(), 'a cost report that pages in a circle fails the poll');
like(error_log(), qr/OKEY040: .*(the same next_page twice|has_more)/, 'saying why');
reset_fake({ tenants => { spend => { %{ tenant() }, faults => [] } } });

# --- budgets ------------------------------------------------------------------
my $bob = browser();
is(signed_in($bob, 'bob@corp.example', vhost => $VHOST, login => '/b')->code, 200,
   'bob gets a key in the budgeted project');
my ($bobs) = @{ accounts_in('proj_budget') };
record_usage(service_account_id => $bobs->{id}, cost_usd => 1.20, requests => 40,
             input_tokens => 50000, output_tokens => 9000);
ok(poll_since_now(), 'a poll saw his spending');
my $creates = counter('openai.create_service_account');
my $refused = signed_in(browser(), 'bob@corp.example', vhost => $VHOST, login => '/b');
is($refused->code, 403, 'over his budget of one dollar, a sign-in is refused');
like($refused->decoded_content, qr/spent \$1\.20 of your \$1\.00 budget per month/,
     'saying what he spent and the budget');
like($refused->decoded_content, qr/resets at \d{4}-\d\d-01T00:00:00Z/, 'and when the month resets');
is(counter('openai.create_service_account'), $creates, 'nothing was created');
my $issue = $control->request(HTTP::Request->new(
    POST => vhost_url($VHOST, '/b/issue'),
    [Accept => 'application/json', 'Content-Type' => 'application/json',
     'X-Test-User' => encode_base64url('bob@corp.example')], '{}'));
is($issue->code, 403, 'openaikey-issue refuses him too');
like($issue->decoded_content, qr/spent \$1\.20/, 'with the figures');
{
    # The command-line helper says the same, in one line on stderr.
    my $home = File::Temp::tempdir(CLEANUP => 1);
    my $h = helper_start($home, 'login', vhost_url($VHOST, '/b'), '--no-browser');
    my $url = helper_url($h);
    my $flow = $url ? follow($url, 'bob@corp.example') : undef;
    is(helper_finish($h), 1, 'the command-line helper over budget ends with 1');
    like($h->{stderr}, qr/^openaikey: the sign-in failed: You have spent \$1\.20 of your \$1\.00 budget per month[^\n]*\n\z/m,
         'saying why in one line on stderr');
}
is(metric('openaikey_budget_refusals_total', ''), 3, 'every refusal is counted');
is(signed_in(browser(), 'carol@example.org', vhost => $VHOST, login => '/b')->code, 200,
   'someone else under the budget still gets a key there');
# What carol spent in the last hour of last month is not this month's.
my $carols_first = (grep { $_->{name} =~ /carol/ } @{ accounts_in('proj_budget') })[0];
my @now = gmtime;
my $month_start = Time::Local::timegm(0, 0, 0, 1, $now[4], $now[5] + 1900);
record_usage(service_account_id => $carols_first->{id}, time => $month_start - 3600, cost_usd => 5);
ok(poll_since_now(), 'a poll ran after carol\'s spending last month');
is(signed_in(browser(), 'carol@example.org', vhost => $VHOST, login => '/b')->code, 200,
   'a new month starts her budget afresh');
is(signed_in(browser(), 'bob@corp.example', vhost => $VHOST)->code, 200,
   'and bob still gets one in the project without a budget');
ok(near(metric('openaikey_spend_usd', 'project="budget-project",period="month"'), 1.2),
   'the budgeted project\'s spend this month');
ok(near(metric('openaikey_spend_usd', 'project="spend-project",period="month"'), 0.47),
   'and the other\'s');

# --- the reaper revokes over budget -----------------------------------------------
my $carols = (grep { $_->{name} =~ /carol/ } @{ accounts_in('proj_budget') })[0];
my $res = reap_now($VHOST);
is($res->code, 200, 'a reap runs');
ok(!grep({ $_->{id} eq $bobs->{id} } @{ accounts_in('proj_budget') }), 'bob\'s budgeted key is deleted');
ok((grep { $_->{id} eq $carols->{id} } @{ accounts_in('proj_budget') }), 'carol\'s is kept');
is(scalar(grep { $_->{name} =~ /bob/ } @{ accounts_in('proj_spend') }), 1,
   'bob\'s key in the project without a budget is kept');
like(error_log(), qr/OKEY305: revoked key: service_account=\Q$bobs->{id}\E email=bob\@corp\.example .*by=budget/,
     'audited by=budget');
is(metric('openaikey_keys_revoked_total', 'by="budget"'), 1, 'and counted');

# --- a deleted key still counts against its owner ---------------------------------
my $before = metric('openaikey_spend_usd', 'project="spend-project",period="month"');
my $csrf = ($alice->get(vhost_url($VHOST, '/keys'))->decoded_content =~ /name="csrf" value="([^"]+)"/)[0];
my $revoke = $alice->post(vhost_url($VHOST, '/keys'), { service_account => $first->{id}, csrf => $csrf });
is($revoke->code, 200, 'alice revokes her first key');
record_usage(api_key_id => $first_key, cost_usd => 0.08);
ok(poll_since_now(), 'a poll ran after its last use was recorded');
ok(near(metric('openaikey_spend_usd', 'project="spend-project",period="month"'), $before + 0.08),
   'what the deleted key cost still counts, filed under its owner');
ok(near(my_keys($alice)->{spend}{amount_usd}, 0.55), 'in her spend too');

# --- nothing secret in the logs ---------------------------------------------------
my $logs = error_log();
my $values = join '|', map { quotemeta } @values;
ok(@values >= 4 && $logs !~ /$values/, 'no key value shown on a key page is in the error log');
unlike($logs, qr/test-admin-key/, 'nor the admin key');
