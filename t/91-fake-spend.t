# The fake OpenAI's project API keys, usage and costs reports: shaped and
# paged as OpenAI's, so that the module's spend tracking is tested against
# what OpenAI answers.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use OkeyTest;
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use URI ();

plan tests => 130;

my $JSON = JSON::PP->new->utf8->canonical;
my $T = 'spend';
my $PID = "proj_$T";
my $DAY = 86400;
my $now = time;
my $D0 = $now - $now % $DAY - 3 * $DAY;   # midnight UTC three days ago
my $ua = LWP::UserAgent->new(timeout => 30);

sub api {
    my ($method, $path, $query, $body) = @_;
    my $uri = URI->new(main_url("/openai-$T/v1$path"));
    $uri->query_form(@$query) if $query;
    return $ua->request(HTTP::Request->new($method => $uri, ['Authorization' => 'Bearer test-admin-key',
                                                              'Content-Type' => 'application/json'],
                                           defined $body ? $JSON->encode($body) : undef));
}
sub get_json { my $res = api(GET => @_); return ($res->code, eval { $JSON->decode($res->decoded_content) }, $res) }
sub control {
    my ($path, $body) = @_;
    my $res = $ua->post(main_url("/fake$path"), Content => $JSON->encode({ tenant => $T, %$body }));
    return ($res->code, eval { $JSON->decode($res->decoded_content) });
}
sub counter { return fake_state()->{tenants}{$T}{counters}{ $_[0] } // 0 }
sub keys_page { return get_json("/organization/projects/$PID/api_keys", [@_]) }
sub all_keys {
    my (@query) = @_;
    my (@keys, $after);
    for (1 .. 10) {
        my ($code, $page) = keys_page(limit => 100, @query, defined $after ? (after => $after) : ());
        push @keys, @{ $page->{data} };
        last unless $page->{has_more} && defined $page->{last_id};
        $after = $page->{last_id};
    }
    return { map { $_->{id} => $_ } @keys };
}
sub costs { return get_json('/organization/costs', [@_]) }
sub usage { return get_json('/organization/usage/completions', [@_]) }
sub by_key { return { map { ($_->{api_key_id} // 'all') . '/' . ($_->{model} // '') => $_ } @{ $_[0] } } }

my @seeded = map { { object => 'organization.project.service_account', id => sprintf('svc_acct_seed%03d', $_),
                     name => "seed$_\@example.com", role => 'member', created_at => $now - 600 } } 1 .. 101;
seed_tenant($T, 'spend-project', @seeded);

# --- the creation answer ------------------------------------------------------
my (%acct, %key);
for my $who (qw(alice bob)) {
    my $res = api(POST => "/organization/projects/$PID/service_accounts", undef, { name => "$who\@example.com" });
    my $doc = $JSON->decode($res->decoded_content);
    $acct{$who} = $doc;
    $key{$who} = $doc->{api_key};
}
is($key{alice}{object}, 'organization.project.service_account.api_key', 'api_key: its object');
like($key{alice}{id}, qr/^key_\w+$/, 'api_key: an id key_...');
isnt($key{alice}{id}, $key{bob}{id}, 'api_key: ids differ between accounts');
is($key{alice}{name}, 'Secret Key', 'api_key: named Secret Key');
like($key{alice}{created_at}, qr/^\d+$/, 'api_key: created_at a time');
like($key{alice}{value}, qr/^sk-test-\w{32}$/, 'api_key: its value');

# --- the listing: paging ------------------------------------------------------
{
    my ($code, $page) = keys_page(limit => 100);
    is($code, 200, 'api_keys: 200');
    is($page->{object}, 'list', 'api_keys: a list');
    is(scalar @{ $page->{data} }, 100, 'api_keys: first page holds limit keys');
    ok($page->{has_more}, 'api_keys: more after the first page');
    is($page->{first_id}, $page->{data}[0]{id}, 'api_keys: first_id');
    is($page->{last_id}, $page->{data}[-1]{id}, 'api_keys: last_id');
    my ($code2, $page2) = keys_page(limit => 100, after => $page->{last_id});
    is(scalar @{ $page2->{data} }, 3, 'api_keys: the second page holds the rest (101 seeded, 2 created)');
    ok(!$page2->{has_more}, 'api_keys: no more after the second page');
    my %ids = map { $_->{id} => 1 } @{ $page->{data} }, @{ $page2->{data} };
    is(scalar keys %ids, 103, 'api_keys: every key once');
    ok($ids{ $key{alice}{id} } && $ids{ $key{bob}{id} }, 'api_keys: the created accounts\' keys listed');
    my ($c3, $default) = keys_page();
    is(scalar @{ $default->{data} }, 20, 'api_keys: 20 by default');
    my ($c4, $again) = keys_page(limit => 100);
    is_deeply([map { $_->{id} } @{ $again->{data} }], [map { $_->{id} } @{ $page->{data} }],
              'api_keys: a seeded account keeps the key it was first given');
    is((keys_page(limit => 0))[0], 400, 'api_keys: limit 0 is 400');
    is((keys_page(limit => 101))[0], 400, 'api_keys: limit 101 is 400');
    my ($c5, $err) = get_json('/organization/projects/proj_nope/api_keys');
    is($c5, 404, 'api_keys: unknown project is 404');
    is_deeply([sort keys %{ $err->{error} || {} }], [qw(code message param type)], 'api_keys: 404 shaped as an error');
    is($err->{error}{type}, 'invalid_request_error', 'api_keys: the error\'s type');
}

# --- the listing: a key's shape ----------------------------------------------
{
    my $all = all_keys();
    my $k = $all->{ $key{alice}{id} };
    is($k->{object}, 'organization.project.api_key', 'key: its object');
    is($k->{name}, 'Secret Key', 'key: its name');
    my $v = $key{alice}{value};
    is($k->{redacted_value}, substr($v, 0, 11) . '...' . substr($v, -4), 'key: redacted: 11 first, ..., 4 last');
    is($k->{created_at}, $key{alice}{created_at}, 'key: created_at as at creation');
    ok(exists $k->{last_used_at} && !defined $k->{last_used_at}, 'key: last_used_at null before use');
    is($k->{owner_project_access}, 'active', 'key: owner_project_access active');
    is_deeply($k->{owner}, { type => 'service_account', service_account => {
        id => $acct{alice}{id}, name => 'alice@example.com', created_at => $acct{alice}{created_at}, role => 'member' } },
        'key: owned by its service account');
    my ($seed) = grep { $_->{owner}{service_account}{id} eq 'svc_acct_seed001' } values %$all;
    ok($seed, 'key: a seeded account has a key');
    is($seed && $seed->{owner}{service_account}{created_at}, $now - 600, 'key: a seeded account\'s owner fields');
    ok(!grep({ $_->{owner}{type} ne 'service_account' } values %$all), 'key: no user keys yet');
}

# --- user-owned and disabled keys --------------------------------------------
my $user_key;
{
    my ($code, $doc) = control('/api_key', { project => $PID, user => { name => 'Carol', email => 'carol@example.com' } });
    is($code, 200, 'hook: a user key added');
    $user_key = $doc->{id};
    my $k = all_keys()->{$user_key};
    ok($k, 'user key: listed');
    is($k && $k->{owner}{type}, 'user', 'user key: owner.type user');
    is($k && $k->{owner}{user}{email}, 'carol@example.com', 'user key: owner.user');
    ok($k && !exists $k->{owner}{service_account}, 'user key: no owner.service_account');
    is((control('/api_key', { project => 'proj_nope' }))[0], 404, 'hook: a user key of an unknown project is 404');

    control('/api_key', { id => $key{bob}{id}, access => 'disabled' });
    ok(!all_keys()->{ $key{bob}{id} }, 'disabled key: left out without owner_project_access=any');
    my $any = all_keys(owner_project_access => 'any');
    ok($any->{ $key{bob}{id} }, 'disabled key: listed with owner_project_access=any');
    is($any->{ $key{bob}{id} }{owner_project_access}, 'disabled', 'disabled key: its owner_project_access');
    control('/api_key', { id => $key{bob}{id}, access => 'active' });
    ok(all_keys()->{ $key{bob}{id} }, 'enabled again: listed');
}

# --- recording usage ---------------------------------------------------------
{
    my @records = (
        [api_key_id => $key{alice}{id}, time => $D0 + 3600, input_tokens => 100, output_tokens => 50, requests => 2, cost_usd => 0.25],
        [api_key_id => $key{alice}{id}, time => $D0 + 7200, model => 'gpt-4o', input_tokens => 10, output_tokens => 5, cost_usd => 0.05],
        [service_account_id => $acct{bob}{id}, time => $D0 + 5000, input_tokens => 1000, output_tokens => 500, requests => 3, cost_usd => 1.5],
        [api_key_id => $key{alice}{id}, time => $D0 + $DAY + 60, input_tokens => 7, output_tokens => 3, cost_usd => 0.02],
        [api_key_id => $key{bob}{id}, time => $D0 + $DAY + 3600, input_tokens => 40, output_tokens => 20, cost_usd => 0.4],
    );
    my @codes = map { (control('/usage', {@$_}))[0] } @records;
    is_deeply(\@codes, [(200) x 5], 'hook: usage recorded');
    is((control('/usage', { api_key_id => 'key_nope' }))[0], 404, 'hook: usage of an unknown key is 404');
    my $read = $JSON->decode($ua->get(main_url("/fake/usage?tenant=$T"))->decoded_content);
    is(scalar @{ $read->{usage} }, 5, 'hook: recorded usage read back');
    is($read->{usage}[2]{api_key_id}, $key{bob}{id}, 'hook: usage by service account id lands on its key');
    my $all = all_keys();
    is($all->{ $key{alice}{id} }{last_used_at}, $D0 + $DAY + 60, 'key: last_used_at the latest usage');
    is($all->{ $key{bob}{id} }{last_used_at}, $D0 + $DAY + 3600, 'key: last_used_at of the other key');
}

# --- costs -------------------------------------------------------------------
my @two_days = (start_time => $D0, end_time => $D0 + 2 * $DAY);
{
    my ($code, $page) = costs(@two_days, group_by => 'api_key_id');
    is($code, 200, 'costs: 200');
    is($page->{object}, 'page', 'costs: a page');
    is(scalar @{ $page->{data} }, 2, 'costs: a bucket a day');
    ok(!$page->{has_more}, 'costs: no more');
    ok(exists $page->{next_page} && !defined $page->{next_page}, 'costs: next_page null');
    my ($d1, $d2) = @{ $page->{data} };
    is_deeply([@$d1{qw(object start_time end_time)}], ['bucket', $D0, $D0 + $DAY], 'costs: the first bucket');
    is_deeply([@$d2{qw(start_time end_time)}], [$D0 + $DAY, $D0 + 2 * $DAY], 'costs: the second bucket');
    my $r1 = by_key($d1->{results});
    my $r2 = by_key($d2->{results});
    is(scalar @{ $d1->{results} }, 2, 'costs: one result per key');
    is($r1->{"$key{alice}{id}/"}{amount}{value}, 0.3, 'costs: a key\'s day summed');
    is($r1->{"$key{bob}{id}/"}{amount}{value}, 1.5, 'costs: the other key\'s day');
    is($r2->{"$key{alice}{id}/"}{amount}{value}, 0.02, 'costs: a key\'s second day');
    is($r2->{"$key{bob}{id}/"}{amount}{value}, 0.4, 'costs: the other key\'s second day');
    is_deeply($r1->{"$key{bob}{id}/"}, { object => 'organization.costs.result', amount => { value => 1.5, currency => 'usd' },
                                         line_item => undef, project_id => undef, api_key_id => $key{bob}{id},
                                         quantity => undef, quantity_unit => undef },
              'costs: a result\'s shape, null where not grouped');

    my ($c2, $flat) = costs(@two_days);
    is_deeply([map { scalar @{ $_->{results} } } @{ $flat->{data} }], [1, 1], 'costs: not grouped, one result a day');
    is($flat->{data}[0]{results}[0]{amount}{value}, 1.8, 'costs: not grouped, summed over keys');
    ok(!defined $flat->{data}[0]{results}[0]{api_key_id}, 'costs: not grouped, api_key_id null');

    my ($c3, $both) = costs(@two_days, group_by => 'api_key_id', group_by => 'project_id');
    is($both->{data}[0]{results}[0]{project_id}, $PID, 'costs: grouped by project too, project_id set');
    my ($c4, $one) = costs(@two_days, api_key_ids => $key{alice}{id});
    is($one->{data}[0]{results}[0]{amount}{value}, 0.3, 'costs: api_key_ids filters');
    my ($c5, $two) = costs(@two_days, api_key_ids => $key{alice}{id}, api_key_ids => $key{bob}{id}, group_by => 'api_key_id');
    is(scalar @{ $two->{data}[0]{results} }, 2, 'costs: api_key_ids repeated');
    my ($c6, $none) = costs(@two_days, project_ids => 'proj_other');
    is_deeply($none->{data}[0]{results}, [], 'costs: project_ids filters');
    my ($c7, $items) = costs(@two_days, group_by => 'line_item');
    is_deeply([sort map { $_->{line_item} } @{ $items->{data}[0]{results} }], ['gpt-4o', 'gpt-4o-mini'],
              'costs: grouped by line_item');
    my ($c8, $mid) = costs(start_time => $D0 + 3601, end_time => $D0 + $DAY + 1);
    is_deeply([map { $_->{start_time} } @{ $mid->{data} }], [$D0, $D0 + $DAY], 'costs: buckets aligned to midnight');
    my ($c9, $open) = costs(start_time => $D0);
    is(scalar @{ $open->{data} }, 4, 'costs: without end_time, buckets up to today\'s');
    ok($open->{data}[-1]{start_time} <= time && time < $open->{data}[-1]{end_time}, 'costs: the last holds now');
}

# --- usage -------------------------------------------------------------------
{
    my ($code, $page) = usage(@two_days, group_by => 'api_key_id', group_by => 'model');
    is($code, 200, 'usage: 200');
    is($page->{object}, 'page', 'usage: a page');
    my $r = by_key($page->{data}[0]{results});
    is(scalar keys %$r, 3, 'usage: one result per key and model');
    is_deeply($r->{"$key{alice}{id}/gpt-4o-mini"}, {
        object => 'organization.usage.completions.result', input_tokens => 100, input_cached_tokens => 0,
        output_tokens => 50, num_model_requests => 2, project_id => undef, user_id => undef,
        api_key_id => $key{alice}{id}, model => 'gpt-4o-mini', batch => undef }, 'usage: a result\'s shape');
    is($r->{"$key{alice}{id}/gpt-4o"}{input_tokens}, 10, 'usage: per model');
    is($r->{"$key{bob}{id}/gpt-4o-mini"}{num_model_requests}, 3, 'usage: requests');
    my ($c2, $flat) = usage(@two_days);
    my $f = $flat->{data}[0]{results}[0];
    is_deeply([@$f{qw(input_tokens output_tokens num_model_requests)}], [1110, 555, 6], 'usage: not grouped, summed');
    ok(!defined $f->{model} && !defined $f->{api_key_id}, 'usage: not grouped, nulls');
    my ($c3, $hours) = usage(start_time => $D0, end_time => $D0 + $DAY, bucket_width => '1h', group_by => 'api_key_id');
    is(scalar @{ $hours->{data} }, 24, 'usage: 1h, 24 buckets by default');
    is_deeply($hours->{data}[0]{results}, [], 'usage: a bucket without usage has no results');
    my $h1 = by_key($hours->{data}[1]{results});
    is_deeply([map { $h1->{"$key{$_}{id}/"}{input_tokens} } qw(alice bob)], [100, 1000], 'usage: 1h, an hour\'s usage per key');
    is_deeply($hours->{data}[3]{results}, [], 'usage: 1h, a later hour without usage');
}

# --- paging of buckets -------------------------------------------------------
{
    my @q = (start_time => $D0 - 3 * $DAY, end_time => $D0 + 2 * $DAY, group_by => 'api_key_id', limit => 2);
    my ($code, $page) = costs(@q);
    my @starts;
    my @sizes;
    my $pages = 0;
    while (1) {
        $pages++;
        push @sizes, scalar @{ $page->{data} };
        push @starts, map { $_->{start_time} } @{ $page->{data} };
        last unless $page->{has_more};
        like($page->{next_page}, qr/\S/, "costs paging: page $pages has a next_page");
        ($code, $page) = costs(@q, page => $page->{next_page});
        last if $pages > 5;
    }
    is_deeply(\@sizes, [2, 2, 1], 'costs paging: limit buckets a page');
    is_deeply(\@starts, [map { $D0 + $_ * $DAY } -3 .. 1], 'costs paging: every bucket once, in order');
    ok(exists $page->{next_page} && !defined $page->{next_page}, 'costs paging: the last page\'s next_page null');
    is(scalar @{ $page->{data}[0]{results} }, 2, 'costs paging: the last page\'s usage');

    my @m = (start_time => $D0 + 3540, end_time => $D0 + 3720, bucket_width => '1m', limit => 2);
    my ($c2, $m1) = usage(@m);
    is(scalar @{ $m1->{data} }, 2, 'usage paging: 1m, limit buckets');
    my ($c3, $m2) = usage(@m, page => $m1->{next_page});
    is_deeply([map { $_->{start_time} } @{ $m2->{data} }], [$D0 + 3660], 'usage paging: the next page');
    is((costs(@q, page => 'bogus'))[0], 400, 'paging: an unknown page is 400');
    is((costs(@q, page => $m1->{next_page}))[0], 400, 'paging: a usage cursor is not a costs one');
}

# --- bad parameters ----------------------------------------------------------
{
    my %bad = (
        'costs: no start_time' => [\&costs, end_time => $D0],
        'costs: start_time not a number' => [\&costs, start_time => 'yesterday'],
        'costs: end_time before start_time' => [\&costs, start_time => $D0, end_time => $D0 - 1],
        'costs: bucket_width 1h' => [\&costs, start_time => $D0, bucket_width => '1h'],
        'costs: limit 0' => [\&costs, start_time => $D0, limit => 0],
        'costs: limit 181' => [\&costs, start_time => $D0, limit => 181],
        'costs: group_by model' => [\&costs, start_time => $D0, group_by => 'model'],
        'usage: no start_time' => [\&usage],
        'usage: bucket_width 1w' => [\&usage, start_time => $D0, bucket_width => '1w'],
        'usage: 1d limit 32' => [\&usage, start_time => $D0, limit => 32],
        'usage: 1h limit 169' => [\&usage, start_time => $D0, bucket_width => '1h', limit => 169],
        'usage: 1m limit 1441' => [\&usage, start_time => $D0, bucket_width => '1m', limit => 1441],
        'usage: group_by line_item' => [\&usage, start_time => $D0, group_by => 'line_item'],
    );
    for my $name (sort keys %bad) {
        my ($call, @q) = @{ $bad{$name} };
        my ($code, $doc) = $call->(@q);
        is($code, 400, "$name is 400");
    }
    my @good = ([\&costs, start_time => $D0, limit => 180], [\&usage, start_time => $D0, bucket_width => '1h', limit => 168],
                [\&usage, start_time => $D0, bucket_width => '1m', limit => 1440], [\&usage, start_time => $D0, limit => 31]);
    is_deeply([map { my ($call, @q) = @$_; ($call->(@q))[0] } @good], [200, 200, 200, 200], 'the largest limits are 200');
    my ($code, $doc) = costs(end_time => $D0);
    is($doc->{error}{type}, 'invalid_request_error', '400 shaped as an error');
    my $res = $ua->get(main_url("/openai-$T/v1/organization/costs?start_time=$D0"), Authorization => 'Bearer wrong');
    is($res->code, 401, 'costs: a wrong admin key is 401');
    $res = $ua->get(main_url("/openai-$T/v1/organization/usage/completions?start_time=$D0"));
    is($res->code, 401, 'usage: no admin key is 401');
}

# --- faults and counters -----------------------------------------------------
{
    add_fault(tenant => $T, method => 'GET', path => '^/organization/costs$', status => 429, retry_after => 7);
    my ($code, $doc, $res) = costs(@two_days);
    is($code, 429, 'fault: costs answers 429');
    is($res->header('Retry-After'), 7, 'fault: with Retry-After');
    is((costs(@two_days))[0], 200, 'fault: once only');
    add_fault(tenant => $T, method => 'GET', path => '^/organization/costs$', query => 'page=', status => 500);
    my @q = (start_time => $D0 - 3 * $DAY, end_time => $D0 + 2 * $DAY, limit => 2);
    my ($c1, $p1) = costs(@q);
    is($c1, 200, 'fault on later pages: the first page answers');
    is((costs(@q, page => $p1->{next_page}))[0], 500, 'fault on later pages: the next fails');
    add_fault(tenant => $T, method => 'GET', path => '^/organization/usage/completions$', status => 500);
    is((usage(@two_days))[0], 500, 'fault: usage answers 500');

    my %before = map { $_ => counter($_) } qw(openai.costs openai.usage_completions openai.list_api_keys);
    costs(@two_days);
    costs(@two_days);
    usage(@two_days);
    keys_page();
    is(counter('openai.costs') - $before{'openai.costs'}, 2, 'counter: openai.costs');
    is(counter('openai.usage_completions') - $before{'openai.usage_completions'}, 1, 'counter: openai.usage_completions');
    is(counter('openai.list_api_keys') - $before{'openai.list_api_keys'}, 1, 'counter: openai.list_api_keys');
}

# --- a deleted account -------------------------------------------------------
{
    my $res = api(DELETE => "/organization/projects/$PID/service_accounts/$acct{alice}{id}");
    is($res->code, 200, 'delete: 200');
    my $all = all_keys(owner_project_access => 'any');
    ok(!$all->{ $key{alice}{id} }, 'delete: its key no longer listed');
    ok($all->{ $key{bob}{id} }, 'delete: the other key still listed');
    ok($all->{$user_key}, 'delete: the user key still listed');
    my ($code, $page) = costs(@two_days, group_by => 'api_key_id');
    is(by_key($page->{data}[0]{results})->{"$key{alice}{id}/"}{amount}{value}, 0.3, 'delete: its costs still reported');
    my ($c2, $u) = usage(@two_days, api_key_ids => $key{alice}{id});
    is($u->{data}[1]{results}[0]{input_tokens}, 7, 'delete: its usage still reported');
    is((control('/usage', { api_key_id => $key{alice}{id}, time => $D0 + $DAY + 120, cost_usd => 1 }))[0], 200,
       'delete: usage still recorded against the deleted key');
    ($code, $page) = costs(@two_days, api_key_ids => $key{alice}{id});
    is($page->{data}[1]{results}[0]{amount}{value}, 1.02, 'delete: and reported');
    my $read = $JSON->decode($ua->get(main_url("/fake/usage?tenant=$T"))->decoded_content);
    ok($read->{api_keys}{ $key{alice}{id} }{deleted_at}, 'delete: the key\'s record remembers the delete');
}
