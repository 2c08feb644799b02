/* mod_openaikey: hands out temporary OpenAI API keys to people who sign in
 * with an allowed address. This file is the httpd glue: module record,
 * directives, hooks and handlers. The work is done by the library in src/. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"

#include <apr_strings.h>
#include <stdlib.h>

#include "mod_openaikey.h"
#include "src/page.h"
#include "src/policy.h"

APLOG_USE_MODULE(openaikey);

okey_server_conf_t *okey_server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &openaikey_module);
}

/* --- configuration ------------------------------------------------------ */

static void *create_server_conf(apr_pool_t *pool, server_rec *s)
{
    (void)s;
    return apr_pcalloc(pool, sizeof(okey_server_conf_t));
}

static void *merge_server_conf(apr_pool_t *pool, void *base_conf, void *add_conf)
{
    okey_server_conf_t *base = base_conf;
    okey_server_conf_t *add = add_conf;
    okey_server_conf_t *merged = apr_pcalloc(pool, sizeof(*merged));
    int i;

    for (i = 0; i < OKEY_SET_COUNT; i++) {
        merged->raw.value[i] = add->raw.value[i] ? add->raw.value[i]
                                                 : base->raw.value[i];
    }
    return merged;
}

static const char *set_setting(cmd_parms *cmd, void *dir_conf, const char *value)
{
    okey_server_conf_t *conf = okey_server_conf(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    (void)dir_conf;
    if (!err) {
        conf->raw.value[(apr_size_t)cmd->info] = value;
    }
    return err;
}

/* The same order and names as okey_settings in src/config.c. */
static const command_rec okey_cmds[] = {
    AP_INIT_TAKE1("OpenAIKeyClientID", set_setting,
                  (void *)OKEY_SET_CLIENT_ID, RSRC_CONF, "OAuth2 client ID"),
    AP_INIT_TAKE1("OpenAIKeyClientSecret", set_setting,
                  (void *)OKEY_SET_CLIENT_SECRET, RSRC_CONF,
                  "OAuth2 client secret, or file:/path"),
    AP_INIT_TAKE1("OpenAIKeyRedirectURI", set_setting,
                  (void *)OKEY_SET_REDIRECT_URI, RSRC_CONF,
                  "absolute URL served by openaikey-callback"),
    AP_INIT_TAKE1("OpenAIKeyAllowedUsers", set_setting,
                  (void *)OKEY_SET_ALLOWED_USERS, RSRC_CONF,
                  "comma-separated e-mail addresses"),
    AP_INIT_TAKE1("OpenAIKeyAllowedDomains", set_setting,
                  (void *)OKEY_SET_ALLOWED_DOMAINS, RSRC_CONF,
                  "comma-separated domains"),
    AP_INIT_TAKE1("OpenAIKeyManagementKey", set_setting,
                  (void *)OKEY_SET_MANAGEMENT_KEY, RSRC_CONF,
                  "OpenAI Admin API key, or file:/path"),
    AP_INIT_TAKE1("OpenAIKeyProject", set_setting, (void *)OKEY_SET_PROJECT,
                  RSRC_CONF, "project that holds the keys"),
    AP_INIT_TAKE1("OpenAIKeyExpiration", set_setting,
                  (void *)OKEY_SET_EXPIRATION, RSRC_CONF,
                  "key lifetime, seconds"),
    AP_INIT_TAKE1("OpenAIKeyCleanupInterval", set_setting,
                  (void *)OKEY_SET_CLEANUP_INTERVAL, RSRC_CONF,
                  "seconds between reaps"),
    AP_INIT_TAKE1("OpenAIKeyTimeout", set_setting, (void *)OKEY_SET_TIMEOUT,
                  RSRC_CONF, "timeout of each upstream HTTP request, seconds"),
    AP_INIT_TAKE1("OpenAIKeyIssuer", set_setting, (void *)OKEY_SET_ISSUER,
                  RSRC_CONF, "OpenID provider issuer URL"),
    AP_INIT_TAKE1("OpenAIKeyAPIBase", set_setting, (void *)OKEY_SET_API_BASE,
                  RSRC_CONF, "OpenAI API base URL"),
    AP_INIT_TAKE1("OpenAIKeyPassphrase", set_setting,
                  (void *)OKEY_SET_PASSPHRASE, RSRC_CONF,
                  "key for the sign-in state cookie, or file:/path"),
    AP_INIT_TAKE1("OpenAIKeyCAFile", set_setting, (void *)OKEY_SET_CA_FILE,
                  RSRC_CONF, "CA certificates for upstream TLS"),
    AP_INIT_TAKE1("OpenAIKeyReapLegacy", set_setting,
                  (void *)OKEY_SET_REAP_LEGACY, RSRC_CONF,
                  "On to also reap keys named with a bare e-mail address"),
    {NULL}
};

static const char *process_getenv(void *baton, const char *name)
{
    (void)baton;
    return getenv(name);
}

/* How messages name a server: host, port, and where it is defined. */
static const char *server_label(apr_pool_t *pool, server_rec *s)
{
    unsigned port = s->port ? s->port : (s->addrs ? s->addrs->host_port : 0);

    return s->is_virtual
        ? apr_psprintf(pool, "%s:%u (%s:%d)", s->server_hostname, port,
                       s->defn_name ? s->defn_name : "?", s->defn_line_number)
        : apr_psprintf(pool, "%s (main server)", s->server_hostname);
}

/* Resolves every server's settings; one startup line per problem. */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *main_server)
{
    apr_array_header_t *problems = apr_array_make(ptemp, 4, sizeof(const char *));
    server_rec *s;
    int i;

    (void)plog;
    for (s = main_server; s; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);

        conf->cfg = NULL;
        if (okey_config_wanted(&conf->raw, process_getenv, NULL)) {
            conf->cfg = apr_pcalloc(pconf, sizeof(*conf->cfg));
            okey_config_resolve(pconf, &conf->raw, process_getenv, NULL,
                                server_label(pconf, s), conf->cfg, problems);
        }
    }
    for (i = 0; i < problems->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     "mod_openaikey: %s", APR_ARRAY_IDX(problems, i, const char *));
    }
    return problems->nelts ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* Derives each server's state key, once per configuration load. */
static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *main_server)
{
    server_rec *s;
    int status = OK;

    (void)plog;
    (void)ptemp;
    okey_http_global_init();
    for (s = main_server; s && status == OK; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        okey_err_t *err = NULL;

        if (conf->cfg) {
            err = okey_state_key_create(pconf, conf->cfg->passphrase,
                                        &conf->state_key);
        }
        if (err) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, "state key: %s",
                         err->log_msg);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return status == OK ? okey_shared_post_config(pconf, main_server) : status;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    okey_shared_register(pconf);
    return OK;
}

static void log_bridge(void *baton, int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, (server_rec *)baton, "%s", msg);
}

static void child_init(apr_pool_t *pchild, server_rec *main_server)
{
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        okey_runtime_t *rt;
        okey_http_options_t opts = {0, NULL, NULL};

        if (!conf->cfg || !conf->state_key) {
            continue;
        }
        rt = apr_pcalloc(pchild, sizeof(*rt));
        opts.timeout_seconds = (long)conf->cfg->timeout;
        opts.ca_file = conf->cfg->ca_file;
        rt->logger.fn = log_bridge;
        rt->logger.baton = s;
        rt->http = okey_http_create(pchild, &opts);
        rt->oidc = okey_oidc_create(pchild, conf->cfg, rt->http, &rt->logger);
        rt->keys = okey_keys_create(pchild, conf->cfg, rt->http);
        conf->runtime = rt;
    }
    okey_shared_child_init(pchild, main_server);
}

/* --- responses ----------------------------------------------------------- */

static void security_headers(request_rec *r, const char *csp)
{
    apr_table_t *h = r->err_headers_out;

    apr_table_setn(h, "Cache-Control", "no-store");
    apr_table_setn(h, "Pragma", "no-cache");
    apr_table_setn(h, "Referrer-Policy", "no-referrer");
    apr_table_setn(h, "X-Content-Type-Options", "nosniff");
    apr_table_setn(h, "X-Frame-Options", "DENY");
    if (csp) {
        apr_table_setn(h, "Content-Security-Policy", csp);
    }
}

static int send_html(request_rec *r, int status, okey_page_t page)
{
    security_headers(r, page.csp);
    r->status = status;
    ap_set_content_type(r, "text/html; charset=utf-8");
    if (!r->header_only) {
        ap_rputs(page.html, r);
    }
    return OK;
}

static const char *status_title(int status)
{
    const char *title = "Something went wrong";

    switch (status) {
    case HTTP_BAD_REQUEST: title = "Sign-in failed"; break;
    case HTTP_FORBIDDEN: title = "Access denied"; break;
    case HTTP_METHOD_NOT_ALLOWED: title = "Method not allowed"; break;
    case HTTP_BAD_GATEWAY: title = "Upstream service error"; break;
    case HTTP_GATEWAY_TIME_OUT: title = "Upstream service timeout"; break;
    default: break;
    }
    return title;
}

/* Logs the cause and answers the person a page with the error's status. */
static int send_error(request_rec *r, const okey_err_t *err)
{
    int level = err->status >= 500 ? APLOG_ERR : APLOG_NOTICE;
    const char *message = err->user_msg ? err->user_msg
                          : "The server could not complete the request.";

    ap_log_rerror(APLOG_MARK, level, 0, r, "%d: %s", err->status, err->log_msg);
    return send_html(r, err->status,
                     okey_page_error(r->pool, err->status,
                                     status_title(err->status), message));
}

/* NULL when the method is in allow (an Allow header value), else the 405. */
static okey_err_t *method_error(request_rec *r, const char *allow)
{
    char *list = apr_pstrdup(r->pool, allow);
    char *state = NULL;
    char *method;
    int allowed = 0;
    okey_err_t *err = NULL;

    for (method = apr_strtok(list, ", ", &state); method && !allowed;
         method = apr_strtok(NULL, ", ", &state)) {
        allowed = !strcmp(method, r->method);
    }
    if (!allowed) {
        apr_table_setn(r->err_headers_out, "Allow", allow);
        err = okey_err_make(r->pool, HTTP_METHOD_NOT_ALLOWED,
                            "This address does not accept that method.",
                            "method %s not allowed", r->method);
    }
    return err;
}

static okey_server_conf_t *ready_conf(request_rec *r, okey_err_t **err)
{
    okey_server_conf_t *conf = okey_server_conf(r->server);

    *err = NULL;
    if (!conf->cfg || !conf->runtime) {
        *err = okey_err_make(r->pool, HTTP_INTERNAL_SERVER_ERROR, NULL,
                             "handler %s used in server %s, which has no "
                             "mod_openaikey configuration (OpenAIKeyClientID "
                             "and the other required settings)", r->handler,
                             server_label(r->pool, r->server));
        conf = NULL;
    }
    return conf;
}

/* --- openaikey-login ----------------------------------------------------- */

static void drop_old_state_cookies(request_rec *r, okey_server_conf_t *conf,
                                   apr_time_t now)
{
    apr_array_header_t *cookies =
        okey_state_cookies(r->pool, apr_table_get(r->headers_in, "Cookie"));
    apr_array_header_t *drop =
        okey_state_cookies_to_drop(r->pool, conf->state_key, cookies, now);
    int i;

    for (i = 0; i < drop->nelts; i++) {
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       okey_state_set_cookie(r->pool,
                                             APR_ARRAY_IDX(drop, i, const char *),
                                             NULL, conf->cfg->redirect_is_https));
    }
}

static int login_handler(request_rec *r)
{
    okey_err_t *err = method_error(r, "GET, HEAD");
    okey_server_conf_t *conf = err ? NULL : ready_conf(r, &err);
    okey_oidc_provider_t *provider = NULL;
    okey_state_t *state = NULL;
    const char *sealed = NULL;
    apr_time_t now = apr_time_now();

    if (!err) {
        err = okey_oidc_provider(conf->runtime->oidc, r->pool, &provider);
    }
    if (!err) {
        err = okey_state_new(r->pool, now, &state);
    }
    if (!err) {
        err = okey_state_seal(r->pool, conf->state_key, state, &sealed);
    }
    if (err) {
        return send_error(r, err);
    }
    drop_old_state_cookies(r, conf, now);
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   okey_state_set_cookie(
                       r->pool,
                       apr_pstrcat(r->pool, OKEY_STATE_COOKIE_PREFIX, state->state,
                                   NULL),
                       sealed, conf->cfg->redirect_is_https));
    apr_table_setn(r->headers_out, "Location",
                   okey_oidc_authorize_url(r->pool, provider, conf->cfg,
                                           state->state, state->nonce,
                                           okey_state_challenge(r->pool,
                                                                state->verifier)));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    /* No body: httpd's default one repeats the long URL for nobody to read. */
    r->status = HTTP_MOVED_TEMPORARILY;
    ap_set_content_length(r, 0);
    return OK;
}

/* --- openaikey-callback -------------------------------------------------- */

typedef struct {
    const char *code;
    const char *state;
    const char *error;
    int code_count;
    int state_count;
} callback_args_t;

static int collect_arg(void *data, const char *key, const char *value)
{
    callback_args_t *args = data;

    if (!strcmp(key, "code")) {
        args->code = value;
        args->code_count++;
    }
    else if (!strcmp(key, "state")) {
        args->state = value;
        args->state_count++;
    }
    else if (!strcmp(key, "error")) {
        args->error = value;
    }
    return 1;
}

static okey_err_t *bad_request(request_rec *r, const char *user_msg,
                               const char *log_msg)
{
    return okey_err_make(r->pool, HTTP_BAD_REQUEST, user_msg, "%s", log_msg);
}

static okey_err_t *check_args(request_rec *r, const callback_args_t *args)
{
    okey_err_t *err = NULL;

    if (args->error) {
        err = okey_err_make(
            r->pool, HTTP_BAD_REQUEST,
            apr_pstrcat(r->pool, "The sign-in provider reported an error (",
                        ap_escape_logitem(r->pool, args->error),
                        "). Please start again.", NULL),
            "provider returned error=%s", ap_escape_logitem(r->pool, args->error));
    }
    else if (args->code_count != 1 || args->state_count != 1 || !*args->code) {
        err = bad_request(r, "The sign-in response is incomplete or malformed. "
                          "Please start again.",
                          "callback without exactly one code and one state");
    }
    else if (!okey_state_token_valid(args->state)) {
        err = bad_request(r, "The sign-in response is malformed. Please start "
                          "again.", "callback state parameter is malformed");
    }
    return err;
}

/* The attempt's sign-in state from its cookie, which is cleared in any case. */
static okey_err_t *take_state(request_rec *r, okey_server_conf_t *conf,
                              const char *state_param, okey_state_t **state)
{
    const char *name = apr_pstrcat(r->pool, OKEY_STATE_COOKIE_PREFIX, state_param,
                                   NULL);
    apr_array_header_t *cookies =
        okey_state_cookies(r->pool, apr_table_get(r->headers_in, "Cookie"));
    const char *sealed = NULL;
    okey_err_t *err = NULL;
    int i;

    for (i = 0; i < cookies->nelts; i++) {
        const okey_state_cookie_t *c = &APR_ARRAY_IDX(cookies, i, okey_state_cookie_t);

        sealed = strcmp(c->name, name) ? sealed : c->value;
    }
    apr_table_addn(r->err_headers_out, "Set-Cookie",
                   okey_state_set_cookie(r->pool, name, NULL,
                                         conf->cfg->redirect_is_https));
    *state = NULL;
    if (!sealed) {
        err = bad_request(r, "This sign-in has no matching session in this "
                          "browser; it may have been used already or started "
                          "elsewhere. Please start again.",
                          "no state cookie for the callback's state");
    }
    else {
        err = okey_state_open(r->pool, conf->state_key, sealed, apr_time_now(),
                              state);
    }
    if (!err && strcmp((*state)->state, state_param)) {
        err = bad_request(r, "This sign-in link is no longer valid. Please "
                          "start again.", "state cookie belongs to another state");
    }
    return err;
}

static void audit_issued(request_rec *r, const okey_issued_t *issued)
{
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "issued key: service_account=%s email=%s project=%s (%s) "
                  "expires=%s", issued->service_account_id, issued->email,
                  issued->project, issued->project_id,
                  okey_iso8601(r->pool, issued->expires));
}

static int callback_handler(request_rec *r)
{
    callback_args_t args = {NULL, NULL, NULL, 0, 0};
    apr_table_t *query = NULL;
    okey_err_t *err = method_error(r, "GET");
    okey_server_conf_t *conf = err ? NULL : ready_conf(r, &err);
    okey_state_t *state = NULL;
    okey_oidc_identity_t *identity = NULL;
    okey_issued_t *issued = NULL;
    const char *page_nonce = NULL;

    if (!err) {
        ap_args_to_table(r, &query);
        apr_table_do(collect_arg, &args, query, NULL);
        err = check_args(r, &args);
    }
    if (args.state_count == 1 && okey_state_token_valid(args.state) && conf) {
        okey_err_t *state_err = take_state(r, conf, args.state, &state);

        err = err ? err : state_err;
    }
    if (!err) {
        err = okey_oidc_sign_in(conf->runtime->oidc, r->pool, args.code,
                                state->verifier, state->nonce, &identity);
    }
    if (!err) {
        err = okey_policy_check(r->pool, conf->cfg, identity);
    }
    if (!err) {
        err = okey_keys_issue(conf->runtime->keys, r->pool, identity->email,
                              okey_now(), &issued);
    }
    if (!err) {
        err = okey_random_b64url(r->pool, 18, &page_nonce);
    }
    if (conf && (issued || (err && err->status >= 500))) {
        okey_shared_count_issue(r->server, issued != NULL);
    }
    if (err) {
        return send_error(r, err);
    }
    audit_issued(r, issued);
    return send_html(r, HTTP_OK, okey_page_key(r->pool, issued, page_nonce));
}

/* --- openaikey-status and openaikey-cleanup ------------------------------ */

static json_t *last_reap_json(apr_pool_t *pool, const okey_slot_t *slot)
{
    json_t *reap = json_pack("{s:I, s:I, s:I, s:I}", "listed", (json_int_t)slot->last_listed,
                             "deleted", (json_int_t)slot->last_deleted, "failed",
                             (json_int_t)slot->last_failed, "kept",
                             (json_int_t)slot->last_kept);

    json_object_set_new(reap, "start", slot->last_start
                        ? json_string(okey_iso8601(pool, slot->last_start)) : json_null());
    json_object_set_new(reap, "end", slot->last_end
                        ? json_string(okey_iso8601(pool, slot->last_end)) : json_null());
    json_object_set_new(reap, "result",
                        !slot->last_end ? json_null()
                        : json_string(slot->last_ok ? "ok"
                                      : (slot->last_error[0] ? slot->last_error
                                                             : "some deletes failed")));
    json_object_set_new(reap, "running", json_boolean(slot->running));
    return reap;
}

static void send_json(request_rec *r, json_t *doc)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    if (!r->header_only) {
        ap_rvputs(r, okey_json_dump(r->pool, doc), "\n", NULL);
    }
}

static int status_handler(request_rec *r)
{
    okey_err_t *err = method_error(r, "GET, HEAD");
    okey_server_conf_t *conf = err ? NULL : ready_conf(r, &err);
    okey_slot_t slot;
    json_t *doc;

    if (err) {
        return send_error(r, err);
    }
    okey_shared_snapshot(r->server, &slot);
    doc = okey_json_own(r->pool, json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "version", OKEY_VERSION,
        "server", conf->cfg->server_name, "project", conf->cfg->project,
        "keys_issued", (json_int_t)slot.keys_issued, "issue_failures",
        (json_int_t)slot.issue_failures, "reaps", (json_int_t)slot.reaps,
        "keys_reaped", (json_int_t)slot.keys_reaped, "reap_failures",
        (json_int_t)slot.reap_failures, "last_reap", last_reap_json(r->pool, &slot)));
    send_json(r, doc);
    return OK;
}

static int accepts_json(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    return accept && ap_strcasestr(accept, "application/json") != NULL;
}

static int cleanup_handler(request_rec *r)
{
    okey_err_t *err = method_error(r, "GET, POST");
    okey_server_conf_t *conf = err ? NULL : ready_conf(r, &err);
    okey_slot_t slot;

    if (err) {
        return send_error(r, err);
    }
    okey_shared_reap_now(r->server, r->pool, &slot);
    if (accepts_json(r)) {
        send_json(r, okey_json_own(r->pool, last_reap_json(r->pool, &slot)));
    }
    else {
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
        ap_set_content_type(r, "text/plain; charset=utf-8");
        ap_rprintf(r, "reap of project %s: listed %d, deleted %d, failed %d, kept %d%s%s\n",
                   conf->cfg->project, slot.last_listed, slot.last_deleted,
                   slot.last_failed, slot.last_kept, slot.last_error[0] ? "; " : "",
                   slot.last_error);
    }
    return OK;
}

/* --- mapping ------------------------------------------------------------- */

#define HANDLER_PREFIX "openaikey-"
#define NOTE_OURS "openaikey-handler"

/* Whether <Location> config maps this request to one of our handlers. */
static int is_ours(request_rec *r)
{
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);
    const char *handler = NULL;
    const char *err = NULL;

    if (core && core->expr_handler) {
        handler = ap_expr_str_exec(r, core->expr_handler, &err);
    }
    return handler && !err &&
           !strncmp(handler, HANDLER_PREFIX, sizeof(HANDLER_PREFIX) - 1);
}

/* Runs after the <Location> walk; httpd resets the per-directory config
 * before map_to_storage, so the finding is kept in a note. */
static int translate_name(request_rec *r)
{
    if (is_ours(r)) {
        apr_table_setn(r->notes, NOTE_OURS, "1");
    }
    return DECLINED;
}

/* Our handlers serve no file: skip the directory walk (a stat and a
 * .htaccess lookup per path component), as mod_proxy does. */
static int map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, NOTE_OURS) ? OK : DECLINED;
}

static int okey_handler(request_rec *r)
{
    int status = DECLINED;

    if (!r->handler) {
        status = DECLINED;
    }
    else if (!strcmp(r->handler, "openaikey-login")) {
        status = login_handler(r);
    }
    else if (!strcmp(r->handler, "openaikey-callback")) {
        status = callback_handler(r);
    }
    else if (!strcmp(r->handler, "openaikey-status")) {
        status = status_handler(r);
    }
    else if (!strcmp(r->handler, "openaikey-cleanup")) {
        status = cleanup_handler(r);
    }
    return status;
}

static void register_hooks(apr_pool_t *pool)
{
    (void)pool;
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    okey_shared_hooks();
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(okey_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA openaikey_module = {
    STANDARD20_MODULE_STUFF,
    NULL,
    NULL,
    create_server_conf,
    merge_server_conf,
    okey_cmds,
    register_hooks
};
