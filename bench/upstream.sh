# Sourced by the benchmarks that sign in: the suite's fakes of the OpenID
# provider and the Admin API in an httpd of their own (outside what is
# measured), a key server's configuration for them, and one sign-in by curl.
# Expects top, work, mods, httpd and user_lines; sets up and base. The Admin
# API may be another fake's: api_base, set before sourcing.

up_port=${BENCH_UPSTREAM_PORT:-18090}
port=${BENCH_PORT:-18091}
up="http://127.0.0.1:$up_port"
base="http://127.0.0.1:$port"
api_base=${api_base:-$up/openai/v1}

# Starts the fakes, as make run's demo serves them; stops them on exit.
start_upstream() {
    mkdir -p "$work/up/logs" "$work/up/state" "$work/logs"
    chmod 777 "$work/up/state" "$work/logs"
    cat >"$work/up/httpd.conf" <<CONF
ServerRoot "$work/up"
ServerName 127.0.0.1
Listen 127.0.0.1:$up_port
PidFile "$work/up/logs/httpd.pid"
ErrorLog "$work/up/logs/error_log"
LogLevel warn
$user_lines
LoadModule mpm_prefork_module $mods/mod_mpm_prefork.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule perl_module $mods/mod_perl.so
StartServers 4
PerlSwitches -I$top/t/lib
PerlSetEnv OKEY_FAKE_STATE "$work/up/state"
PerlSetEnv OKEY_FAKE_CLIENT_ID bench-client
PerlSetEnv OKEY_FAKE_CLIENT_SECRET bench-secret
PerlSetEnv OKEY_FAKE_ADMIN_KEY bench-admin-key
PerlSetEnv OKEY_FAKE_KEY_PREFIX sk-bench-
PerlModule OkeyFake
<LocationMatch "^/(oidc|openai/v1|fake)/">
    SetHandler modperl
    PerlResponseHandler OkeyFake::handler
</LocationMatch>
CONF
    "$httpd" -f "$work/up/httpd.conf" -k start
    trap '"$httpd" -f "$work/up/httpd.conf" -k stop; sleep 1; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$up/oidc/.well-known/openid-configuration" && break
        sleep 0.1
    done
}

# A key server for the fakes, with $1 (MPM and process lines) in front.
write_key_server_conf() {
    cat >"$work/httpd.conf" <<CONF
ServerRoot "$work"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$work/logs/httpd.pid"
ErrorLog "$work/logs/error_log"
Mutex file:$work/logs
DefaultRuntimeDir "$work/logs"
LogLevel warn
$1
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule alias_module $mods/mod_alias.so
LoadModule openaikey_module "$module"
OpenAIKeyClientID bench-client
OpenAIKeyClientSecret bench-secret
OpenAIKeyRedirectURI $base/oauth2/callback
OpenAIKeyAllowedDomains example.com
OpenAIKeyManagementKey bench-admin-key
OpenAIKeyIssuer $up/oidc
OpenAIKeyAPIBase $api_base
OpenAIKeyPassphrase bench
<Location "/login">
    SetHandler openaikey-login
</Location>
<Location "/oauth2/callback">
    SetHandler openaikey-callback
</Location>
Redirect 302 /plain https://example.com/
CONF
}

# One whole sign-in as user $1 of example.com (default bench): login, the
# provider, the callback; fails loudly.
sign_in() {
    local jar="$work/jar" authorize callback page
    rm -f "$jar"
    authorize=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' "$base/login")
    callback=$(curl -s -o /dev/null -w '%{redirect_url}' "$authorize&login_hint=${1:-bench}%40example.com")
    page=$(curl -s -b "$jar" "$callback")
    case "$page" in *"sk-bench-"*) ;; *) echo "a sign-in failed: $page" >&2; exit 1 ;; esac
}
