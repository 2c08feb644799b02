package OkeyFake;
# Fakes of the upstream services, served by mod_perl on the test server:
#   /oidc/...       an OpenID provider (discovery, authorize, token, JWKS)
#   /openai/v1/...  the OpenAI Admin API (projects, service accounts)
#   /fake/...       control: reset, inspect counters, inject faults, release
#                   held requests
# State lives in one JSON file under a lock so that every child shares it.
# A fault (POST /fake/fault) matches a method and a path, a number of times:
#   status, body, retry_after   answer this instead of doing the work
#   delay, hold                 wait first (see wait_out)
#   drop                        close the connection without an answer
#   done                        do the work first, then answer as above (or,
#                               with drop, not at all); without names a
#                               field left out of the normal answer
#   after                       as done, but the wait comes after the work
# path is a pattern matched against the path alone (no query string); an
# optional query, a pattern too, must match the query string as well (a
# fault on a report's later pages only: path => 'costs', query => 'page=').
# Each tenant logs its service accounts' creations and deletions (created,
# deleted: id, name, project, time) and when each listing of a project began
# (list_starts), for tests that must tell what happened.
#
# Project API keys. Each service account's key is remembered (api_keys: key
# id => project, service_account or user, redacted_value, created_at,
# last_used_at, access), also after the account is deleted (deleted_at), so
# that its usage stays reported. An account seeded without one gets a key
# when first asked about. GET .../projects/{id}/api_keys lists the keys of
# the project's live accounts, and the user-owned keys added to it, in
# creation order; keys whose access is not "active" only with
# owner_project_access=any. redacted_value is the key's first 11 characters,
# "..." and its last 4 (sk-test-abc...wxyz).
#   POST /fake/api_key {tenant?, id?, project?, access?, last_used_at?, user?}
#       id of a key already known: sets the fields given (access
#       "disabled" hides it from listings without owner_project_access=any).
#       Otherwise adds a key owned by a user (owner.type "user") to project;
#       user is merged into a default organization.project.user. Answers
#       the key as listed.
#
# Usage and costs. GET /organization/usage/completions and
# /organization/costs answer pages of time buckets from recorded usage:
# buckets are bucket_width long, aligned to UTC (1d: midnight), from the one
# holding start_time up to end_time (else up to the one holding now), and
# each sums all the usage within it; at most limit of them a page, next_page
# the cursor of the next. Buckets without usage have no results.
#   POST /fake/usage {tenant?, api_key_id or service_account_id, time
#       (default now), model ("gpt-4o-mini"), input_tokens,
#       input_cached_tokens, output_tokens (0), requests (1), cost_usd (0),
#       line_item (the model), batch (false)}
#       records usage of that key (404 unknown) and moves its last_used_at
#       up to time. Kept when the account is deleted, as OpenAI still
#       reports the cost of deleted keys.
#   GET /fake/usage[?tenant=name]  {usage => [records], api_keys => {...}}
# A tenant's page_buckets (merged into its state) caps the buckets of every
# report page below the limit asked for, so that a client must page.
# Counters: openai.list_api_keys, openai.usage_completions, openai.costs.
#
# Admin API keys. An organisation starts with one, its admin_key
# (key_admin_0, made when first needed); GET/POST
# /organization/admin_api_keys and GET/DELETE .../admin_api_keys/{id}
# list, create (expires_in_seconds 1-31536000, the value only in this
# answer), read and delete them. Any live one (not deleted, not expired)
# is accepted as the bearer; redacted_value is as for project keys. A
# deleted key stays in the state with deleted_at, so that tests see every
# value there was.
#   POST /fake/admin_key {tenant?, value, name?, expires_at?}
#       adds one with a value of the test's choosing (a look-alike, an
#       expired key); answers it as listed.
# Counters: openai.list_admin_keys, openai.create_admin_key,
# openai.read_admin_key, openai.delete_admin_key.
use strict;
use warnings;

use Apache2::RequestRec ();
use Apache2::RequestIO ();
use Apache2::Connection ();
use APR::Socket ();
use Apache2::Const -compile => qw(OK CONN_CLOSE);
use APR::Table ();
use Crypt::JWT qw(encode_jwt);
use Crypt::PK::RSA ();
use Crypt::PK::ECC ();
use Digest::SHA qw(sha256);
use Fcntl qw(:flock O_RDWR O_CREAT);
use JSON::PP ();
use MIME::Base64 qw(encode_base64url decode_base64url decode_base64);
use Storable ();
use Time::HiRes ();

my $JSON = JSON::PP->new->canonical->utf8;

sub state_dir { $ENV{OKEY_FAKE_STATE} or die "OKEY_FAKE_STATE is not set" }

sub default_state {
    return {
        counters => {},
        oidc => {
            client_id => $ENV{OKEY_FAKE_CLIENT_ID} // 'test-client',
            client_secret => $ENV{OKEY_FAKE_CLIENT_SECRET} // 'test-secret',
            auth_methods => undef,   # undef: not advertised
            codes => {},
            active_kid => 'rsa-1',
            keys => {},              # kid => { type, private PEM }
            claims => {},            # claim overrides for every token
        },
        tenants => {},               # name => an openai hash of its own
        openai => {
            admin_key => $ENV{OKEY_FAKE_ADMIN_KEY} // 'test-admin-key',
            key_prefix => $ENV{OKEY_FAKE_KEY_PREFIX} // 'sk-test-',
            projects => [],
            accounts => {},          # project id => [ service accounts ]
            api_keys => {},          # key id => its record (see key_object)
            key_order => [],         # key ids in creation order
            account_keys => {},      # service account id => its key id
            usage => [],             # recorded usage (POST /fake/usage)
            next_id => 1,
            faults => [],
            in_flight => 0,
            max_in_flight => 0,
        },
    };
}

# Runs $code->($state) under an exclusive lock and saves what it leaves.
# Storable, not JSON, on disk: a project of a thousand accounts is read and
# written on every request, which JSON::PP makes take a large part of a
# second.
sub with_state {
    my ($code) = @_;
    my $path = state_dir() . '/state.sto';
    sysopen(my $fh, $path, O_RDWR | O_CREAT) or die "open $path: $!";
    binmode $fh;
    flock($fh, LOCK_EX) or die "lock $path: $!";
    my $state = -s $fh ? Storable::fd_retrieve($fh) : default_state();
    my @result = $code->($state);
    seek($fh, 0, 0);
    truncate($fh, 0);
    Storable::nstore_fd($state, $fh) or die "store $path: $!";
    close $fh;
    return wantarray ? @result : $result[0];
}

sub count { my ($state, $name) = @_; $state->{counters}{$name}++ }

sub reply {
    my ($r, $status, $body, %headers) = @_;
    $r->status($status);
    while (my ($k, $v) = each %headers) { $r->err_headers_out->set($k => $v) }
    if (ref $body) {
        $r->content_type('application/json');
        $r->print($JSON->encode($body));
    } elsif (defined $body) {
        $r->content_type('text/plain');
        $r->print($body);
    }
    return Apache2::Const::OK;
}

sub read_body {
    my ($r) = @_;
    my $body = '';
    while ($r->read(my $buf, 8192)) { $body .= $buf }
    return $body;
}

sub parse_form {
    my ($text) = @_;
    my %form;
    for my $pair (split /&/, $text // '') {
        my ($k, $v) = map { my $s = $_ // ''; $s =~ tr/+/ /; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $s }
                      split /=/, $pair, 2;
        push @{ $form{$k} }, $v;
    }
    return \%form;
}

sub one { my ($form, $k) = @_; my $v = $form->{$k}; return ($v && @$v == 1) ? $v->[0] : undef }

sub handler {
    my ($r) = @_;
    my $uri = $r->uri;
    # The module's connections to the fakes come from the same server: held
    # open, they would keep worker-MPM children alive at stop until
    # KeepAliveTimeout. A test that needs them kept alive asks (/fake/keep-alive).
    $r->connection->keepalive(Apache2::Const::CONN_CLOSE) unless -e keep_alive_flag();
    return oidc($r, $1, $2) if $uri =~ m{^/(oidc(?:-post|-short)?)(/.*)$};
    return openai($r, $1 // '', $2) if $uri =~ m{^/openai(?:-(\w+))?/v1(/.*)$};
    return control($r, $1) if $uri =~ m{^/fake(/.*)$};
    return reply($r, 404, "no such fake\n");
}

# --- control -------------------------------------------------------------

sub merge {
    my ($into, $from) = @_;
    for my $k (keys %$from) {
        if (ref $into->{$k} eq 'HASH' && ref $from->{$k} eq 'HASH') { merge($into->{$k}, $from->{$k}) }
        else { $into->{$k} = $from->{$k} }
    }
}

sub keep_alive_flag { return state_dir() . '/keep-alive' }

sub control {
    my ($r, $path) = @_;
    if ($path eq '/keep-alive') {
        open my $fh, '>', keep_alive_flag() or die 'keep-alive: ' . $!;
        close $fh;
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/reset') {
        unlink keep_alive_flag();
        my $patch = $JSON->decode(read_body($r) || '{}');
        unlink glob(state_dir() . '/release-*');
        with_state(sub {
            my ($state) = @_;
            my $keys = $state->{oidc}{keys};
            %$state = %{ default_state() };
            $state->{oidc}{keys} = $keys;   # keep keys: generating them is slow
            merge($state, $patch);
        });
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/merge') {
        my $patch = $JSON->decode(read_body($r) || '{}');
        with_state(sub { merge($_[0], $patch) });
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/environ') {
        # What a neighbour in this httpd could read of the process environment.
        open my $fh, '<', '/proc/self/environ' or return reply($r, 500, "no environ\n");
        local $/;
        my $environ = <$fh>;
        return reply($r, 200, { environ => [split /\0/, $environ] });
    }
    if ($path eq '/state') {
        return reply($r, 200, with_state(sub { $_[0] }));
    }
    if ($path eq '/fault') {
        my $fault = $JSON->decode(read_body($r));
        my $tenant = delete $fault->{tenant} // '';
        # provider => 1: a fault of the OpenID provider's, else the tenant's.
        my $provider = delete $fault->{provider};
        with_state(sub { push @{ $provider ? ($_[0]{oidc}{faults} ||= []) : org($_[0], $tenant)->{faults} }, $fault });
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/release') {
        # Ends the waits of faults with hold => this name.
        my $name = $r->args // '';
        return reply($r, 400, "bad name\n") unless $name =~ /^\w+$/;
        open my $fh, '>', state_dir() . "/release-$name" or die $!;
        close $fh;
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/seed') {
        # Appends service accounts to a project, as an admin (or an older
        # release) would have made them: {tenant, project, accounts}.
        my $seed = $JSON->decode(read_body($r));
        with_state(sub {
            my $o = org($_[0], $seed->{tenant} // '');
            push @{ $o->{accounts}{ $seed->{project} } }, @{ $seed->{accounts} };
        });
        return reply($r, 200, { ok => JSON::PP::true });
    }
    if ($path eq '/api_key') {
        my $req = $JSON->decode(read_body($r) || '{}');
        my ($status, $doc) = with_state(sub {
            my $o = org($_[0], $req->{tenant} // '');
            if (defined $req->{id} && (my $k = $o->{api_keys}{ $req->{id} })) {
                for my $field (qw(access last_used_at)) { $k->{$field} = $req->{$field} if exists $req->{$field} }
                $k->{user} = { %{ $k->{user} }, %{ $req->{user} } } if $k->{user} && ref $req->{user};
                return (200, key_object($o, $k));
            }
            my $pid = $req->{project} // '';
            return (404, { error => "no such project $pid" }) unless grep { $_->{id} eq $pid } @{ $o->{projects} };
            my $n = $o->{next_id}++;
            my $k = new_key($o, $req->{id} // "key_$n", $pid, time, user => {
                object => 'organization.project.user', id => "user_$n", name => "User $n",
                email => "user$n\@example.com", role => 'owner', added_at => time, %{ $req->{user} || {} } });
            for my $field (qw(access last_used_at)) { $k->{$field} = $req->{$field} if exists $req->{$field} }
            return (200, key_object($o, $k));
        });
        return reply($r, $status, $doc);
    }
    if ($path eq '/usage' && $r->method eq 'GET') {
        my $tenant = one(parse_form($r->args), 'tenant') // '';
        my $doc = with_state(sub { my $o = org($_[0], $tenant); return { usage => $o->{usage}, api_keys => $o->{api_keys} } });
        return reply($r, 200, $doc);
    }
    if ($path eq '/usage') {
        my $req = $JSON->decode(read_body($r) || '{}');
        my ($status, $doc) = with_state(sub { record_usage(org($_[0], $req->{tenant} // ''), $req) });
        return reply($r, $status, $doc);
    }
    if ($path eq '/admin_key') {
        my $req = $JSON->decode(read_body($r) || '{}');
        my $doc = with_state(sub {
            my $o = org($_[0], $req->{tenant} // '');
            return admin_key_object(new_admin_key($o, $req->{value}, $req->{name} // 'Seeded admin key',
                                                  $req->{expires_at}));
        });
        return reply($r, 200, $doc);
    }
    if ($path eq '/rotate') {
        my $kid = $r->args // 'rsa-2';
        with_state(sub { $_[0]{oidc}{active_kid} = $kid });
        return reply($r, 200, { ok => JSON::PP::true });
    }
    return reply($r, 404, "no such control\n");
}

# --- OpenID provider -----------------------------------------------------

# /oidc-post is the same provider advertising and accepting only
# client_secret_post, as some providers do.
sub issuer { my ($r, $prefix) = @_; return 'http://' . $r->headers_in->get('Host') . "/$prefix" }

sub auth_methods {
    my ($s, $prefix) = @_;
    return $prefix eq 'oidc-post' ? ['client_secret_post'] : $s->{oidc}{auth_methods};
}

sub signing_key {
    my ($state, $kid) = @_;
    my $entry = $state->{oidc}{keys}{$kid};
    unless ($entry) {
        my $type = $kid =~ /^ec/ ? 'EC' : 'RSA';
        my $pk = $type eq 'EC' ? Crypt::PK::ECC->new : Crypt::PK::RSA->new;
        $type eq 'EC' ? $pk->generate_key('secp256r1') : $pk->generate_key(256);
        $entry = $state->{oidc}{keys}{$kid} = { type => $type, pem => $pk->export_key_pem('private') };
    }
    my $class = $entry->{type} eq 'EC' ? 'Crypt::PK::ECC' : 'Crypt::PK::RSA';
    return ($class->new(\$entry->{pem}), $entry->{type});
}

sub jwks {
    my ($state) = @_;
    my @keys;
    for my $kid (sort keys %{ $state->{oidc}{keys} }) {
        next unless $kid eq $state->{oidc}{active_kid} || $state->{oidc}{publish_all};
        next if grep { $_ eq $kid } @{ $state->{oidc}{withdrawn} || [] };
        my ($pk, $type) = signing_key($state, $kid);
        my $jwk = $pk->export_key_jwk('public', 1);
        $jwk->{kid} = $kid;
        $jwk->{use} = 'sig';
        $jwk->{alg} = $type eq 'EC' ? 'ES256' : 'RS256';
        push @keys, $jwk;
    }
    return { keys => \@keys };
}

# A fault's wait: delay seconds, or with hold => name until the test
# releases name (at most delay seconds, ten by default).
sub wait_out {
    my ($fault) = @_;
    if (defined $fault->{hold}) {
        my $until = Time::HiRes::time() + ($fault->{delay} // 10);
        my $release = state_dir() . "/release-$fault->{hold}";
        Time::HiRes::sleep(0.05) until -e $release || Time::HiRes::time() >= $until;
    }
    elsif ($fault->{delay}) {
        Time::HiRes::sleep($fault->{delay});
    }
}

sub oidc {
    my ($r, $prefix, $path) = @_;
    if ($path eq '/.well-known/openid-configuration') {
        my $iss = issuer($r, $prefix);
        my ($methods, $fault) = with_state(sub {
            my ($s) = @_;
            count($s, 'oidc.discovery');
            return (auth_methods($s, $prefix), take_fault($s->{oidc}, 'GET', $path));
        });
        if ($fault) {
            wait_out($fault);
            return reply($r, $fault->{status}, $fault->{body} // "injected fault\n") if $fault->{status};
        }
        return reply($r, 200, {
            issuer => $iss,
            authorization_endpoint => "$iss/authorize",
            token_endpoint => "$iss/token",
            jwks_uri => "$iss/jwks",
            response_types_supported => ['code'],
            subject_types_supported => ['public'],
            id_token_signing_alg_values_supported => ['RS256', 'ES256'],
            code_challenge_methods_supported => ['S256'],
            ($methods ? (token_endpoint_auth_methods_supported => $methods) : ()),
        });
    }
    if ($path eq '/jwks') {
        my ($doc, $max_age) = with_state(sub { my ($s) = @_; count($s, 'oidc.jwks'); signing_key($s, $s->{oidc}{active_kid});
                                              return (jwks($s), $s->{oidc}{jwks_max_age}) });
        return reply($r, 200, $doc, defined $max_age ? ('Cache-Control' => "public, max-age=$max_age") : ());
    }
    return authorize($r) if $path eq '/authorize';
    return token($r, $prefix) if $path eq '/token';
    return reply($r, 404, "no such endpoint\n");
}

sub html_escape { my ($t) = @_; $t =~ s/([&<>"'])/'&#' . ord($1) . ';'/ge; return $t }

# Without login_hint, a form that asks for the address to sign in as.
sub sign_in_form {
    my ($r, $q) = @_;
    my $hidden = join '', map { my $v = one($q, $_); defined $v
        ? sprintf('<input type="hidden" name="%s" value="%s">', html_escape($_), html_escape($v)) : '' } grep { $_ ne 'login_hint' } sort keys %$q;
    $r->content_type('text/html; charset=utf-8');
    $r->print(<<"HTML");
<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Demo sign-in</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}
.demo{background:#fff3cd;border:1px solid #e0c36a;padding:.75rem;border-radius:6px}
input[type=email]{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
button{font:inherit;margin-top:.75rem;padding:.4rem 1rem}</style></head><body>
<p class="demo"><strong>Demo mode.</strong> This is a local stand-in for an OpenID provider and
for OpenAI. Nothing here is real: no account is checked and the keys it hands out work nowhere.</p>
<h1>Sign in</h1>
<form method="get" action="authorize">$hidden
<label for="login_hint">E-mail address (any address at example.com is allowed)</label>
<input type="email" id="login_hint" name="login_hint" required placeholder="you\@example.com" autofocus>
<button type="submit">Sign in</button></form></body></html>
HTML
    return Apache2::Const::OK;
}

# Signs in the address in login_hint at once, or asks for one. Test-only
# parameters x_<claim> override claims of the token this code will bring
# (x_email_verified=false).
sub authorize {
    my ($r) = @_;
    my $q = parse_form($r->args);
    # OKEY_FAKE_SIGN_IN_AS signs that address in without the form (screenshots).
    $q->{login_hint} = [$ENV{OKEY_FAKE_SIGN_IN_AS}] if $ENV{OKEY_FAKE_SIGN_IN_AS} && !one($q, 'login_hint');
    return sign_in_form($r, $q) unless defined one($q, 'login_hint') && length one($q, 'login_hint');
    my %p = map { $_ => one($q, $_) } qw(response_type client_id redirect_uri state nonce
                                         code_challenge code_challenge_method scope login_hint);
    my @missing = grep { !defined $p{$_} } qw(response_type client_id redirect_uri state nonce code_challenge);
    return reply($r, 400, "missing @missing\n") if @missing;
    return reply($r, 400, "response_type must be code\n") unless $p{response_type} eq 'code';
    return reply($r, 400, "code_challenge_method must be S256\n") unless ($p{code_challenge_method} // '') eq 'S256';
    return reply($r, 400, "scope must hold openid and email\n") unless ($p{scope} // '') =~ /\bopenid\b/ && $p{scope} =~ /\bemail\b/;
    my %overrides = map { /^x_(.+)$/ ? ($1 => one($q, $_)) : () } keys %$q;
    my $code = encode_base64url(join '', map { chr int rand 256 } 1 .. 24);
    my $ok = with_state(sub {
        my ($s) = @_;
        count($s, 'oidc.authorize');
        return 0 unless $p{client_id} eq $s->{oidc}{client_id};
        $s->{oidc}{codes}{$code} = { %p, overrides => \%overrides, issued => time };
        return 1;
    });
    return reply($r, 400, "unknown client_id\n") unless $ok;
    my $sep = $p{redirect_uri} =~ /\?/ ? '&' : '?';
    my $state = $p{state};
    $state =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    $r->headers_out->set(Location => "$p{redirect_uri}${sep}code=$code&state=$state");
    return reply($r, 302, undef);
}

sub token_error { my ($r, $status, $error) = @_; return reply($r, $status, { error => $error }) }

sub client_auth {
    my ($r, $form, $s, $prefix) = @_;
    my $header = $r->headers_in->get('Authorization') // '';
    my ($id, $secret, $method);
    if ($header =~ /^Basic\s+(\S+)$/) {
        my $pair = decode_base64($1);
        ($id, $secret) = map { my $v = $_; $v =~ tr/+/ /; $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $v } split /:/, $pair, 2;
        $method = 'client_secret_basic';
    } elsif (defined one($form, 'client_secret')) {
        ($id, $secret, $method) = (one($form, 'client_id'), one($form, 'client_secret'), 'client_secret_post');
    }
    my $allowed = auth_methods($s, $prefix) || ['client_secret_basic'];
    return 0 unless $method && grep { $_ eq $method } @$allowed;
    count($s, "oidc.token.$method");
    return defined $id && $id eq $s->{oidc}{client_id} && defined $secret && $secret eq $s->{oidc}{client_secret};
}

sub token {
    my ($r, $prefix) = @_;
    return reply($r, 405, "POST only\n") unless $r->method eq 'POST';
    my $form = parse_form(read_body($r));
    my $iss = issuer($r, $prefix);
    my ($status, $doc) = with_state(sub {
        my ($s) = @_;
        count($s, 'oidc.token');
        return (401, { error => 'invalid_client' }) unless client_auth($r, $form, $s, $prefix);
        return (400, { error => 'unsupported_grant_type' }) unless (one($form, 'grant_type') // '') eq 'authorization_code';
        my $code = one($form, 'code') // '';
        my $grant = $s->{oidc}{codes}{$code};
        return (400, { error => 'invalid_grant' }) unless $grant && !$grant->{used};
        $grant->{used} = 1;
        return (400, { error => 'invalid_grant', error_description => 'redirect_uri' })
            unless (one($form, 'redirect_uri') // '') eq $grant->{redirect_uri};
        my $verifier = one($form, 'code_verifier') // '';
        return (400, { error => 'invalid_grant', error_description => 'PKCE' })
            unless encode_base64url(sha256($verifier)) eq $grant->{code_challenge};
        my $now = time;
        my $email = $grant->{login_hint} // 'nobody@example.com';
        my %claims = (iss => $iss, sub => "sub-$email", aud => $s->{oidc}{client_id},
                      iat => $now, exp => $now + 3600, nonce => $grant->{nonce},
                      email => $email, email_verified => JSON::PP::true,
                      %{ $s->{oidc}{claims} });
        for my $k (keys %{ $grant->{overrides} }) {
            my $v = $grant->{overrides}{$k};
            # x_<claim>_json=<JSON> sets a claim to any JSON value (groups).
            if ($k =~ /^(.+)_json$/) { $claims{$1} = $JSON->decode($v) }
            elsif ($v eq '') { delete $claims{$k} }
            elsif ($v eq 'true' || $v eq 'false') { $claims{$k} = $v eq 'true' ? JSON::PP::true : JSON::PP::false }
            elsif ($v =~ /^now([+-]\d+)$/) { $claims{$k} = $now + $1 }
            else { $claims{$k} = $v }
        }
        my $kid = $s->{oidc}{active_kid};
        my ($pk, $type) = signing_key($s, $kid);
        my $jwt = encode_jwt(payload => $JSON->encode(\%claims), key => $pk,
                             alg => ($type eq 'EC' ? 'ES256' : 'RS256'), extra_headers => { kid => $kid });
        return (200, { access_token => 'at-' . $code, token_type => 'Bearer', expires_in => 3600, id_token => $jwt });
    });
    return reply($r, $status, $doc);
}

# --- OpenAI Admin API ------------------------------------------------------

sub api_error { my ($r, $status, $message) = @_; return reply($r, $status, { error => { message => $message, type => 'invalid_request_error', param => undef, code => undef } }) }

sub page_of {
    my ($items, $q, $loop) = @_;
    # A broken upstream: the first page again and again, always with more.
    return { object => 'list', data => [@$items[0 .. ($#$items < 1 ? $#$items : 1)]],
             first_id => $items->[0]{id}, last_id => ($items->[0] ? $items->[0]{id} : 'x'),
             has_more => JSON::PP::true } if $loop;
    my $limit = one($q, 'limit') // 20;
    my $after = one($q, 'after');
    my $start = 0;
    if (defined $after) {
        my ($i) = grep { $items->[$_]{id} eq $after } 0 .. $#$items;
        $start = defined $i ? $i + 1 : scalar @$items;
    }
    my @data = @$items[$start .. ($start + $limit - 1 < $#$items ? $start + $limit - 1 : $#$items)];
    @data = () if $start > $#$items;
    return { object => 'list', data => \@data,
             first_id => (@data ? $data[0]{id} : undef), last_id => (@data ? $data[-1]{id} : undef),
             has_more => ($start + $limit < @$items ? JSON::PP::true : JSON::PP::false) };
}

# The organisation's Admin keys, its first one made from admin_key.
sub admin_keys {
    my ($o) = @_;
    $o->{admin_keys} ||= [ { id => 'key_admin_0', name => 'Initial admin key', value => $o->{admin_key},
                             created_at => time, expires_at => undef, last_used_at => undef } ];
    # A test may set admin_key again (merge): the first key follows it.
    $_->{value} = $o->{admin_key} for grep { $_->{id} eq 'key_admin_0' } @{ $o->{admin_keys} };
    return $o->{admin_keys};
}

sub new_admin_key {
    my ($o, $value, $name, $expires_at) = @_;
    my $k = { id => 'key_admin_' . $o->{next_id}++, name => $name, value => $value, created_at => time,
              expires_at => $expires_at, last_used_at => undef };
    push @{ admin_keys($o) }, $k;
    return $k;
}

sub admin_key_object {
    my ($k) = @_;
    return { object => 'organization.admin_api_key', id => $k->{id}, name => $k->{name},
             redacted_value => redact($k->{value}), created_at => $k->{created_at},
             expires_at => $k->{expires_at}, last_used_at => $k->{last_used_at},
             owner => { type => 'user', object => 'organization.user', id => 'user_owner',
                        name => 'Owner', created_at => $k->{created_at}, role => 'owner' } };
}

# The live Admin key an Authorization header carries, or undef.
sub bearer_admin_key {
    my ($o, $auth) = @_;
    my ($k) = grep { $auth eq "Bearer $_->{value}" && (!defined $_->{expires_at} || $_->{expires_at} > time) }
              live_admin_keys($o);
    $k->{last_used_at} = time if $k;
    return $k;
}

sub live_admin_keys { my ($o) = @_; return grep { !$_->{deleted_at} } @{ admin_keys($o) } }

sub admin_api_keys {
    my ($s, $tenant, $o, $method, $id, $body, $q) = @_;
    my $keys = [live_admin_keys($o)];
    if (!defined $id && $method eq 'GET') {
        org_count($s, $tenant, 'openai.list_admin_keys');
        return (200, page_of([map { admin_key_object($_) } @$keys], $q));
    }
    if (!defined $id && $method eq 'POST') {
        org_count($s, $tenant, 'openai.create_admin_key');
        my $req = eval { $JSON->decode($body) } || {};
        return (400, 'name is required') unless defined $req->{name} && !ref $req->{name};
        my $ttl = $req->{expires_in_seconds};
        return (400, 'expires_in_seconds must be between 1 and 31536000')
            if defined $ttl && !($ttl =~ /^\d+$/ && $ttl >= 1 && $ttl <= 31536000);
        my $k = new_admin_key($o, 'sk-admin-' . join('', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[rand 62] } 1 .. 48),
                              $req->{name}, defined $ttl ? time + $ttl : undef);
        return (200, { %{ admin_key_object($k) }, value => $k->{value} });
    }
    my ($k) = grep { $_->{id} eq ($id // '') } @$keys;
    return (404, "No such Admin API key $id") unless $k;
    if ($method eq 'GET') {
        org_count($s, $tenant, 'openai.read_admin_key');
        return (200, admin_key_object($k));
    }
    if ($method eq 'DELETE') {
        org_count($s, $tenant, 'openai.delete_admin_key');
        $k->{deleted_at} = time;
        return (200, { id => $id, object => 'organization.admin_api_key.deleted', deleted => JSON::PP::true });
    }
    return (404, "No route $method admin_api_keys");
}

# OpenAI shows a key only by its start and end.
sub redact { my ($value) = @_; return substr($value, 0, 11) . '...' . substr($value, -4) }

sub random_key { my ($o) = @_; return $o->{key_prefix} . join('', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 32) }

# Remembers a new key of project $pid; %owner is service_account => id or
# user => {...}.
sub new_key {
    my ($o, $id, $pid, $created, %owner) = @_;
    my $k = { id => $id, name => 'Secret Key', project => $pid, redacted_value => redact($owner{value} // random_key($o)),
              created_at => $created, last_used_at => undef, access => 'active' };
    $k->{service_account} = $owner{service_account} if $owner{service_account};
    $k->{user} = $owner{user} if $owner{user};
    $o->{api_keys}{$id} = $k;
    push @{ $o->{key_order} }, $id;
    $o->{account_keys}{ $owner{service_account} } = $id if $owner{service_account};
    return $k;
}

# The key of a service account of project $pid: one seeded without a key
# gets one now.
sub account_key {
    my ($o, $pid, $account) = @_;
    my $id = $o->{account_keys}{ $account->{id} };
    return $o->{api_keys}{$id} if defined $id && $o->{api_keys}{$id};
    do { $id = 'key_' . $o->{next_id}++ } while $o->{api_keys}{$id};
    return new_key($o, $id, $pid, $account->{created_at} // time, service_account => $account->{id});
}

# A key as GET .../api_keys lists it.
sub key_object {
    my ($o, $k) = @_;
    my $owner;
    if (defined $k->{service_account}) {
        my ($a) = grep { $_->{id} eq $k->{service_account} } @{ $o->{accounts}{ $k->{project} } || [] };
        $a ||= { id => $k->{service_account} };
        $owner = { type => 'service_account', service_account => {
            id => $a->{id}, name => $a->{name}, created_at => $a->{created_at}, role => $a->{role} } };
    } else {
        $owner = { type => 'user', user => $k->{user} };
    }
    return { object => 'organization.project.api_key', id => $k->{id}, name => $k->{name},
             redacted_value => $k->{redacted_value}, created_at => $k->{created_at},
             last_used_at => $k->{last_used_at}, owner_project_access => $k->{access}, owner => $owner };
}

# The key of service account $sid, wherever it is (or was).
sub key_of_account {
    my ($o, $sid) = @_;
    my $id = $o->{account_keys}{$sid};
    return $o->{api_keys}{$id} if defined $id && $o->{api_keys}{$id};
    for my $pid (sort keys %{ $o->{accounts} }) {
        my ($a) = grep { $_->{id} eq $sid } @{ $o->{accounts}{$pid} };
        return account_key($o, $pid, $a) if $a;
    }
    return undef;
}

sub record_usage {
    my ($o, $req) = @_;
    my $k = defined $req->{api_key_id} ? $o->{api_keys}{ $req->{api_key_id} }
          : defined $req->{service_account_id} ? key_of_account($o, $req->{service_account_id}) : undef;
    return (404, { error => 'no such key' }) unless $k;
    my $model = $req->{model} // 'gpt-4o-mini';
    my $u = { time => 0 + ($req->{time} // time), api_key_id => $k->{id}, project_id => $k->{project},
              service_account_id => $k->{service_account}, user_id => ($k->{user} ? $k->{user}{id} : undef),
              model => $model, line_item => $req->{line_item} // $model, batch => $req->{batch} ? 1 : 0,
              input_tokens => 0 + ($req->{input_tokens} // 0), input_cached_tokens => 0 + ($req->{input_cached_tokens} // 0),
              output_tokens => 0 + ($req->{output_tokens} // 0), requests => 0 + ($req->{requests} // 1),
              cost_usd => 0 + ($req->{cost_usd} // 0) };
    push @{ $o->{usage} }, $u;
    $k->{last_used_at} = $u->{time} if !defined $k->{last_used_at} || $k->{last_used_at} < $u->{time};
    return (200, { ok => JSON::PP::true, usage => $u });
}

my %WIDTH = ('1m' => 60, '1h' => 3600, '1d' => 86400);
# Per report: its limits (default, most) per bucket width, what it groups by.
my %REPORT = (
    costs => { widths => { '1d' => [7, 180] }, group_by => [qw(project_id line_item api_key_id)] },
    usage => { widths => { '1m' => [60, 1440], '1h' => [24, 168], '1d' => [7, 31] },
               group_by => [qw(project_id user_id api_key_id model batch)] },
);

sub page_cursor { my ($kind, $t) = @_; return 'page_' . encode_base64url("$kind:$t") }

# A page of a report's buckets: (status, answer or error message).
sub report {
    my ($o, $q, $kind) = @_;
    my $spec = $REPORT{$kind};
    for my $name (qw(start_time end_time bucket_width limit page)) {
        return (400, "$name given more than once") if $q->{$name} && @{ $q->{$name} } > 1;
    }
    my $start = one($q, 'start_time');
    return (400, 'start_time is required') unless defined $start;
    return (400, "Invalid start_time: $start") unless $start =~ /^\d+$/;
    my $end = one($q, 'end_time');
    return (400, "Invalid end_time: $end") if defined $end && !($end =~ /^\d+$/ && $end > $start);
    my $bw = one($q, 'bucket_width') // '1d';
    my $bounds = $spec->{widths}{$bw} or return (400, "Invalid bucket_width: $bw");
    my $limit = one($q, 'limit') // $bounds->[0];
    return (400, "Invalid limit for bucket_width $bw: $limit")
        unless $limit =~ /^\d+$/ && $limit >= 1 && $limit <= $bounds->[1];
    # A tenant's page_buckets: fewer buckets a page than asked, as OpenAI may send.
    $limit = $o->{page_buckets} if $o->{page_buckets} && $o->{page_buckets} < $limit;
    my (@group, %seen);
    for my $g (@{ $q->{group_by} || [] }) {
        return (400, "Invalid group_by: $g") unless grep { $_ eq $g } @{ $spec->{group_by} };
        push @group, $g unless $seen{$g}++;
    }
    my %filter;
    for my $name (qw(project_ids api_key_ids)) {
        $filter{$name} = { map { $_ => 1 } @{ $q->{$name} } } if $q->{$name};
    }
    my $width = $WIDTH{$bw};
    my $first = $start - $start % $width;
    $end //= time - time % $width + $width;
    my $from = $first;
    if (defined(my $page = one($q, 'page'))) {
        my ($k, $t) = $page =~ /^page_([\w-]+)$/ ? (decode_base64url($1) =~ /^(\w+):(\d+)$/) : ();
        return (400, "Invalid page: $page")
            unless defined $t && $k eq $kind && $t >= $first && $t < $end && ($t - $first) % $width == 0;
        $from = $t;
    }
    my @buckets;
    for (my $t = $from; $t < $end && @buckets < $limit; $t += $width) {
        push @buckets, { object => 'bucket', start_time => 0 + $t, end_time => $t + $width,
                         results => bucket_results($o, $kind, $t, $t + $width, \@group, \%filter) };
    }
    my $next = $from + @buckets * $width;
    return (200, { object => 'page', data => \@buckets,
                   has_more => ($next < $end ? JSON::PP::true : JSON::PP::false),
                   next_page => ($next < $end ? page_cursor($kind, $next) : undef) });
}

# One bucket's results: the usage within [from, to) that passes the
# filters, summed per value of what it is grouped by.
sub bucket_results {
    my ($o, $kind, $from, $to, $group, $filter) = @_;
    my %sums;
    for my $u (@{ $o->{usage} || [] }) {
        next unless $u->{time} >= $from && $u->{time} < $to;
        next if $filter->{project_ids} && !$filter->{project_ids}{ $u->{project_id} };
        next if $filter->{api_key_ids} && !$filter->{api_key_ids}{ $u->{api_key_id} };
        my $id = $JSON->encode([map { $u->{$_} } @$group]);
        my $sum = $sums{$id} ||= { (map { $_ => $u->{$_} } @$group), cost_usd => 0, input_tokens => 0,
                                   input_cached_tokens => 0, output_tokens => 0, requests => 0 };
        $sum->{$_} += $u->{$_} for qw(cost_usd input_tokens input_cached_tokens output_tokens requests);
    }
    my @results;
    for my $id (sort keys %sums) {
        my $sum = $sums{$id};
        my %by = map { $_ => $sum->{$_} } @$group;
        if ($kind eq 'costs') {
            push @results, { object => 'organization.costs.result',
                             amount => { value => 0 + sprintf('%.9f', $sum->{cost_usd}), currency => 'usd' },
                             line_item => $by{line_item}, project_id => $by{project_id}, api_key_id => $by{api_key_id},
                             quantity => undef, quantity_unit => undef };
        } else {
            push @results, { object => 'organization.usage.completions.result',
                             input_tokens => $sum->{input_tokens}, input_cached_tokens => $sum->{input_cached_tokens},
                             output_tokens => $sum->{output_tokens}, num_model_requests => $sum->{requests},
                             project_id => $by{project_id}, user_id => $by{user_id}, api_key_id => $by{api_key_id},
                             model => $by{model},
                             batch => (exists $by{batch} ? ($by{batch} ? JSON::PP::true : JSON::PP::false) : undef) };
        }
    }
    return \@results;
}

# The first fault that matches this request, consumed.
sub take_fault {
    my ($o, $method, $path, $query) = @_;
    my $faults = $o->{faults} || [];
    for my $i (0 .. $#$faults) {
        my $f = $faults->[$i];
        next unless $method eq ($f->{method} // $method) && $path =~ /$f->{path}/;
        next if defined $f->{query} && ($query // '') !~ /$f->{query}/;
        splice(@$faults, $i, 1) if --$f->{times} <= 0;
        return {%$f};
    }
    return undef;
}

# A tenant (/openai-<name>/v1) is an organisation of its own: projects,
# faults and counters apart from the default one's.
sub org {
    my ($s, $tenant) = @_;
    return $s->{openai} unless length $tenant;
    my $o = $s->{tenants}{$tenant} ||= {};
    my $defaults = { %{ default_state()->{openai} }, counters => {} };
    $o->{$_} //= $defaults->{$_} for keys %$defaults;
    return $o;
}

sub org_count {
    my ($s, $tenant, $name) = @_;
    length $tenant ? org($s, $tenant)->{counters}{$name}++ : count($s, $name);
}

sub openai {
    my ($r, $tenant, $path) = @_;
    my $method = $r->method;
    my $body = read_body($r);
    my $fault = with_state(sub {
        my ($s) = @_;
        my $o = org($s, $tenant);
        org_count($s, $tenant, 'openai.requests');
        org_count($s, $tenant, "openai.$method");
        $o->{in_flight}++;
        $o->{max_in_flight} = $o->{in_flight} if $o->{in_flight} > $o->{max_in_flight};
        take_fault($o, $method, $path, $r->args);
    });
    my $result = eval { openai_answer($r, $tenant, $method, $path, $body, $fault) };
    my $error = $@;
    with_state(sub { org($_[0], $tenant)->{in_flight}-- });
    die $error if $error;
    return $result;
}

sub fault_reply {
    my ($r, $fault) = @_;
    $r->err_headers_out->set('Retry-After' => $fault->{retry_after}) if defined $fault->{retry_after};
    $r->status($fault->{status});
    $r->content_type('application/json');
    $r->print($fault->{body} // $JSON->encode({ error => { message => 'injected fault', type => 'server_error' } }));
    return Apache2::Const::OK;
}

# Ends the connection with no answer at all, as a server that fails while
# the request is in hand: shut down, so that httpd's own close stays its.
sub drop_connection {
    my ($r) = @_;
    open(my $socket, '+<&', $r->connection->client_socket->fileno) or die "dup: $!";
    shutdown($socket, 2);
    close $socket;
    $r->connection->keepalive(Apache2::Const::CONN_CLOSE);
    return Apache2::Const::OK;
}

sub openai_answer {
    my ($r, $tenant, $method, $path, $body, $fault) = @_;
    $fault->{done} = 1 if $fault && $fault->{after};
    if ($fault) {
        wait_out($fault) unless $fault->{after};
        return drop_connection($r) if $fault->{drop} && !$fault->{done};
        return fault_reply($r, $fault) if $fault->{status} && !$fault->{done};
    }
    my $q = parse_form($r->args);
    my ($status, $doc) = with_state(sub {
        my ($s) = @_;
        my $auth = $r->headers_in->get('Authorization') // '';
        my $o = org($s, $tenant);
        return (401, 'Incorrect API key provided') unless bearer_admin_key($o, $auth);
        if ($path =~ m{^/organization/admin_api_keys(?:/([^/]+))?$}) {
            return admin_api_keys($s, $tenant, $o, $method, $1, $body, $q);
        }
        if ($path eq '/organization/projects' && $method eq 'GET') {
            org_count($s, $tenant, 'openai.list_projects');
            push @{ $o->{project_list_times} }, Time::HiRes::time();
            my @active = grep { ($_->{status} // 'active') eq 'active' } @{ $o->{projects} };
            return (200, page_of(\@active, $q, $o->{loop_projects}));
        }
        if ($path eq '/organization/projects' && $method eq 'POST') {
            org_count($s, $tenant, 'openai.create_project');
            my $req = eval { $JSON->decode($body) } || {};
            return (400, 'name is required') unless defined $req->{name};
            my $p = { object => 'organization.project', id => 'proj_' . $o->{next_id}++, name => $req->{name},
                      created_at => time, archived_at => undef, status => 'active' };
            push @{ $o->{projects} }, $p;
            return (200, $p);
        }
        if ($path eq '/organization/costs' && $method eq 'GET') {
            org_count($s, $tenant, 'openai.costs');
            return report($o, $q, 'costs');
        }
        if ($path eq '/organization/usage/completions' && $method eq 'GET') {
            org_count($s, $tenant, 'openai.usage_completions');
            return report($o, $q, 'usage');
        }
        if ($path =~ m{^/organization/projects/([^/]+)/api_keys$} && $method eq 'GET') {
            my $pid = $1;
            org_count($s, $tenant, 'openai.list_api_keys');
            my ($project) = grep { $_->{id} eq $pid } @{ $o->{projects} };
            return (404, "No such project $pid") unless $project;
            my $limit = one($q, 'limit');
            return (400, "Invalid limit: $limit") if defined $limit && !($limit =~ /^\d+$/ && $limit >= 1 && $limit <= 100);
            my %live = map { $_->{id} => 1 } @{ $o->{accounts}{$pid} || [] };
            account_key($o, $pid, $_) for @{ $o->{accounts}{$pid} || [] };
            my $any = (one($q, 'owner_project_access') // '') eq 'any';
            my @keys = grep { $_->{project} eq $pid && !$_->{deleted_at}
                              && (!defined $_->{service_account} || $live{ $_->{service_account} })
                              && ($any || ($_->{access} // 'active') eq 'active') }
                       map { $o->{api_keys}{$_} } @{ $o->{key_order} };
            return (200, page_of([map { key_object($o, $_) } @keys], $q));
        }
        if ($path =~ m{^/organization/projects/([^/]+)/service_accounts(?:/([^/]+))?$}) {
            my ($pid, $sid) = ($1, $2);
            my ($project) = grep { $_->{id} eq $pid } @{ $o->{projects} };
            return (404, "No such project $pid") unless $project;
            return (400, "Project $pid is archived") if ($project->{status} // 'active') ne 'active';
            my $list = $o->{accounts}{$pid} ||= [];
            if (!defined $sid && $method eq 'GET') {
                org_count($s, $tenant, 'openai.list_service_accounts');
                # When each listing of the project began (its first page).
                push @{ $o->{list_starts}{$pid} }, Time::HiRes::time() unless defined one($q, 'after');
                return (200, page_of($list, $q, $o->{loop_accounts}));
            }
            if (!defined $sid && $method eq 'POST') {
                org_count($s, $tenant, 'openai.create_service_account');
                my $req = eval { $JSON->decode($body) } || {};
                return (400, 'name is required') unless defined $req->{name};
                my $n = $o->{next_id}++;
                my $key = random_key($o);
                my $now = time;
                my $account = { object => 'organization.project.service_account', id => "svc_acct_$n",
                                name => $req->{name}, role => 'member', created_at => $now };
                push @$list, $account;
                new_key($o, "key_$n", $pid, $now, service_account => $account->{id}, value => $key);
                $o->{issued_keys}{$account->{id}} = $key;
                push @{ $o->{created} }, { id => $account->{id}, name => $account->{name}, project => $pid,
                                           time => Time::HiRes::time() };
                return (200, { %$account, api_key => { object => 'organization.project.service_account.api_key',
                                                       value => $key, name => 'Secret Key',
                                                       created_at => $now, id => "key_$n" } });
            }
            if (defined $sid && $method eq 'DELETE') {
                org_count($s, $tenant, 'openai.delete_service_account');
                my ($gone) = grep { $_->{id} eq $sid } @$list;
                return (404, "No such service account $sid") unless $gone;
                @$list = grep { $_->{id} ne $sid } @$list;
                # The key goes with it, but its usage is still reported.
                my $kid = $o->{account_keys}{$sid};
                $o->{api_keys}{$kid}{deleted_at} = time if defined $kid && $o->{api_keys}{$kid};
                push @{ $o->{deleted} }, { id => $sid, name => $gone->{name}, project => $pid,
                                           created_at => $gone->{created_at}, time => Time::HiRes::time() };
                return (200, { object => 'organization.project.service_account.deleted', id => $sid, deleted => JSON::PP::true });
            }
        }
        return (404, "No route $method $path");
    });
    if ($fault && $fault->{done}) {
        wait_out($fault) if $fault->{after};
        return drop_connection($r) if $fault->{drop};
        delete $doc->{ $fault->{without} } if ref $doc && $fault->{without};
        return fault_reply($r, $fault) if $fault->{status};
    }
    return ref $doc ? reply($r, $status, $doc) : api_error($r, $status, $doc);
}

1;
