/* Signing in: openaikey-login starts it, openaikey-callback completes it
 * and issues the key. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <strings.h>

#include <apr_strings.h>

#include "mod_openaikey.h"
#include "src/lifetime.h"
#include "src/policy.h"
#include "src/session.h"
#include "src/query.h"

APLOG_USE_MODULE(openaikey);

/* --- openaikey-login ----------------------------------------------------- */

static void drop_old_state_cookies(request_rec *r, okey_server_conf_t *conf,
                                   apr_time_t now)
{
    int secure = conf->cfg->redirect_is_https;
    apr_array_header_t *cookies =
        okey_state_cookies(r->pool, apr_table_get(r->headers_in, "Cookie"), secure);
    apr_array_header_t *drop =
        okey_state_cookies_to_drop(r->pool, conf->state_key, cookies, now);
    int i;

    for (i = 0; i < drop->nelts; i++) {
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       okey_state_set_cookie(r->pool,
                                             APR_ARRAY_IDX(drop, i, const char *),
                                             NULL, secure));
    }
}

static okey_err_t *login_refused(request_rec *r, const char *user_msg,
                                  const char *log_msg)
{
    okey_err_t *err = okey_err_make(r->pool, HTTP_BAD_REQUEST, user_msg, "%s", log_msg);

    err->denied = OKEY_DENIED_BAD_REQUEST;
    return err;
}

/* Whether the browser says the person opened this address (typed, pasted,
 * or from another program such as openaikey) or came from this site, not
 * from a link or form elsewhere: a page or mail could otherwise have the
 * person sign in and send their key to a listener someone else holds on
 * the same machine. Browsers without Fetch Metadata send no header. */
static int helper_opened(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");

    return !site || !strcmp(site, "none") || !strcmp(site, "same-origin");
}

/* What the login URL asks for: a lifetime (ttl), where to go after signing
 * in (next, which takes only the word keys: never a URL), and the
 * command-line helper to send the key to (cli_port and cli_key). Each at
 * most once; other parameters are ignored. */
static okey_err_t *read_login_args(request_rec *r, const okey_config_t *cfg,
                                   okey_state_t *state)
{
    const char *why = NULL;
    apr_array_header_t *params = okey_query_parse(r->pool, r->args, &why);
    int ttls = 0, nexts = 0, ports = 0, keys = 0;
    const char *ttl = okey_query_get(params, "ttl", &ttls);
    const char *next = okey_query_get(params, "next", &nexts);
    const char *cli_port = okey_query_get(params, "cli_port", &ports);
    const char *cli_key = okey_query_get(params, "cli_key", &keys);
    okey_err_t *err = NULL;

    if (!params) {
        err = login_refused(r, "The sign-in link is malformed.",
                            apr_pstrcat(r->pool, "login query has ", why, NULL));
    }
    else if (ttls > 1 || nexts > 1 || ports > 1 || keys > 1) {
        err = login_refused(r, "The sign-in link repeats a parameter.",
                            "login with a repeated ttl, next, cli_port or cli_key parameter");
    }
    else if (ports != keys || (ports && next)) {
        err = login_refused(r, "The sign-in link from the command-line helper is "
                            "incomplete.", "login with only one of cli_port and cli_key, "
                            "or with next as well");
    }
    else if (ports && !helper_opened(r)) {
        err = login_refused(r, "A key for the command-line helper can only be asked for "
                            "by opening the address openaikey printed or opened, not "
                            "through a link on another site.",
                            apr_pstrcat(r->pool, "login for the command-line helper reached "
                                        "from another site (Sec-Fetch-Site: ",
                                        ap_escape_logitem(r->pool, apr_table_get(
                                            r->headers_in, "Sec-Fetch-Site")), ")", NULL));
    }
    else if (ports && (err = okey_cli_port_parse(r->pool, cli_port, &state->cli_port))) {
        err->denied = OKEY_DENIED_BAD_REQUEST;
    }
    else if (keys && (err = okey_cli_key_parse(r->pool, cli_key, &state->cli_key))) {
        err->denied = OKEY_DENIED_BAD_REQUEST;
    }
    else if (next && (strcmp(next, "keys") || !cfg->session_lifetime)) {
        err = login_refused(r, cfg->session_lifetime
                            ? "The sign-in link names an unknown destination."
                            : "This server does not offer My keys.",
                            "login with a next parameter other than keys, or "
                            "with My keys turned off");
    }
    else if (ttl) {
        err = okey_lifetime_parse(r->pool, ttl, cfg->max_expiration, &state->ttl);
    }
    state->next_keys = next != NULL;
    return err;
}

/* The login's answer: the attempt's state cookie, and a redirect to url. */
static int redirect_to_provider(request_rec *r, okey_server_conf_t *conf,
                                const okey_state_t *state, const char *sealed,
                                const char *url, apr_time_t now)
{
    int secure = conf->cfg->redirect_is_https;

    drop_old_state_cookies(r, conf, now);
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   okey_state_set_cookie(r->pool,
                                         apr_pstrcat(r->pool,
                                                     okey_state_cookie_prefix(secure),
                                                     state->state, NULL),
                                         sealed, secure));
    apr_table_setn(r->headers_out, "Location", url);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    /* No body: httpd's default one repeats the long URL for nobody to read. */
    r->status = HTTP_MOVED_TEMPORARILY;
    ap_set_content_length(r, 0);
    return OK;
}

/* The provider's URL for this attempt: from the cache, else within
 * OpenAIKeyMaxInFlight, since asking the provider may take its timeout. */
static okey_err_t *login_url(request_rec *r, okey_server_conf_t *conf,
                             const okey_state_t *state, const char **url)
{
    const char *challenge = okey_state_challenge(r->pool, conf->state_key, state->verifier);
    okey_oidc_t *oidc = conf->runtime->oidc;
    okey_err_t *err = okey_oidc_login_url(oidc, r->pool, state->state, state->nonce,
                                          challenge, 0, url);

    if (!err && !*url && okey_in_flight_enter(r, conf->runtime, &err)) {
        err = okey_oidc_login_url(oidc, r->pool, state->state, state->nonce, challenge, 1,
                                  url);
        okey_in_flight_leave(conf->runtime);
    }
    return err;
}

int okey_login_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    const okey_config_t *profile = conf ? okey_profile(r, conf, r->per_dir_config, &err)
                                        : NULL;
    okey_state_t *state = NULL;
    const char *sealed = NULL;
    const char *url = NULL;
    apr_time_t now = apr_time_now();

    if (!err) {
        err = okey_state_new(r->pool, now, &state);
    }
    if (!err) {
        err = read_login_args(r, profile, state);
        /* The callback applies this path's settings, never one the browser names. */
        state->profile = profile != conf->cfg ? r->uri : NULL;
    }
    if (!err) {
        err = login_url(r, conf, state, &url);
    }
    if (!err) {
        err = okey_state_seal(r->pool, conf->state_key, state, &sealed);
    }
    if (err && conf && err->endpoint) {
        okey_shm_count_upstream_error(r->server, (okey_endpoint_e)err->endpoint);
    }
    if (err && conf && err->denied) {
        okey_shm_count_denied(r->server, (okey_denied_e)err->denied);
    }
    return err ? okey_send_error(r, err)
               : redirect_to_provider(r, conf, state, sealed, url, now);
}

/* --- openaikey-callback -------------------------------------------------- */

typedef struct {
    const char *code;
    const char *state;
    const char *error;
} callback_args_t;

static okey_err_t *bad_request(request_rec *r, const char *user_msg,
                               const char *log_msg)
{
    okey_err_t *err = okey_err_make(r->pool, HTTP_BAD_REQUEST, user_msg, "%s", log_msg);

    err->denied = OKEY_DENIED_BAD_REQUEST;
    return err;
}

/* The callback's parameters: exactly one code and one state, or one error.
 * Any of them repeated is refused before anything is exchanged. */
static okey_err_t *read_args(request_rec *r, callback_args_t *args)
{
    const char *why = NULL;
    apr_array_header_t *params = okey_query_parse(r->pool, r->args, &why);
    int codes = 0, states = 0, errors = 0;
    okey_err_t *err = NULL;

    args->code = okey_query_get(params, "code", &codes);
    args->state = okey_query_get(params, "state", &states);
    args->error = okey_query_get(params, "error", &errors);
    if (!params) {
        err = bad_request(r, "The sign-in response is malformed. Please start again.",
                          apr_pstrcat(r->pool, "callback query has ", why, NULL));
    }
    else if (codes > 1 || states > 1 || errors > 1) {
        err = bad_request(r, "The sign-in response is malformed. Please start again.",
                          "callback with a repeated code, state or error parameter");
    }
    else if (args->error) {
        const char *error = ap_escape_logitem(r->pool,
                                              apr_pstrndup(r->pool, args->error, 64));

        err = okey_err_make(r->pool, HTTP_BAD_REQUEST,
                            apr_pstrcat(r->pool, "The sign-in provider reported an "
                                        "error (", error, "). Please start again.", NULL),
                            "provider returned error=%s", error);
        err->denied = OKEY_DENIED_PROVIDER_ERROR;
    }
    else if (codes != 1 || states != 1 || !*args->code) {
        err = bad_request(r, "The sign-in response is incomplete. Please start again.",
                          "callback without exactly one code and one state");
    }
    else if (!okey_state_token_valid(args->state)) {
        err = bad_request(r, "The sign-in response is malformed. Please start "
                          "again.", "callback state parameter is malformed");
    }
    return err;
}

/* Marks the state used in the ledger, fleet-wide: a state is good once,
 * for as long as its cookie could be. */
static int state_first_use(request_rec *r, okey_server_conf_t *conf, const char *state_param)
{
    apr_time_t now = apr_time_now();
    int first = 1;

    okey_ledger_mark_once(conf->ledger, apr_pstrcat(r->pool, "state ", state_param, NULL),
                          now, now + apr_time_from_sec(OKEY_STATE_LIFETIME + 60), &first);
    return first;
}

/* The attempt's sign-in state from its cookie, which is cleared in any case. */
static okey_err_t *take_state(request_rec *r, okey_server_conf_t *conf,
                              const char *state_param, okey_state_t **state)
{
    int secure = conf->cfg->redirect_is_https;
    const char *name = apr_pstrcat(r->pool, okey_state_cookie_prefix(secure),
                                   state_param, NULL);
    apr_array_header_t *cookies =
        okey_state_cookies(r->pool, apr_table_get(r->headers_in, "Cookie"), secure);
    const char *sealed = NULL;
    okey_err_t *err = NULL;
    int i;

    for (i = 0; i < cookies->nelts; i++) {
        const okey_state_cookie_t *c = &APR_ARRAY_IDX(cookies, i, okey_state_cookie_t);

        sealed = strcmp(c->name, name) ? sealed : c->value;
    }
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   okey_state_set_cookie(r->pool, name, NULL, secure));
    *state = NULL;
    if (!sealed) {
        err = bad_request(r, "This sign-in has no matching session in this "
                          "browser; it may have been used already or started "
                          "elsewhere. Please start again.",
                          "no state cookie for the callback's state");
        err->denied = OKEY_DENIED_STATE;
    }
    else {
        err = okey_state_open(r->pool, conf->state_key, sealed, apr_time_now(),
                              state);
    }
    if (!err && strcmp((*state)->state, state_param)) {
        err = bad_request(r, "This sign-in link is no longer valid. Please "
                          "start again.", "state cookie belongs to another state");
        err->denied = OKEY_DENIED_STATE;
        *state = NULL;
    }
    if (!err && !state_first_use(r, conf, state_param)) {
        err = bad_request(r, "This sign-in was completed already. Please start again.",
                          "the callback's state was used before");
        err->denied = OKEY_DENIED_STATE;
        *state = NULL;
    }
    return err;
}

static void audit_issued(request_rec *r, const okey_issued_t *issued)
{
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  OKEY_LOGNO(101) "issued key: service_account=%s email=%s "
                  "project=%s (%s) expires=%s", issued->service_account_id,
                  issued->email, issued->project, issued->project_id,
                  okey_iso8601(r->pool, issued->expires));
}

/* Counts what became of a sign-in for /status and /metrics. */
static void count_outcome(request_rec *r, const okey_err_t *err, int issued)
{
    if (issued) {
        okey_shm_count_issue(r->server, 1);
    }
    else if (err && err->denied) {
        okey_shm_count_denied(r->server, (okey_denied_e)err->denied);
    }
    else if (err && err->status >= 500) {
        okey_shm_count_issue(r->server, 0);
    }
    if (err && err->endpoint) {
        okey_shm_count_upstream_error(r->server, (okey_endpoint_e)err->endpoint);
    }
}

/* A creation that got no clear answer may have made an account whose key
 * nobody holds: the reaper looks for it by name once the upstream has had
 * time to finish, and deletes it. */
static void leave_to_reaper(request_rec *r, okey_server_conf_t *conf,
                            const okey_issued_t *unsure)
{
    apr_int64_t wait = 3 * conf->cfg->timeout;

    okey_ledger_suspect_add(conf->ledger, unsure->name, okey_now() + wait);
    okey_runtime_wake_reaper(conf->runtime);
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, OKEY_LOGNO(102) "creation of "
                  "service account %s in project %s got no clear answer; if it was made, "
                  "the reaper deletes it in about %" APR_INT64_T_FMT " s",
                  unsure->name, unsure->project_id, wait);
}

/* The lifetime a sign-in asked for, checked again: the configuration may
 * have changed since its login. */
static okey_err_t *lifetime_of(request_rec *r, const okey_config_t *cfg,
                               const okey_state_t *state, apr_int64_t *lifetime)
{
    okey_err_t *err = NULL;

    *lifetime = state->ttl ? state->ttl : cfg->expiration;
    if (*lifetime > cfg->max_expiration) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST,
                            apr_psprintf(r->pool, "A key can now live at most %s. "
                                         "Please start again.",
                                         okey_lifetime_text(r->pool, cfg->max_expiration)),
                            "ttl from the state cookie exceeds OpenAIKeyMaxExpiration");
        err->denied = OKEY_DENIED_BAD_REQUEST;
    }
    return err;
}

/* The settings a sign-in began with: those of the profile its state names,
 * looked up again as a request for that path would see them. */
static const okey_config_t *sign_in_profile(request_rec *r, okey_server_conf_t *conf,
                                            const okey_state_t *state, okey_err_t **err)
{
    request_rec *sub = state->profile
        ? ap_sub_req_lookup_uri(ap_escape_uri(r->pool, state->profile), r, NULL) : NULL;
    const okey_config_t *profile = conf->cfg;

    *err = NULL;
    if (sub && (sub->status != HTTP_OK || !sub->handler ||
                strcmp(sub->handler, "openaikey-login"))) {
        *err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "The settings this sign-in began "
                             "with no longer exist. Please start again.",
                             "state cookie names profile %s, which no openaikey-login "
                             "serves now", ap_escape_logitem(r->pool, state->profile));
        (*err)->denied = OKEY_DENIED_STATE;
    }
    else if (sub) {
        profile = okey_profile(r, conf, sub->per_dir_config, err);
    }
    if (sub) {
        ap_destroy_sub_req(sub);
    }
    return profile;
}

/* Records issued in the ledger and deletes the address's oldest keys
 * beyond its project's cap; returns those revoked (of okey_owned_key_t), or
 * NULL. */
static apr_array_header_t *apply_cap(request_rec *r, okey_server_conf_t *conf,
                                     const okey_config_t *profile,
                                     const okey_issued_t *issued)
{
    const okey_terms_t *terms = okey_terms_for(r->pool, profile, profile->project);
    apr_array_header_t *revokes = NULL;
    int unanswered = 0;
    okey_err_t *err = okey_keys_cap(conf->runtime->keys, r->pool, issued, terms->cap,
                                    &revokes, &unanswered);

    if (unanswered) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OKEY_LOGNO(110) "the ledger cannot "
                      "answer (no listing has filled it yet, or the projects hold more "
                      "live keys than OpenAIKeyLedgerSize); listing the keys of %s in "
                      "project %s instead", issued->email, issued->project);
    }
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, OKEY_LOGNO(109) "could not list "
                      "the keys of %s to enforce OpenAIKeyMaxKeysPerUser beyond those "
                      "this server recorded (the next reap does): %s", issued->email,
                      err->log_msg);
    }
    return revokes ? okey_report_revokes(r, revokes, issued->email, OKEY_REVOKED_CAP) : NULL;
}

/* What a sign-in made. */
typedef struct {
    okey_oidc_identity_t *identity;
    okey_issued_t *issued;          /* NULL for a sign-in to My keys */
    apr_array_header_t *revoked;    /* by the cap, or NULL */
} sign_in_t;

/* Issues a key to email in the profile's project, unless they are over its
 * budget, audits it and applies the cap; a creation without a clear answer is left to the reaper. Called
 * within the in-flight limit. */
static okey_err_t *issue_key(request_rec *r, okey_server_conf_t *conf,
                             const okey_config_t *profile, const char *email,
                             apr_int64_t lifetime, sign_in_t *done)
{
    const okey_issued_t *unsure = NULL;
    okey_err_t *err = okey_keys_within_budget(conf->runtime->keys, r->pool, profile, email,
                                              okey_now());

    if (!err) {
        err = okey_keys_issue(conf->runtime->keys, r->pool, profile->project, email,
                              okey_now(), lifetime, &done->issued, &unsure);
    }

    if (unsure) {
        leave_to_reaper(r, conf, unsure);
    }
    if (done->issued) {
        audit_issued(r, done->issued);
        okey_shm_count_project(r->server, done->issued->project, 1, 0);
    }
    if (done->issued) {
        done->revoked = apply_cap(r, conf, profile, done->issued);
    }
    return err;
}

/* Exchanges the code, checks the person and issues the key, unless the
 * sign-in was only for My keys. */
static okey_err_t *complete_sign_in(request_rec *r, okey_server_conf_t *conf,
                                    const callback_args_t *args,
                                    const okey_state_t *state, sign_in_t *done)
{
    apr_int64_t lifetime = 0;
    okey_err_t *err = NULL;
    const okey_config_t *profile = sign_in_profile(r, conf, state, &err);

    if (!err) {
        err = lifetime_of(r, profile, state, &lifetime);
    }
    if (!err && okey_in_flight_enter(r, conf->runtime, &err)) {
        err = okey_oidc_sign_in(conf->runtime->oidc, r->pool, args->code,
                                state->verifier, state->nonce, &done->identity);
        if (!err) {
            err = okey_policy_check(r->pool, profile, done->identity);
        }
        if (!err && !state->next_keys) {
            err = issue_key(r, conf, profile, done->identity->email, lifetime, done);
        }
        okey_in_flight_leave(conf->runtime);
    }
    return err;
}

/* The page after a good sign-in: the key, or the way on to My keys. */
static int send_signed_in(request_rec *r, okey_server_conf_t *conf,
                          const okey_state_t *state, const sign_in_t *done)
{
    const okey_session_t *session =
        okey_session_start(r, conf, done->identity->email, done->identity->subject);
    okey_page_links_t links = {session ? okey_keys_url(r) : NULL,
                               session ? okey_session_csrf(r->pool, conf->state_key,
                                                           session) : NULL};
    const char *page_nonce = NULL;
    okey_err_t *err = NULL;
    int status;

    if (state->next_keys && !links.keys_url) {
        err = okey_err_make(r->pool, HTTP_NOT_FOUND, "This server does not offer My "
                            "keys.", "sign-in for My keys, but no " "openaikey-keys "
                            "handler serves /keys");
    }
    else if (!state->next_keys) {
        err = okey_random_b64url(r->pool, 18, &page_nonce);
    }
    if (err) {
        status = okey_send_error(r, err);
    }
    else if (state->next_keys) {
        /* A page, not a redirect: after the provider's cross-site redirect a
         * SameSite=Strict cookie would not go along with one. */
        status = okey_send_html(r, HTTP_OK, okey_page_link(
            r->pool, "Signed in", apr_pstrcat(r->pool, "Signed in as ",
                                              done->identity->email, ".", NULL),
            links.keys_url, "Continue to My keys", 1));
    }
    else {
        status = okey_send_html(r, HTTP_OK, okey_page_key(r->pool, done->issued,
                                                          done->revoked, &links,
                                                          page_nonce));
    }
    return status;
}

/* What the command-line helper is told: the key, or why there is none. */
static const char *helper_result(request_rec *r, const okey_err_t *err,
                                 const okey_issued_t *issued)
{
    json_t *result = err
        ? json_pack("{s:s, s:i, s:I}", "error", okey_error_message(err), "status",
                    err->status, "retry_after", (json_int_t)err->retry_after)
        : json_pack("{s:s, s:I, s:s, s:s, s:s}", "api_key", issued->api_key,
                    "expires_at", (json_int_t)issued->expires, "project", issued->project,
                    "email", issued->email, "service_account_id",
                    issued->service_account_id);

    return okey_json_dump(r->pool, okey_json_own(r->pool, result));
}

/* The end of a sign-in the command-line helper began: its result, sealed
 * to the helper's key, on the way to the helper's listener on this
 * machine's loopback address, at the port the state cookie holds. The
 * browser carries only ciphertext. */
static int send_to_helper(request_rec *r, okey_server_conf_t *conf,
                          const okey_state_t *state, const okey_err_t *err,
                          const sign_in_t *done)
{
    const char *jwe = NULL;
    okey_err_t *seal_err = okey_cli_seal(r->pool, state->cli_key,
                                         helper_result(r, err, done->issued), &jwe);
    const char *url = jwe ? okey_cli_result_url(r->pool, state->cli_port, jwe) : NULL;
    int status;

    if (err) {
        okey_log_error(r, err);
    }
    else {
        okey_session_start(r, conf, done->identity->email, done->identity->subject);
    }
    if (seal_err) {
        status = okey_send_error(r, seal_err);
    }
    else {
        apr_table_setn(r->headers_out, "Location", url);
        status = okey_send_html(r, HTTP_MOVED_TEMPORARILY, okey_page_link(
            r->pool, err ? "Sign-in failed" : "Key sent to your terminal",
            err ? "The reason was sent to your terminal."
                : "The key was sent to the openaikey command in your terminal. "
                  "It is not shown here.", url, "Continue", 0));
    }
    return status;
}

int okey_callback_handler(request_rec *r)
{
    callback_args_t args = {NULL, NULL, NULL};
    okey_err_t *err = okey_method_error(r, "GET");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    okey_err_t *args_err = conf ? read_args(r, &args) : NULL;
    okey_state_t *state = NULL;
    sign_in_t done = {NULL, NULL, NULL};

    /* The state cookie is cleared even when the parameters are refused. */
    if (conf && okey_state_token_valid(args.state)) {
        okey_err_t *state_err = take_state(r, conf, args.state, &state);

        err = args_err ? args_err : state_err;
    }
    err = err ? err : args_err;
    if (!err) {
        err = complete_sign_in(r, conf, &args, state, &done);
    }
    if (conf) {
        count_outcome(r, err, done.issued != NULL);
    }
    return state && state->cli_key ? send_to_helper(r, conf, state, err, &done)
           : err ? okey_send_error(r, err) : send_signed_in(r, conf, state, &done);
}

/* --- openaikey-issue -------------------------------------------------------- */

/* The address another module authenticated: r->user, or the variable
 * OpenAIKeyUserVar names; it must be a plain e-mail address, and one the
 * profile's allow-lists name. */
static okey_err_t *issue_address(request_rec *r, const okey_config_t *cfg,
                                 const char **email)
{
    const char *given = cfg->user_var ? apr_table_get(r->subprocess_env, cfg->user_var)
                                      : r->user;
    const char *source = cfg->user_var ? cfg->user_var : "r->user";
    okey_err_t *err = NULL;

    *email = NULL;
    if (!given || !*given) {
        err = okey_err_make(r->pool, HTTP_FORBIDDEN, "This server could not tell who "
                            "you are: the sign-in in front of it named nobody.",
                            "openaikey-issue: %s is not set (is an authentication "
                            "module in front of it?)", source);
    }
    else if (!okey_policy_address_valid(given)) {
        err = okey_err_make(r->pool, HTTP_FORBIDDEN, "Your sign-in does not name a plain "
                            "e-mail address, so this server cannot give you a key.",
                            "openaikey-issue: %s '%s' is not a valid e-mail address",
                            source, ap_escape_logitem(r->pool,
                                                      apr_pstrndup(r->pool, given, 300)));
    }
    else if (!okey_policy_address_listed(cfg, given)) {
        /* Groups admit only through a token's claim, which is not at hand. */
        err = okey_err_make(r->pool, HTTP_FORBIDDEN, "Your account is not allowed to get "
                            "a key from this server.", "denied %s: neither the address "
                            "nor its domain is allowed%s", given,
                            cfg->allowed_groups->nelts ? " (OpenAIKeyAllowedGroups admits "
                            "only signing in with a groups claim, not openaikey-issue)" : "");
    }
    if (err) {
        err->denied = OKEY_DENIED_NOT_ALLOWED;
    }
    *email = err ? NULL : okey_lower(r->pool, given);
    return err;
}

/* What a POST asks for: a lifetime, from the form (with its token) or a
 * JSON body; or from the query. */
static okey_err_t *read_issue(request_rec *r, okey_server_conf_t *conf,
                              const okey_config_t *profile, const char *email, int json,
                              apr_int64_t *lifetime)
{
    const char *body = NULL;
    const char *why = NULL;
    okey_err_t *err = okey_read_body(r, 4096, &body);
    apr_array_header_t *query = okey_query_parse(r->pool, r->args, &why);
    int count = 0;
    const char *ttl = okey_query_get(query, "ttl", &count);
    json_t *doc = NULL;

    if (!err && json && *body) {
        doc = okey_json_parse(r->pool, body, strlen(body), NULL);
        err = json_is_object(doc) ? NULL
              : okey_err_make(r->pool, HTTP_BAD_REQUEST, "The request body is not a "
                              "JSON object.", "openaikey-issue: malformed JSON body");
    }
    if (!err && doc && json_is_integer(json_object_get(doc, "ttl"))) {
        ttl = apr_off_t_toa(r->pool, json_integer_value(json_object_get(doc, "ttl")));
    }
    else if (!err && doc && json_object_get(doc, "ttl")) {
        ttl = okey_json_str(doc, "ttl") ? okey_json_str(doc, "ttl") : "";
    }
    if (!err && !json) {
        apr_array_header_t *fields = okey_query_parse(r->pool, body, &why);
        int tokens = 0, ttls = 0;
        const char *token = okey_query_get(fields, "csrf", &tokens);
        const char *form_ttl = okey_query_get(fields, "ttl", &ttls);

        ttl = form_ttl ? form_ttl : ttl;
        if (tokens != 1 || ttls > 1 ||
            !okey_session_issue_token_ok(r->pool, conf->state_key, email, token, okey_now())) {
            err = okey_err_make(r->pool, HTTP_FORBIDDEN, "This form has expired or was "
                                "not made for you. Open the page again.",
                                "openaikey-issue: form without a valid token for %s", email);
        }
    }
    if (!err && (!query || count > 1)) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "The request's query is malformed.",
                            "openaikey-issue: malformed or repeated query parameters");
    }
    *lifetime = profile->expiration;
    if (!err && ttl) {
        err = okey_lifetime_parse(r->pool, ttl, profile->max_expiration, lifetime);
    }
    if (err && !err->denied) {
        err->denied = OKEY_DENIED_BAD_REQUEST;
    }
    return err;
}

static okey_err_t *issue_for(request_rec *r, okey_server_conf_t *conf,
                             const okey_config_t *profile, const char *email,
                             apr_int64_t lifetime, sign_in_t *done)
{
    okey_err_t *err = NULL;

    if (okey_in_flight_enter(r, conf->runtime, &err)) {
        err = issue_key(r, conf, profile, email, lifetime, done);
        okey_in_flight_leave(conf->runtime);
    }
    return err;
}

static int send_issued(request_rec *r, const sign_in_t *done, int json)
{
    okey_page_links_t links = {NULL, NULL};
    const okey_issued_t *issued = done->issued;
    const char *nonce = NULL;
    okey_err_t *err = json ? NULL : okey_random_b64url(r->pool, 18, &nonce);
    int status = OK;

    if (json) {
        okey_send_json(r, okey_json_own(r->pool, json_pack(
            "{s:s, s:s, s:s, s:I, s:s}", "api_key", issued->api_key, "service_account_id",
            issued->service_account_id, "project", issued->project, "expires_at",
            (json_int_t)issued->expires, "email", issued->email)));
    }
    else if (err) {
        status = okey_send_error(r, err);
    }
    else {
        status = okey_send_html(r, HTTP_OK, okey_page_key(r->pool, issued, done->revoked,
                                                          &links, nonce));
    }
    return status;
}

static int send_issue_page(request_rec *r, okey_server_conf_t *conf,
                           const okey_config_t *profile, const char *email)
{
    okey_lifetimes_t lifetimes = {profile->expiration, profile->max_expiration};
    const char *nonce = NULL;
    okey_err_t *err = okey_random_b64url(r->pool, 18, &nonce);

    return err ? okey_send_error(r, err)
               : okey_send_html(r, HTTP_OK, okey_page_issue(
                     r->pool, email, r->uri,
                     okey_session_issue_token(r->pool, conf->state_key, email, okey_now()),
                     &lifetimes, nonce));
}

int okey_issue_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD, POST");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    const okey_config_t *profile = conf ? okey_profile(r, conf, r->per_dir_config, &err)
                                        : NULL;
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    int json = type && !strncasecmp(type, "application/json", 16);
    const char *email = NULL;
    apr_int64_t lifetime = 0;
    sign_in_t done = {NULL, NULL, NULL};
    int posted = r->method_number == M_POST;

    if (!err) {
        err = issue_address(r, profile, &email);
    }
    if (!err && posted) {
        err = read_issue(r, conf, profile, email, json, &lifetime);
    }
    if (!err && posted) {
        err = issue_for(r, conf, profile, email, lifetime, &done);
    }
    if (conf && (posted || err)) {
        count_outcome(r, err, done.issued != NULL);
    }
    return err ? okey_send_error(r, err)
           : posted ? send_issued(r, &done, json) : send_issue_page(r, conf, profile, email);
}
