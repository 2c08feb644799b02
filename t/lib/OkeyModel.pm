package OkeyModel;
# A randomized model-based test of the key servers okey_model and
# okey_model2 (t/conf/extra.conf.in): random operations drawn from a seed,
# a model of what must hold, and the invariants checked after every step.
#
#   my $run = OkeyModel::run_seed($seed, $steps);   # { failure, stats, ops }
#   my $ops = OkeyModel::shrink($ops, $failure, $budget);
#
# The fake Admin API's state is the truth for what exists; its logs of
# creations and deletions say what happened in a step; the key pages and
# JSON answers say what was delivered to whom.
use strict;
use warnings;

use Apache::Test ();
use HTTP::Cookies ();
use HTTP::Request ();
use JSON::PP ();
use LWP::UserAgent ();
use MIME::Base64 qw(encode_base64url);
use Digest::SHA ();
use POSIX ();
use Time::HiRes ();
use Time::Local qw(timegm);
use URI ();
use OkeyTest;

my $JSON = JSON::PP->new->canonical->utf8;
my $TENANT = 'model';
my $ADMIN_KEY = 'model-admin-key-4f1c9e';
my $KEY_PREFIX = 'sk-model-';
my $PASSPHRASE = "the model's passphrase, shared by both servers";
my @SERVERS = ('okey_model', 'okey_model2');

# Which pair of servers the model drives, their fake organisation, and
# whether they share one ledger (a fleet): okey_model and okey_model2, each
# its own shared-memory ledger, tenant "model", unless told otherwise.
my $SHARED_LEDGER = 0;
sub configure {
    my (%how) = @_;
    @SERVERS = @{ $how{servers} } if $how{servers};
    $TENANT = $how{tenant} if $how{tenant};
    $SHARED_LEDGER = $how{shared_ledger} // $SHARED_LEDGER;
}

# The configuration of t/conf/extra.conf.in, as the model knows it.
my %PROJECTS = (
    'model-a' => { id => 'proj_model_a', cap => 2, max => 3600 },
    'model-b' => { id => 'proj_model_b', cap => 1, max => 7200, budget => 1 },  # USD a day
    'model-c' => { id => 'proj_model_c', cap => 0, max => 600 },
);
my %PROJECT_OF_ID = map { $PROJECTS{$_}{id} => $_ } keys %PROJECTS;
my %SERVER_LISTS = (users => ['alice@example.com'], domains => ['corp.example'], groups => []);
my @PROFILES = (
    { path => '/', kind => 'login', project => 'model-a', %SERVER_LISTS, default => 120, max => 3600 },
    { path => '/issue', kind => 'issue', project => 'model-a', %SERVER_LISTS, default => 120, max => 3600 },
    { path => '/a1', kind => 'login', project => 'model-a', users => ['bob@example.com'],
      domains => ['none.invalid'], groups => [], default => 1200, max => 3600 },
    { path => '/b', kind => 'login', project => 'model-b', users => ['dave@elsewhere.example'],
      domains => ['corp.example'], groups => [], default => 300, max => 7200 },
    { path => '/kb', kind => 'issue', project => 'model-b', users => ['dave@elsewhere.example'],
      domains => ['corp.example'], groups => [], default => 300, max => 7200 },
    { path => '/g', kind => 'login', project => 'model-c', users => ['carol@example.org'],
      domains => ['none.invalid'], groups => ['ml-team'], default => 600, max => 600 },
    { path => '/kg', kind => 'issue', project => 'model-c', users => ['carol@example.org'],
      domains => ['none.invalid'], groups => ['ml-team'], default => 600, max => 600 },
);
my %PROFILE = map { $_->{path} => $_ } @PROFILES;
my @PEOPLE = qw(alice@example.com bob@example.com x1@corp.example x2@corp.example
                dave@elsewhere.example carol@example.org eve@elsewhere.example mallory@evil.example);
my @INVARIANTS = ('answers', '1 identity', '2 no live key taken', '3 expired reaped, foreign kept',
                  '4 no orphan', '5 cap', '6 no secret leaked', '7 budget', 'audit');

# --- a reproducible PRNG (xorshift32) --------------------------------------------

sub prng {
    my ($seed) = @_;
    my $x = ($seed * 2654435761 + 1) & 0xffffffff;
    $x ||= 1;
    return sub {
        $x ^= ($x << 13) & 0xffffffff;
        $x ^= $x >> 17;
        $x ^= ($x << 5) & 0xffffffff;
        return $x / 4294967296;
    };
}

# --- operations ----------------------------------------------------------------

my @FAULTS = qw(r429 e500 e500_after hang hang_after slow malformed);

sub pick { my ($rand, @list) = @_; return $list[int($rand->() * @list)] }

sub weighted {
    my ($rand, @pairs) = @_;
    my $total = 0;
    $total += $pairs[$_] for grep { $_ % 2 } 0 .. $#pairs;
    my $x = $rand->() * $total;
    for (my $i = 0; $i < @pairs; $i += 2) {
        return $pairs[$i] if ($x -= $pairs[$i + 1]) < 0;
    }
    return $pairs[-2];
}

sub draw_ttl {
    my ($rand, $profile) = @_;
    my $kind = weighted($rand, none => 6, valid => 3, invalid => 1);
    return (undef, 1) if $kind eq 'none';
    if ($kind eq 'valid') {
        my $s = 60 + int($rand->() * ($profile->{max} - 60));
        return (pick($rand, 0, 1) ? "${s}s" : int($s / 60) . 'm', 1);
    }
    return (pick($rand, 'abc', '0', '59s', ($profile->{max} + 60) . 's', '-5m', '2w'), 0);
}

sub draw_op {
    my ($rand) = @_;
    my $kind = weighted($rand, signin => 24, issue => 14, revoke => 9, revoke_other => 3,
                        keys_nosession => 3, reap => 8, seed => 12, restart => 2, parallel => 6,
                        spend => 6);
    my $server = $rand->() < 0.8 ? 0 : 1;
    my $fault = $rand->() < 0.25 ? pick($rand, @FAULTS) : undef;
    if ($kind eq 'signin' || $kind eq 'issue' || $kind eq 'parallel') {
        my $as = $kind eq 'parallel' ? pick($rand, 'login', 'issue') : $kind eq 'signin' ? 'login' : 'issue';
        my $profile = pick($rand, grep { $_->{kind} eq $as } @PROFILES);
        # Mostly someone the profile admits, to get keys to reason about.
        my @admitted = grep { admitted($profile, $_, []) } @PEOPLE;
        my $person = $rand->() < 0.7 && @admitted ? pick($rand, @admitted) : pick($rand, @PEOPLE);
        my $groups = $as eq 'login' ? weighted($rand, none => 6, 'ml-team' => 3, other => 1) : 'none';
        my ($ttl, $valid) = draw_ttl($rand, $profile);
        my %op = (kind => $kind, server => $server, profile => $profile->{path}, person => $person,
                  groups => $groups, ttl => $ttl, ttl_valid => $valid, fault => $fault);
        if ($kind eq 'parallel') {
            $op{n} = pick($rand, 2, 3);
            $op{fault} = $rand->() < 0.3 ? pick($rand, 'hang', 'hang_after', 'slow') : undef;
            $op{ttl} = undef;
            $op{ttl_valid} = 1;
        }
        return \%op;
    }
    if ($kind eq 'revoke' || $kind eq 'revoke_other') {
        return { kind => $kind, server => $server, person => pick($rand, @PEOPLE),
                 all => ($kind eq 'revoke' && $rand->() < 0.3 ? 1 : 0), index => int($rand->() * 8) };
    }
    return { kind => $kind, server => $server, json => pick($rand, 0, 1), index => int($rand->() * 8) }
        if $kind eq 'keys_nosession';
    return { kind => $kind, index => int($rand->() * 8), cost => pick($rand, 0.4, 0.7, 1.1) }
        if $kind eq 'spend';
    return { kind => $kind, server => $server, fault => ($rand->() < 0.2 ? 'list500' : undef) }
        if $kind eq 'reap';
    if ($kind eq 'seed') {
        return { kind => $kind, project => pick($rand, sort keys %PROJECTS), person => pick($rand, @PEOPLE),
                 age => weighted($rand, expired => 4, near => 2, live_old => 3, foreign => 2),
                 form => pick($rand, 'new', 'old', 'hyphen'), n => 1 + int($rand->() * 3),
                 variant => int($rand->() * 4) };
    }
    return { kind => $kind };
}

sub draw_ops {
    my ($seed, $steps) = @_;
    my $rand = prng($seed);
    return [map { draw_op($rand) } 1 .. $steps];
}

sub describe {
    my ($op) = @_;
    my $k = $op->{kind};
    my $at = defined $op->{server} ? " at $SERVERS[$op->{server}]" : '';
    my $fault = $op->{fault} ? " with fault $op->{fault}" : '';
    my $ttl = defined $op->{ttl} ? " ttl=$op->{ttl}" : '';
    my $groups = ($op->{groups} // 'none') ne 'none' ? " groups=[$op->{groups}]" : '';
    return "sign in $op->{person}$groups at $op->{profile}$ttl$at$fault" if $k eq 'signin';
    return "openaikey-issue for $op->{person} at $op->{profile}$ttl$at$fault" if $k eq 'issue';
    return "$op->{n} parallel " . ($PROFILE{$op->{profile}}{kind} eq 'login' ? 'sign-ins' : 'issues')
         . " of $op->{person}$groups at $op->{profile}$at$fault" if $k eq 'parallel';
    return "$op->{person} revokes " . ($op->{all} ? 'all' : "own key #$op->{index}") . " through /keys$at" if $k eq 'revoke';
    return "$op->{person} revokes someone else's key #$op->{index} through /keys$at" if $k eq 'revoke_other';
    return 'POST /keys (' . ($op->{json} ? 'JSON' : 'form') . ") without a session$at" if $k eq 'keys_nosession';
    return "reap$at" . ($op->{fault} ? ' with the listing failing' : '') if $k eq 'reap';
    return "seed $op->{n} $op->{age} account(s) of $op->{person} in $op->{project} ($op->{form} names)" if $k eq 'seed';
    return 'graceful restart' if $k eq 'restart';
    return "the holder of our live key #$op->{index} spends \$$op->{cost}" if $k eq 'spend';
    return $k;
}

# --- the rules ------------------------------------------------------------------

sub domain_of { my ($email) = @_; return lc((split /@/, $email)[-1]) }

# Whether $profile admits $email (with ID-token groups @$groups; undef: no
# token, as for openaikey-issue, which groups never admit).
sub admitted {
    my ($profile, $email, $groups) = @_;
    $email = lc $email;
    return 1 if grep { lc $_ eq $email } @{ $profile->{users} };
    return 1 if grep { lc $_ eq domain_of($email) } @{ $profile->{domains} };
    return 0 if $profile->{kind} eq 'issue' || !$groups;
    my %have = map { $_ => 1 } @$groups;
    return scalar grep { $have{$_} } @{ $profile->{groups} };
}

# Whether the reaper may revoke a key of $email in $project for policy:
# no profile issuing into it admits the address, and none admits by group.
sub policy_revocable {
    my ($project, $email) = @_;
    my @issuing = grep { $_->{project} eq $project } @PROFILES;
    return 0 if grep { @{ $_->{groups} } } @issuing;
    return !grep { admitted({ %$_, kind => 'issue' }, $email, undef) } @issuing;
}

# A tag: five characters drawn, then three that a digest of the expiry,
# the drawn part and the address decides (src/keys.h), so that a name of
# release 2 whose address holds a hyphen is never taken for a tagged one.
my @TAG_CHARS = ('a' .. 'z', 0 .. 9);
my ($TAG_DRAWN, $TAG_CHECK) = (5, 3);
sub tag_check {
    my ($expires, $drawn, $email) = @_;
    my @digest = unpack 'C*', Digest::SHA::sha256("$expires-$drawn-$email");
    return join '', map { $TAG_CHARS[$digest[$_] % 36] } 0 .. $TAG_CHECK - 1;
}

# name => (expires, tag, email), for names of ours: okey-<expires>-<tag>-<email>
# with a tag that checks, else okey-<expires>-<email>.
sub parse_name {
    my ($name) = @_;
    return unless $name =~ /^okey-(\d{1,12})-(.*)$/s;
    my ($expires, $rest) = ($1, $2);
    my ($drawn, $check, $email) = $rest =~ /^([a-z0-9]{$TAG_DRAWN})([a-z0-9]{$TAG_CHECK})-(.*)$/s;
    return ($expires, "$drawn$check", $email)
        if defined $drawn && tag_check($expires, $drawn, $email) eq $check && $email =~ /^[^@].*@/s;
    return ($expires, undef, $rest) if $rest =~ /^[^@].*@/s;
    return;
}

sub ttl_seconds {
    my ($ttl) = @_;
    return undef unless defined $ttl && $ttl =~ /^(\d+)([smhd]?)$/;
    return $1 * { '' => 1, s => 1, m => 60, h => 3600, d => 86400 }->{$2};
}

# --- talking to the servers and the fakes ---------------------------------------------

my $control = LWP::UserAgent->new(timeout => 30);

sub post_json {
    my ($url, $doc) = @_;
    my $res = $control->post($url, 'Content-Type' => 'application/json', Content => $JSON->encode($doc));
    die "POST $url: " . $res->status_line unless $res->is_success;
}

sub model_state { return fake_state()->{tenants}{$TENANT} // {} }

sub set_faults { post_json(main_url('/fake/merge'), { tenants => { $TENANT => { faults => $_[0] } } }) }

sub creation_fault {
    my ($kind, $times) = @_;
    my $timeout = upstream_timeout();
    my %base = (method => 'POST', path => 'service_accounts$', times => $times // 1);
    my $fault = {
        r429 => { status => 429, retry_after => 1 },
        e500 => { status => 500 },
        e500_after => { status => 500, after => 1 },
        hang => { delay => $timeout + 1.5 },
        hang_after => { delay => $timeout + 1.5, after => 1 },
        slow => { delay => 0.4 },
        malformed => { status => 200, after => 1, body => '{"object":"organization.project.service_account","id":' },
        list500 => { status => 500, method => 'GET', path => 'service_accounts' },
    }->{$kind} or die "no fault $kind";
    return { %base, %$fault };
}

sub url { my ($server, $path) = @_; return vhost_url($SERVERS[$server], $path) }

sub logs_dir { return Apache::Test::vars('t_logs') }

sub slurp_from {
    my ($path, $offset) = @_;
    open my $fh, '<', $path or return ('', $offset);
    seek $fh, $offset, 0;
    local $/;
    my $text = <$fh> // '';
    return ($text, $offset + length $text);
}

sub iso_to_epoch {
    my ($iso) = @_;
    return undef unless defined $iso && $iso =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)/;
    return timegm($6, $5, $4, $3, $2 - 1, $1);
}

my $generations_seen;
sub generations { my ($text) = slurp_from(logs_dir() . '/error_log', 0); my $n = () = $text =~ /resuming normal operations/g; return $n }

sub graceful {
    my $vars = Apache::Test::vars();
    my @httpd = ($vars->{httpd}, '-d', $vars->{serverroot}, '-f', "$vars->{t_conf}/httpd.conf",
                 '-D', 'APACHE2', '-D', 'APACHE2_4', '-D', 'PERL_USEITHREADS');
    my $before = generations();
    system(@httpd, '-k', 'graceful') == 0 or return 0;
    my $deadline = Time::HiRes::time() + 60;
    Time::HiRes::sleep(0.1) until generations() > $before || Time::HiRes::time() > $deadline;
    return generations() > $before;
}

# --- one run ------------------------------------------------------------------

my $runs = 0;

sub new_run {
    my ($seed) = @_;
    $runs++;
    my $self = bless {
        seed => $seed, run => $runs, acct => {}, sessions => {}, codes => [],
        created_seen => 0, deleted_seen => 0, stats => { ops => {}, faults => 0, checks => {} },
        failure => undef, seeded => 0, last_reap => [0, 0],
    }, __PACKAGE__;
    return $self;
}

sub check {
    my ($self, $invariant, $ok, $message, $kind) = @_;
    $self->{stats}{checks}{$invariant}++;
    return $ok if $ok;
    my $failure = { invariant => $invariant, message => $message, step => $self->{step}, kind => $kind // '' };
    $self->{failure} //= $failure;
    # The first failure of each invariant, and of each way it failed.
    push @{ $self->{failures} }, $failure
        unless grep { $_->{invariant} eq $invariant && $_->{kind} eq $failure->{kind} } @{ $self->{failures} };
    return $ok;
}

sub browser_for {
    my ($self, $person) = @_;
    return $self->{sessions}{$person} //= browser();
}

sub reset_world {
    my ($self) = @_;
    my %projects = map { $_ => { id => $PROJECTS{$_}{id}, object => 'organization.project', name => $_,
                                  status => 'active', archived_at => undef, created_at => 1711471533 } } keys %PROJECTS;
    reset_fake({ tenants => { $TENANT => {
        admin_key => $ADMIN_KEY, key_prefix => $KEY_PREFIX, next_id => 100000 * $self->{run},
        projects => [map { $projects{$_} } sort keys %projects],
        accounts => { map { $PROJECTS{$_}{id} => [] } keys %PROJECTS } } } });
    for my $f ('error_log', 'access_log') {
        $self->{log_offset}{$f} = -s (logs_dir() . "/$f") // 0;
    }
    # A reap on each server with nothing to reap: its index of live keys
    # then holds nothing of an earlier run.
    for my $server (0, 1) {
        my $reap = $self->forced_reap($server);
        die "the first reap at $SERVERS[$server] failed: " . ($reap->{error} // '') unless $reap->{healthy};
    }
    # A usage poll on each server after the reset: what an earlier run
    # spent is then forgotten.
    $self->wait_polled(time);
    my $state = model_state();
    $self->{created_seen} = scalar @{ $state->{created} || [] };
    $self->{deleted_seen} = scalar @{ $state->{deleted} || [] };
}

# Waits (bounded) until every server reports a usage poll that began after $t.
sub wait_polled {
    my ($self, $t) = @_;
    my $deadline = time + 30;
    for my $server (0 .. $#SERVERS) {
        my $polled = 0;
        while (time < $deadline && $polled <= $t + 1) {
            my ($line) = grep { /^openaikey_last_usage_poll_timestamp_seconds/ }
                         split /\n/, (LWP::UserAgent->new(timeout => 10)->get(url($server, '/metrics'))->decoded_content // '');
            $polled = $line && $line =~ / (\d+)$/ ? $1 : 0;
            Time::HiRes::sleep(0.2) if $polled <= $t + 1;
        }
        die "no usage poll at $SERVERS[$server] after the reset" if $polled <= $t + 1;
    }
}

# A reap that started after now, asked of $server; waits for it, bounded.
# Servers that share a ledger share the lease too: whichever of them runs
# the reap (in one httpd, the reaper thread that wakes claims it for the
# first of them it comes to), it is the reap asked for.
sub forced_reap {
    my ($self, $server) = @_;
    # Whole seconds: a reap that began in the second of the last step may
    # have listed before that step.
    my $t0 = time + 1;
    Time::HiRes::sleep(0.05) while time < $t0;
    my $deadline = Time::HiRes::time() + 90;
    my $ua = LWP::UserAgent->new(timeout => 60);
    my @watched = $SHARED_LEDGER ? (0 .. $#SERVERS) : ($server);
    my $last;
    while (!$last && Time::HiRes::time() < $deadline) {
        my $res = $ua->request(HTTP::Request->new(POST => url($server, '/revoke'), [Accept => 'application/json']));
        # Shared, the reap may run under the other server while this one
        # answers 202: both are watched whatever the answer.
        if ($res->code == 200 || ($SHARED_LEDGER && $res->code == 202)) {
            ($last) = grep { my $start = iso_to_epoch($_->{start}); defined $start && $start >= $t0 }
                      map { $JSON->decode($ua->get(url($_, '/status'))->decoded_content)->{last_reap} } @watched;
        } elsif ($res->code != 202 && $res->code != 503) {
            return { healthy => 0, error => 'answer ' . $res->code };
        }
        Time::HiRes::sleep(0.25) unless $last;
    }
    return { healthy => 0, error => 'no reap after the request' } unless $last;
    my $start = iso_to_epoch($last->{start});
    $self->{last_reap}[$server] = $start;
    return { healthy => (($last->{result} // '') eq 'ok' && !$last->{failed}), start => $start,
             error => $last->{result} };
}

# --- the steps -------------------------------------------------------------------------

sub live_keys_of {
    my ($self, $person) = @_;
    return sort { $a->{id} cmp $b->{id} }
           grep { $_->{live} && $_->{ours} && lc $_->{email} eq $person && $_->{expires} > time + 2 } values %{ $self->{acct} };
}

sub key_id_of_value {
    my ($state, $value) = @_;
    my $issued = $state->{issued_keys} || {};
    my ($id) = grep { $issued->{$_} eq $value } keys %$issued;
    return $id;
}

# A sign-in or an issue, as its own request sequence; returns what came back.
sub obtain {
    my ($self, $op, $ua) = @_;
    my $profile = $PROFILE{ $op->{profile} };
    my %out = (status => 0);
    if ($profile->{kind} eq 'login') {
        my $path = $op->{profile} . (defined $op->{ttl} ? '?ttl=' . $op->{ttl} : '');
        my $login = $ua->get(url($op->{server}, $path));
        push @{ $out{locations} }, $login->header('Location') // '';
        if ($login->code != 302) { $out{status} = $login->code; return \%out }
        my %claims = $op->{groups} eq 'none' ? () : (groups_json => $op->{groups} eq 'other' ? '["other-team"]' : '["ml-team"]');
        my $callback = eval { authorize($ua, $login->header('Location'), $op->{person}, %claims) };
        if (!$callback) { $out{status} = -1; $out{error} = $@; return \%out }
        my %q = URI->new($callback)->query_form;
        $out{code} = $q{code};
        my $page = $ua->get($callback);
        push @{ $out{locations} }, $page->header('Location') // '';
        $out{status} = $page->code;
        my $html = $page->decoded_content // '';
        if ($page->code == 200) {
            ($out{key}) = $html =~ /<pre id="key">([^<]+)</;
            ($out{project}) = $html =~ /<dt>Project<\/dt><dd>([^<]*)</;
            ($out{expires}) = $html =~ /<time datetime="([^"]+)"/;
            $out{expires} = iso_to_epoch($out{expires});
        }
        # An error page's message, after its styles.
        $out{body} = ($html =~ m{<h1>.*?</h1>\s*<p>(.*?)</p>}s)[0] // substr($html, 0, 300)
            if $page->code != 200;
        return \%out;
    }
    my $body = defined $op->{ttl} ? { ttl => $op->{ttl} } : {};
    my $res = $ua->request(HTTP::Request->new(POST => url($op->{server}, $op->{profile}),
        ['Content-Type' => 'application/json', Accept => 'application/json',
         'X-Test-User' => encode_base64url($op->{person})], $JSON->encode($body)));
    $out{status} = $res->code;
    push @{ $out{locations} }, $res->header('Location') // '';
    if ($res->code == 200) {
        my $doc = eval { $JSON->decode($res->decoded_content) } || {};
        @out{qw(key project expires id email)} = @$doc{qw(api_key project expires_at service_account_id email)};
    } else {
        $out{body} = substr($res->decoded_content // '', 0, 300);
    }
    return \%out;
}

sub run_parallel {
    my ($self, $op) = @_;
    my @kids;
    my $dir = "/tmp/okey-model-$$";
    mkdir $dir;
    for my $i (1 .. $op->{n}) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            my $out = eval { $self->obtain($op, browser()) } || { status => -1, error => "$@" };
            if (open my $fh, '>', "$dir/$i") { print {$fh} $JSON->encode($out); close $fh }
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    my $deadline = Time::HiRes::time() + 60;
    my %left = map { $_ => 1 } @kids;
    while (%left && Time::HiRes::time() < $deadline) {
        for my $pid (keys %left) { delete $left{$pid} if waitpid($pid, POSIX::WNOHANG()) }
        Time::HiRes::sleep(0.05) if %left;
    }
    kill 'KILL', keys %left;
    waitpid($_, 0) for keys %left;
    my @outs;
    for my $i (1 .. $op->{n}) {
        my $text = do { local $/; open my $fh, '<', "$dir/$i" or next; <$fh> };
        push @outs, $JSON->decode($text);
        unlink "$dir/$i";
    }
    rmdir $dir;
    return @outs;
}

sub step_obtain {
    my ($self, $op) = @_;
    return { outs => [$self->run_parallel($op)] } if $op->{kind} eq 'parallel';
    # A sign-in's browser: a new cookie jar, kept for /keys when it got a key.
    my $ua = browser();
    my $out = $self->obtain($op, $ua);
    $self->{sessions}{ $op->{person} } = $ua if $PROFILE{ $op->{profile} }{kind} eq 'login' && $out->{status} == 200;
    return { outs => [$out] };
}

sub step_revoke {
    my ($self, $op) = @_;
    my $ua = $self->{sessions}{ $op->{person} };
    return { skipped => 'no session' } unless $ua;
    my ($target, $owner);
    if ($op->{kind} eq 'revoke') {
        my @mine = $self->live_keys_of($op->{person});
        $target = $op->{all} || !@mine ? 'all' : $mine[$op->{index} % @mine]{id};
        $owner = $op->{person};
    } else {
        my @others = sort { $a->{id} cmp $b->{id} }
                     grep { $_->{live} && lc($_->{email} // '') ne $op->{person} } values %{ $self->{acct} };
        return { skipped => 'no key of another' } unless @others;
        $target = $others[$op->{index} % @others]{id};
    }
    my $res = $ua->request(HTTP::Request->new(POST => url($op->{server}, '/keys'),
        ['Content-Type' => 'application/json', Accept => 'application/json'], $JSON->encode({ revoke => $target })));
    return { status => $res->code, target => $target, person => $op->{person}, locations => [$res->header('Location') // ''] };
}

sub step_keys_nosession {
    my ($self, $op) = @_;
    my @live = sort { $a->{id} cmp $b->{id} } grep { $_->{live} && $_->{ours} } values %{ $self->{acct} };
    my $target = @live ? $live[$op->{index} % @live]{id} : 'all';
    my $ua = browser();
    my $res = $op->{json}
        ? $ua->request(HTTP::Request->new(POST => url($op->{server}, '/keys'),
              ['Content-Type' => 'application/json', Accept => 'application/json'], $JSON->encode({ revoke => $target })))
        : $ua->post(url($op->{server}, '/keys'), { service_account => $target, csrf => 'x' });
    return { status => $res->code, target => $target, locations => [$res->header('Location') // ''] };
}

sub step_seed {
    my ($self, $op) = @_;
    my $now = time;
    my $max = $PROJECTS{ $op->{project} }{max};
    my @accounts;
    for my $i (1 .. $op->{n}) {
        my $n = ++$self->{seeded};
        my $tag = substr(sprintf('%08x', ($self->{seed} * 7919 + $n * 104729) & 0xffffffff), 0, 6 + $i % 3);
        $tag =~ tr/0-9a-f/k-tu-z/;
        my ($expires, $created);
        if ($op->{age} eq 'expired') { $expires = $now - 1 - ($n * 37) % 900; $created = $expires - 120 }
        elsif ($op->{age} eq 'near') { $expires = $now + 2 + $i * 2; $created = $now - 60 }
        elsif ($op->{age} eq 'live_old') { $created = $now - int($max * 0.5); $expires = $created + int($max * 0.9) }
        my $email = $op->{person};
        my $name;
        if ($op->{age} eq 'foreign') {
            $expires = $now - 100;
            $created = $now - 7200;
            $name = ('ci-bot-' . $n, $email, "okey-$expires", "okeyx-$expires-$email")[($op->{variant} + $i) % 4];
        } else {
            # hyphen: an address of release 2 that starts like a tag.
            my $drawn = substr($tag . $tag, 0, $TAG_DRAWN);
            $name = $op->{form} eq 'new' ? "okey-$expires-$drawn" . tag_check($expires, $drawn, $email) . "-$email"
                  : $op->{form} eq 'hyphen' ? "okey-$expires-$tag-$email" : "okey-$expires-$email";
        }
        push @accounts, { object => 'organization.project.service_account', id => "svc_seed_$self->{run}_$n",
                          name => $name, role => 'member', created_at => $created };
    }
    post_json(main_url('/fake/seed'), { tenant => $TENANT, project => $PROJECTS{ $op->{project} }{id}, accounts => \@accounts });
    return { seeded => \@accounts, project => $op->{project} };
}

# What a key's holder spent, recorded in the fake for its next report: the
# model keeps each person's spend per project and UTC day.
sub step_spend {
    my ($self, $op) = @_;
    my @keys = sort { $a->{id} cmp $b->{id} }
               grep { $_->{live} && $_->{ours} && $_->{email} && $_->{expires} > time + 2 } values %{ $self->{acct} };
    return { skipped => 'no live key' } unless @keys;
    my $acct = $keys[$op->{index} % @keys];
    my $now = time;
    post_json(main_url('/fake/usage'), { tenant => $TENANT, service_account_id => $acct->{id},
                                         time => $now, cost_usd => $op->{cost}, requests => 1 });
    $self->{spent}{ $acct->{email} }{ $acct->{project} }{ int($now / 86400) } += $op->{cost};
    return { spent => $op->{cost}, by => $acct->{email} };
}

# Whether $email had spent their budget in $project by $time, by what the
# model recorded: all the module can know of.
sub over_budget {
    my ($self, $email, $project, $time) = @_;
    my $budget = $PROJECTS{$project} && $PROJECTS{$project}{budget} or return 0;
    my $spent = $self->{spent}{ lc($email // '') }{$project}{ int($time / 86400) } // 0;
    return $spent >= $budget - 1e-6;
}

sub step_reap {
    my ($self, $op) = @_;
    set_faults([creation_fault('list500')]) if $op->{fault};
    my $reap = $self->forced_reap($op->{server});
    return { reap => $reap };
}

# --- the invariants -------------------------------------------------------------------------

sub register {
    my ($self, $id, $name, $project_id, $created_at, $origin) = @_;
    my ($expires, $tag, $email) = parse_name($name);
    return $self->{acct}{$id} //= {
        id => $id, name => $name, project => $PROJECT_OF_ID{$project_id} // $project_id,
        created_at => $created_at, origin => $origin, ours => defined $expires ? 1 : 0,
        expires => $expires // 0, email => defined $email ? lc $email : undef, live => 1,
        known => {},
    };
}

# Why a deletion at $time is legitimate, or undef.
sub justify {
    my ($self, $acct, $del, $result, $op) = @_;
    my $time = $del->{time};
    return undef unless $acct->{ours};
    return 'expired' if $acct->{expires} <= $time + 1;
    return 'orphan' if $acct->{uncertain} && !$acct->{delivered};
    if ($op->{kind} eq 'revoke' && ($result->{status} // 0) == 200 && $acct->{email} eq $op->{person}
        && ($result->{target} eq 'all' || $result->{target} eq $acct->{id})) {
        return 'holder';
    }
    my $project = $PROJECTS{ $acct->{project} } or return undef;
    # Which keys the cap keeps follows the order the ledger recorded them
    # in, which the model does not see: a cap deletion is justified by as
    # many other live keys then; that the keys a sign-in showed survive is
    # invariant 5's.
    if ($project->{cap} > 0) {
        my @newer = grep {
            $_->{id} ne $acct->{id} && $_->{ours} && ($_->{email} // '') eq $acct->{email}
            && $_->{project} eq $acct->{project} && $_->{expires} > $time
            && (!defined $_->{deleted_at} || $_->{deleted_at} >= $time)
            && ($_->{created_seen_at} // 0) <= $time + 0.001
        } values %{ $self->{acct} };
        return 'cap' if @newer >= $project->{cap};
    }
    return 'budget' if $self->over_budget($acct->{email}, $acct->{project}, $time);
    return 'policy' if policy_revocable($acct->{project}, $acct->{email});
    return undef;
}

sub audit_of {
    my ($self, $id) = @_;
    my @lines = grep { /service_account=\Q$id\E / } @{ $self->{audit} || [] };
    return @lines ? join(' | ', map { /(revoked key:.*|reaped key:.*)/ ? $1 : $_ } @lines) : 'no audit line';
}

# How the module says it deleted an account: by=cap, by=policy, reaped
# (expired), orphan (its creation got no answer), or nothing said.
sub deletion_kind {
    my ($self, $acct) = @_;
    my $audit = $self->audit_of($acct->{id});
    return $audit =~ /by=(\w+)/ ? "by=$1" : $audit =~ /nobody holds its key/ ? 'orphan'
         : $audit =~ /reaped key/ ? 'reaped' : 'unaudited';
}

sub verify {
    my ($self, $op, $result, $t_start) = @_;
    my $now = Time::HiRes::time();
    my $state = model_state();
    my $timeout = upstream_timeout();
    # Logs since the last step, read after the state: a deletion's audit
    # line follows the deletion, so wait (bounded) for those it lacks.
    my %new_log = (error_log => '', access_log => '');
    my $deleted_ids = [map { $_->{id} } @{ $state->{deleted} || [] }[$self->{deleted_seen} .. $#{ $state->{deleted} || [] }]];
    my $log_deadline = Time::HiRes::time() + 2;
    while (1) {
        for my $f ('error_log', 'access_log') {
            my ($text, $offset) = slurp_from(logs_dir() . "/$f", $self->{log_offset}{$f});
            # Whole lines only: the rest is read with the next step.
            my $end = rindex($text, "\n") + 1;
            $new_log{$f} .= substr($text, 0, $end);
            $self->{log_offset}{$f} = $offset - (length($text) - $end);
        }
        my @unaudited = grep { my $id = $_; $new_log{error_log} !~ /service_account=\Q$id\E / } @$deleted_ids;
        last if !@unaudited || Time::HiRes::time() > $log_deadline;
        Time::HiRes::sleep(0.1);
    }
    push @{ $self->{audit} }, grep { /revoked key:|reaped key:/ } split /\n/, $new_log{error_log};

    # Seeded accounts are known from the moment they were made.
    for my $a (@{ $result->{seeded} || [] }) {
        my $acct = $self->register($a->{id}, $a->{name}, $PROJECTS{ $result->{project} }{id}, $a->{created_at}, 'seeded');
        $acct->{created_seen_at} = $t_start;
    }
    # Creations of this step.
    my @created = @{ $state->{created} || [] }[$self->{created_seen} .. $#{ $state->{created} || [] }];
    $self->{created_seen} += @created;
    for my $c (@created) {
        my $acct = $self->register($c->{id}, $c->{name}, $c->{project}, int($c->{time}), 'issued');
        $acct->{created_seen_at} = $c->{time};
        $acct->{server} = $op->{server};
        $acct->{known}{ $op->{server} } = 1;
    }
    # Deliveries of this step.
    my @outs = @{ $result->{outs} || [] };
    my %delivered;
    for my $out (@outs) {
        next unless ($out->{status} // 0) == 200;
        my $id = $out->{id} // (defined $out->{key} ? key_id_of_value($state, $out->{key}) : undef);
        my $acct = defined $id ? $self->{acct}{$id} : undef;
        $self->check('answers', $acct, "step answered 200 but delivered no account the fake made (key "
                     . (defined $out->{key} ? 'present' : 'missing') . ')') or next;
        $acct->{delivered} = 1;
        $acct->{holder} = $op->{person};
        $acct->{profile} = $op->{profile};
        $delivered{$id} = $acct;
        push @{ $self->{codes} }, $out->{code} if $out->{code};
    }
    push @{ $self->{codes} }, map { $_->{code} // () } @outs;

    if (@outs) {
        my $profile = $PROFILE{ $op->{profile} };
        my @groups = $op->{groups} eq 'none' ? () : ($op->{groups} eq 'other' ? ('other-team') : ('ml-team'));
        my $ok_identity = admitted($profile, $op->{person}, $profile->{kind} eq 'login' ? \@groups : undef);
        my $expected_ttl = $op->{ttl_valid} ? (ttl_seconds($op->{ttl}) // $profile->{default}) : undef;
        # 1: nothing issued to an identity the profile refuses.
        for my $acct (values %delivered) {
            $self->check('1 identity', $ok_identity && $acct->{email} eq lc $op->{person},
                         "$acct->{id} ($acct->{name}) delivered to $op->{person} at $op->{profile}, which refuses that identity");
        }
        for my $c (@created) {
            my $acct = $self->{acct}{ $c->{id} };
            $self->check('1 identity', $ok_identity && $op->{ttl_valid},
                         "$acct->{name} was created for $op->{person} at $op->{profile}, which must refuse "
                         . ($ok_identity ? 'ttl=' . ($op->{ttl} // '') : 'that identity'));
        }
        for my $out (@outs) {
            my $st = $out->{status} // 0;
            if (!$op->{ttl_valid} && !$ok_identity && $profile->{kind} eq 'issue') {
                # Both wrong: which one openaikey-issue names first is its choice.
                $self->check('answers', $st == 400 || $st == 403, "ttl=$op->{ttl} for $op->{person} at $op->{profile} answered $st, not 400 or 403");
            } elsif (!$op->{ttl_valid}) {
                $self->check('answers', $st == 400, "ttl=$op->{ttl} at $op->{profile} answered $st, not 400");
            } elsif (!$ok_identity) {
                $self->check('answers', $st == 403, "$op->{person} at $op->{profile} answered $st, not 403");
            } elsif ($st == 403 && ($out->{body} // '') =~ /budget/) {
                # Refused for spending: only once the model saw the budget spent.
                $self->check('7 budget', $self->over_budget($op->{person}, $profile->{project}, $now),
                             "$op->{person} at $op->{profile} was refused for a budget not spent: $out->{body}",
                             'budget');
            } elsif (!$op->{fault}) {
                $self->check('answers', $st == 200, "$op->{person} at $op->{profile} answered $st, not 200: "
                             . ($out->{body} // $out->{error} // ''));
            }
            next unless $st == 200;
            # The key's terms: its profile's project and lifetime.
            $self->check('answers', ($out->{project} // '') eq $profile->{project},
                         "a key from $op->{profile} is in " . ($out->{project} // '?') . ", not $profile->{project}");
            $self->check('answers', defined $out->{expires} && $out->{expires} >= int($t_start) + $expected_ttl - 2
                                    && $out->{expires} <= time + $expected_ttl + 2,
                         "a key from $op->{profile} expires at " . ($out->{expires} // '?') . ", not in $expected_ttl s");
        }
    }

    # Deletions of this step.
    my @deleted = @{ $state->{deleted} || [] }[$self->{deleted_seen} .. $#{ $state->{deleted} || [] }];
    $self->{deleted_seen} += @deleted;
    $self->{acct}{ $_->{id} } && ($self->{acct}{ $_->{id} }{deleted_at} = $_->{time}) for @deleted;
    for my $del (@deleted) {
        my $acct = $self->{acct}{ $del->{id} }
            // $self->register($del->{id}, $del->{name}, $del->{project}, $del->{created_at}, 'unknown');
        $acct->{live} = 0;
        if (!$acct->{ours}) {
            $self->check('3 expired reaped, foreign kept', 0, "$acct->{id} ($acct->{name}), not named as ours, was deleted: "
                         . $self->audit_of($acct->{id}));
            next;
        }
        my $why = $self->justify($acct, $del, $result, $op);
        $acct->{deleted_why} = $why;
        $self->check('2 no live key taken', defined $why,
                     sprintf('%s (%s, %s, %s) was deleted %d s before its expiry, by no rule that allows it: %s',
                             $acct->{id}, $acct->{name}, $acct->{project},
                             $acct->{delivered} ? "delivered to $acct->{holder} at $acct->{profile}" : $acct->{origin},
                             $acct->{expires} - $del->{time}, $self->audit_of($acct->{id})),
                     $self->deletion_kind($acct));
        $self->check('4 no orphan', !($acct->{delivered} && ($why // '') eq 'orphan'),
                     "$acct->{id}, delivered, was deleted as an orphan");
    }

    # Live flags from the fake's listing (the truth for existence).
    my %exists;
    for my $pid (keys %{ $state->{accounts} || {} }) { $exists{ $_->{id} } = 1 for @{ $state->{accounts}{$pid} } }
    $_->{live} = $exists{ $_->{id} } ? 1 : 0 for values %{ $self->{acct} };

    # 4: what was made but not delivered is settled by a deadline.
    for my $c (@created) {
        my $acct = $self->{acct}{ $c->{id} };
        next if $acct->{delivered};
        $acct->{uncertain} = 1;
        $acct->{due} = $now + 3 * $timeout + 2;
    }

    # 3 and 4 after a healthy reap.
    if (my $reap = $result->{reap}) {
        if ($reap->{healthy}) {
            for my $acct (grep { $_->{live} } values %{ $self->{acct} }) {
                $acct->{known}{ $op->{server} } = 1;
                $self->check('3 expired reaped, foreign kept', !($acct->{ours} && $acct->{expires} < $reap->{start} - 1),
                             "$acct->{id} ($acct->{name}) expired " . ($reap->{start} - $acct->{expires})
                             . " s before a healthy reap at $SERVERS[$op->{server}] and is still there");
                $self->check('4 no orphan', !($acct->{uncertain} && !$acct->{delivered} && $acct->{due} < $reap->{start}
                                              && $acct->{server} == $op->{server}),
                             "$acct->{id} ($acct->{name}), made by a creation that delivered nothing, outlived its "
                             . "orphan deadline and a reap at $SERVERS[$op->{server}]");
            }
        }
    }

    # 5: after a capped issue completed, at most N live keys, the newest kept.
    if (@outs && !$op->{fault}) {
        my $profile = $PROFILE{ $op->{profile} };
        my $cap = $PROJECTS{ $profile->{project} }{cap};
        my @ok = values %delivered;
        if ($cap > 0 && @ok) {
            my $email = $ok[0]{email};
            # An account whose creation delivered nothing is held by nobody:
            # invariant 4 accounts for it.
            my @held = grep { $_->{live} && $_->{ours} && ($_->{email} // '') eq $email && $_->{project} eq $profile->{project}
                              && !($_->{uncertain} && !$_->{delivered})
                              && $_->{expires} > time + 1 && $_->{known}{ $op->{server} } } values %{ $self->{acct} };
            $self->check('5 cap', @held <= $cap, sprintf('%s holds %d live keys in %s (cap %d) after an issue at %s: %s',
                                                         $email, scalar @held, $profile->{project}, $cap, $SERVERS[$op->{server}],
                                                         join(', ', map { $_->{id} } sort { $a->{id} cmp $b->{id} } @held)));
            my $kept = grep { $_->{live} } @ok;
            my $want = @ok < $cap ? scalar @ok : $cap;
            $self->check('5 cap', $kept >= $want, sprintf('%s was shown %d key(s) at %s but holds %d of them (cap %d): %s',
                                                          $email, scalar @ok, $op->{profile}, $kept, $cap,
                                                          join('; ', map { "$_->{id}: " . $self->audit_of($_->{id}) } @ok)));
        }
    }

    # Answers of the /keys steps.
    if ($op->{kind} eq 'keys_nosession') {
        my $want = $op->{json} ? 401 : 403;
        $self->check('answers', $result->{status} == $want, "POST /keys without a session answered $result->{status}, not $want");
    }
    if ($op->{kind} eq 'revoke_other' && !$result->{skipped}) {
        $self->check('answers', $result->{status} == 404, "revoking another's key answered $result->{status}, not 404");
    }
    if ($op->{kind} eq 'revoke' && !$result->{skipped}) {
        $self->check('answers', $result->{status} == 200, "a revoke of one's own key answered $result->{status}");
        if ($result->{target} eq 'all' && $result->{status} == 200) {
            my @left = grep { $_->{ours} && ($_->{email} // '') eq $op->{person} && ($_->{created_seen_at} // 0) < $t_start
                              && $_->{expires} > $t_start + 1 }
                       grep { $_->{live} } values %{ $self->{acct} };
            $self->check('answers', !@left, "revoke all left $op->{person} " . join(', ', map { $_->{name} } @left));
        }
    }

    # One deletion, one audit line. A line read after the state may tell of
    # a deletion the state did not show yet: it waits for the next step.
    my @pending = @{ $self->{audit_pending} || [] };
    $self->{audit_pending} = [];
    for my $line (@pending, grep { /revoked key:|reaped key:/ } split /\n/, $new_log{error_log}) {
        my ($id) = $line =~ /service_account=(\S+)/ or next;
        next unless $self->{acct}{$id};
        if (!defined $self->{acct}{$id}{deleted_at} && !grep { $_ eq $line } @pending) {
            push @{ $self->{audit_pending} }, $line;
            next;
        }
        my $n = ++$self->{audited}{$id};
        $self->check('audit', $n == 1 && defined $self->{acct}{$id}{deleted_at},
                     $n > 1 ? "$id has $n audit lines for one deletion: " . $self->audit_of($id)
                            : "$id is audited as deleted but was not: " . ($line =~ /(revoked key:.*|reaped key:.*)/)[0]);
    }

    # 6: no secret in a log line or a Location.
    my @secrets = (['the admin key', $ADMIN_KEY], ['the client secret', 'test-secret'], ['the passphrase', $PASSPHRASE]);
    my $logs = $new_log{error_log} . $new_log{access_log};
    $self->check('6 no secret leaked', index($logs, $_->[1]) < 0, "a log line holds $_->[0]") for @secrets;
    $self->check('6 no secret leaked', $logs !~ /\Q$KEY_PREFIX\E/, 'a log line holds a key value: '
                 . (($logs =~ /^(.*\Q$KEY_PREFIX\E.*)$/m)[0] // ''));
    $self->check('6 no secret leaked', $logs !~ /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+/,
                 'a log line holds a token or sealed cookie');
    for my $code (grep { defined && length > 8 } @{ $self->{codes} }) {
        $self->check('6 no secret leaked', index($new_log{error_log}, $code) < 0 && index($logs, "at-$code") < 0,
                     'the error log holds an authorization code or token');
    }
    my @locations = map { @{ $_->{locations} || [] } } (@outs, $result);
    for my $loc (@locations) {
        $self->check('6 no secret leaked', $loc !~ /\Q$KEY_PREFIX\E|\Q$ADMIN_KEY\E|test-secret/, "a Location holds a secret: $loc");
    }
}

# Runs ops; returns the failure (or undef) and the counts.
sub execute {
    my ($self, $ops) = @_;
    $self->reset_world;
    for my $i (0 .. $#$ops) {
        my $op = $ops->[$i];
        $self->{step} = $i + 1;
        $self->{stats}{ops}{ $op->{kind} }++;
        my $t_start = Time::HiRes::time();
        my $fault = $op->{fault} && $op->{kind} ne 'reap' ? $op->{fault} : undef;
        if ($fault) {
            $self->{stats}{faults}++;
            set_faults([creation_fault($fault, $op->{kind} eq 'parallel' ? 1 : 1)]);
        }
        $self->{stats}{faults}++ if $op->{kind} eq 'reap' && $op->{fault};
        my $result = $op->{kind} =~ /^(signin|issue|parallel)$/ ? $self->step_obtain($op)
                   : $op->{kind} =~ /^revoke/ ? $self->step_revoke($op)
                   : $op->{kind} eq 'keys_nosession' ? $self->step_keys_nosession($op)
                   : $op->{kind} eq 'seed' ? $self->step_seed($op)
                   : $op->{kind} eq 'reap' ? $self->step_reap($op)
                   : $op->{kind} eq 'spend' ? $self->step_spend($op)
                   : $op->{kind} eq 'restart' ? { restarted => graceful() }
                   : {};
        set_faults([]) if $op->{fault};
        if ($op->{kind} eq 'restart') {
            $self->check('answers', $result->{restarted}, 'a graceful restart did not finish');
        }
        # A hang keeps the fake busy after the module gave up: the step ends
        # when the fake has answered.
        $self->wait_fake_idle if $fault;
        $self->verify($op, $result, $t_start);
        $self->{steps_done} = $i + 1;
        if ($self->{stop_on}) {
            my ($hit) = grep { $_->{invariant} eq $self->{stop_on}[0] && $_->{kind} eq $self->{stop_on}[1] }
                        @{ $self->{failures} || [] };
            return $hit if $hit;
        }
    }
    $self->drain;
    return $self->{failure};
}

sub wait_fake_idle {
    my $deadline = Time::HiRes::time() + 30;
    Time::HiRes::sleep(0.1) while (model_state()->{in_flight} // 0) > 0 && Time::HiRes::time() < $deadline;
}

# The end: every deadline passes, then a healthy reap on each server.
sub drain {
    my ($self) = @_;
    $self->{step} = 'end';
    my ($due) = sort { $b <=> $a } map { $_->{due} // 0 } values %{ $self->{acct} };
    my $deadline = Time::HiRes::time() + 30;
    Time::HiRes::sleep(0.2) while ($due // 0) >= time && Time::HiRes::time() < $deadline;
    for my $server (0, 1) {
        my $op = { kind => 'reap', server => $server };
        my $t = Time::HiRes::time();
        my $result = $self->step_reap($op);
        $self->check('3 expired reaped, foreign kept', $result->{reap}{healthy},
                     "the final reap at $SERVERS[$server] was not healthy: " . ($result->{reap}{error} // ''));
        $self->verify($op, $result, $t);
    }
}

sub run_ops {
    my ($seed, $ops, %opts) = @_;
    my $self = new_run($seed);
    $self->{stop_on} = $opts{stop_on};
    my $failure = eval { $self->execute($ops) };
    if ($@) {
        $failure = { invariant => 'driver', message => "the driver died: $@", step => $self->{step} };
        push @{ $self->{failures} }, $failure;
    }
    return { failure => $failure, failures => $self->{failures} || [], stats => $self->{stats},
             steps => $self->{steps_done} // 0 };
}

# Delta debugging: the shortest prefix that fails, then chunks removed while
# the same invariant still fails; at most $budget replays.
sub shrink {
    my ($seed, $ops, $failure, $budget, $log) = @_;
    my $invariant = $failure->{invariant};
    my $step = $failure->{step};
    my @current = @$ops[0 .. ($step =~ /^\d+$/ ? $step - 1 : $#$ops)];
    my $replays = 0;
    my $fails = sub {
        my ($candidate) = @_;
        $replays++;
        my $run = run_ops($seed, $candidate, stop_on => [$invariant, $failure->{kind}]);
        my ($yes) = grep { $_->{invariant} eq $invariant && $_->{kind} eq $failure->{kind} } @{ $run->{failures} };
        $log->(sprintf('replay %d: %d steps: %s', $replays, scalar @$candidate,
                       $yes ? "still fails ($yes->{message})" : 'passes')) if $log;
        return $yes;
    };
    my $last = $failure;
    my $chunks = 2;
    while (@current > 1 && $replays < $budget) {
        my $size = int((@current + $chunks - 1) / $chunks);
        my $reduced = 0;
        for (my $start = 0; $start < @current && $replays < $budget; $start += $size) {
            my @candidate = (@current[0 .. $start - 1], @current[$start + $size .. $#current]);
            @candidate = grep { defined } @candidate;
            next unless @candidate;
            if (my $f = $fails->(\@candidate)) {
                @current = @candidate;
                $last = $f;
                $chunks = $chunks > 2 ? $chunks - 1 : 2;
                $reduced = 1;
                last;
            }
        }
        next if $reduced;
        last if $size <= 1;
        $chunks = $chunks * 2 > @current ? scalar @current : $chunks * 2;
    }
    # Then each step made plainer: no fault, no ttl, no groups.
    for my $i (0 .. $#current) {
        for my $field (qw(fault ttl groups)) {
            last if $replays >= $budget;
            my $plain = $field eq 'groups' ? 'none' : undef;
            next if !defined $current[$i]{$field} || ($field eq 'groups' && $current[$i]{groups} eq 'none');
            my @candidate = @current;
            $candidate[$i] = { %{ $current[$i] }, $field => $plain, ($field eq 'ttl' ? (ttl_valid => 1) : ()) };
            if (my $f = $fails->(\@candidate)) {
                @current = @candidate;
                $last = $f;
            }
        }
    }
    return (\@current, $last, $replays);
}

sub summary {
    my ($seed, $steps, $stats) = @_;
    my $ops = join ' ', map { "$_=$stats->{ops}{$_}" } sort keys %{ $stats->{ops} };
    my $checks = join ' ', map { my $n = $stats->{checks}{$_} // 0; (split / /, $_)[0] . "=$n" } @INVARIANTS;
    my $total = 0;
    $total += $_ for values %{ $stats->{checks} };
    return "seed $seed: $steps steps; ops: $ops; faults injected: $stats->{faults}; checks: $total ($checks)";
}

# The model test: each seed of OKEY_MODEL_SEEDS (or @$seeds) run for
# OKEY_MODEL_STEPS (or $steps) steps, one test each; a failing seed is
# shrunk within OKEY_MODEL_SHRINK replays over all (twenty, about three
# minutes), its first failure, or with OKEY_MODEL_SHRINK_ALL=1 each way an
# invariant failed. $note reports as it goes (Test::More's diag).
sub run_test {
    my (%how) = @_;
    my ($note, $pass, $fail) = @how{qw(note pass fail)};
    my @seeds = $ENV{OKEY_MODEL_SEEDS} ? split(/,/, $ENV{OKEY_MODEL_SEEDS}) : @{ $how{seeds} };
    my $steps = $ENV{OKEY_MODEL_STEPS} // $how{steps};
    my $budget = $ENV{OKEY_MODEL_SHRINK} // 20;
    my $began = Time::HiRes::time();
    my (%total, $total_steps, $total_faults);
    for my $seed (@seeds) {
        my $ops = draw_ops($seed, $steps);
        my $started = Time::HiRes::time();
        my $run = run_ops($seed, $ops);
        $note->(summary($seed, $run->{steps}, $run->{stats}) . sprintf(' in %.0f s', Time::HiRes::time() - $started));
        $total_steps += $run->{steps};
        $total_faults += $run->{stats}{faults};
        $total{$_} += $run->{stats}{ops}{$_} for keys %{ $run->{stats}{ops} };
        $total{"check $_"} += $run->{stats}{checks}{$_} for keys %{ $run->{stats}{checks} };
        my @failures = @{ $run->{failures} };
        if (!@failures) {
            $pass->("seed $seed: $steps steps, every invariant held");
            next;
        }
        $note->("seed $seed fails invariant $_->{invariant}" . ($_->{kind} ? " ($_->{kind})" : '')
                . ' first at step ' . ($_->{step} // 'setup') . ": $_->{message}") for @failures;
        # A driver that died (a server that never answered) is not shrunk.
        for my $failure (grep { $_->{invariant} ne 'driver' } $ENV{OKEY_MODEL_SHRINK_ALL} ? @failures : $failures[0]) {
            last if $budget <= 0;
            my ($shortest, $last, $replays) = shrink($seed, $ops, $failure, $budget,
                                                     $ENV{OKEY_MODEL_VERBOSE} ? $note : undef);
            $budget -= $replays;
            $note->(sprintf('seed %d: the shortest sequence found in %d replays (%d steps) fails invariant %s: %s',
                            $seed, $replays, scalar @$shortest, $last->{invariant}, $last->{message}));
            $note->(sprintf('  %2d. %s', $_ + 1, describe($shortest->[$_]))) for 0 .. $#$shortest;
            $note->('      then the end of every run: each deadline passes, a reap at each server') if $last->{step} eq 'end';
        }
        my %seen;
        $fail->("seed $seed: invariant " . join(', ', grep { !$seen{$_}++ } map { $_->{invariant} } @failures) . ' failed');
    }
    $note->(sprintf('model (%s): %d seeds, %d steps, %d faults injected in %.0f s; ops: %s; checks: %s',
                    join(' ', @SERVERS), scalar @seeds, $total_steps, $total_faults, Time::HiRes::time() - $began,
                    join(' ', map { "$_=$total{$_}" } sort grep { !/^check / } keys %total),
                    join(' ', map { my $k = $_; $k =~ s/^check //; (split / /, $k)[0] . "=$total{$_}" }
                              sort grep { /^check / } keys %total)));
}

# How many seeds run_test runs.
sub seed_count {
    my (@default) = @_;
    my @seeds = $ENV{OKEY_MODEL_SEEDS} ? split(/,/, $ENV{OKEY_MODEL_SEEDS}) : @default;
    return scalar @seeds;
}

1;
