/* mod_openaikey: hands out temporary OpenAI API keys to people who sign in
 * with an allowed address. This file is the httpd glue's core: module
 * record, directives, configuration checks, hooks, handler dispatch and the
 * response helpers. The work is done by the library in src/. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_mpm.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "mod_openaikey.h"

#define ENV_RETAINED_KEY "mod_openaikey environment"
/* Seconds a refused request is told to wait. */
#define BUSY_RETRY_AFTER "5"

okey_server_conf_t *okey_server_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &openaikey_module);
}

/* --- configuration ------------------------------------------------------ */

static void *create_server_conf(apr_pool_t *pool, server_rec *s)
{
    okey_server_conf_t *conf = apr_pcalloc(pool, sizeof(okey_server_conf_t));

    (void)s;
    conf->slot = -1;
    return conf;
}

static void *merge_server_conf(apr_pool_t *pool, void *base_conf, void *add_conf)
{
    okey_server_conf_t *base = base_conf;
    okey_server_conf_t *add = add_conf;
    okey_server_conf_t *merged = create_server_conf(pool, NULL);
    int i;

    for (i = 0; i < OKEY_SET_COUNT; i++) {
        merged->raw.value[i] = add->raw.value[i] ? add->raw.value[i]
                                                 : base->raw.value[i];
    }
    return merged;
}

static void *create_dir_conf(apr_pool_t *pool, char *path)
{
    okey_dir_conf_t *conf = apr_pcalloc(pool, sizeof(okey_dir_conf_t));

    conf->path = path;
    return conf;
}

/* <Location> settings merge as httpd's do: the inner section's win. */
static void *merge_dir_conf(apr_pool_t *pool, void *base_conf, void *add_conf)
{
    okey_dir_conf_t *base = base_conf;
    okey_dir_conf_t *add = add_conf;
    okey_dir_conf_t *merged = apr_pcalloc(pool, sizeof(okey_dir_conf_t));
    int i;

    merged->path = add->path ? add->path : base->path;
    for (i = 0; i < OKEY_SET_COUNT; i++) {
        merged->raw.value[i] = add->raw.value[i] ? add->raw.value[i] : base->raw.value[i];
        merged->is_profile |= merged->raw.value[i] != NULL;
    }
    return merged;
}

/* A setting in a <Location> (a profile) or for the server. */
static const char *set_value(cmd_parms *cmd, void *dir_conf, const char *value)
{
    okey_setting_e setting = (okey_setting_e)(apr_size_t)cmd->info;
    okey_dir_conf_t *profile = cmd->path ? dir_conf : NULL;
    const char *why = okey_config_check_value(cmd->pool, setting, value);
    const char *err = NULL;

    if (profile && !okey_setting_in_profile(setting)) {
        const char *section = cmd->directive->parent ? cmd->directive->parent->directive
                                                     : "<Location";

        err = apr_pstrcat(cmd->pool, cmd->directive->directive, " is not valid inside <",
                          section + (*section == '<'), ">; set it for the server or "
                          "virtual host", NULL);
    }
    else if (why) {
        err = apr_pstrcat(cmd->pool, cmd->directive->directive, ": ", why, NULL);
    }
    else if (profile) {
        profile->raw.value[setting] = value;
        profile->is_profile = 1;
    }
    else {
        okey_server_conf(cmd->server)->raw.value[setting] = value;
    }
    return err;
}

static const char *set_flag(cmd_parms *cmd, void *dir_conf, int flag)
{
    return set_value(cmd, dir_conf, flag ? "On" : "Off");
}

/* A budget is written as two words, or as one quoted string. */
static const char *set_two_words(cmd_parms *cmd, void *dir_conf, const char *first,
                                 const char *second)
{
    return set_value(cmd, dir_conf,
                     second ? apr_pstrcat(cmd->pool, first, " ", second, NULL) : first);
}

#define OKEY_CMD_FOR_KIND_FLAG(directive, setting, help) \
    AP_INIT_FLAG(directive, set_flag, (void *)setting, RSRC_CONF | ACCESS_CONF, help)
#define OKEY_CMD_FOR_KIND_OTHER(directive, setting, help) \
    AP_INIT_TAKE1(directive, set_value, (void *)setting, RSRC_CONF | ACCESS_CONF, help)
#define OKEY_CMD_FOR_KIND_STRING OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_SECRET OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_URL OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_NUMBER OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_PATH OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_DIR OKEY_CMD_FOR_KIND_OTHER
#define OKEY_CMD_FOR_KIND_BUDGET(directive, setting, help) \
    AP_INIT_TAKE12(directive, set_two_words, (void *)setting, RSRC_CONF | ACCESS_CONF, help)
#define OKEY_CMD_ROW(name, directive, env, env2, def, required, kind, min, max, help) \
    OKEY_CMD_FOR_KIND_##kind(directive, OKEY_SET_##name, help),

static const command_rec okey_cmds[] = {
    OKEY_SETTINGS(OKEY_CMD_ROW)
    {NULL}
};

static void register_hooks(apr_pool_t *pool);

/* The module record, and with it the log's module index
 * (APLOG_USE_MODULE), which every log call below needs: LogLevel
 * openaikey:debug. */
AP_DECLARE_MODULE(openaikey) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_server_conf,
    merge_server_conf,
    okey_cmds,
    register_hooks
};

/* The module's environment variables as httpd's parent found them at its
 * first start. Secrets are then removed from the process environment, where
 * CGI, PHP and PassEnv could read them; later generations read this copy. */
static apr_table_t *module_environment(apr_pool_t *process_pool)
{
    apr_table_t **saved = ap_retained_data_get(ENV_RETAINED_KEY);
    int i;

    if (!saved) {
        saved = ap_retained_data_create(ENV_RETAINED_KEY, sizeof(*saved));
        *saved = apr_table_make(process_pool, OKEY_SET_COUNT * 2);
        for (i = 0; i < OKEY_SET_COUNT; i++) {
            const char *names[2] = {okey_settings[i].env, okey_settings[i].env_fallback};
            int n;

            for (n = 0; n < 2 && names[n]; n++) {
                const char *value = getenv(names[n]);

                if (value) {
                    apr_table_set(*saved, names[n], value);
                }
                if (value && okey_settings[i].kind == OKEY_KIND_SECRET) {
                    /* /proc/<pid>/environ shows the original strings, so
                     * they are wiped before they are unset. */
                    memset((char *)value, 0, strlen(value));
                    unsetenv(names[n]);
                }
            }
        }
    }
    return *saved;
}

static const char *saved_getenv(void *baton, const char *name)
{
    return name ? apr_table_get((apr_table_t *)baton, name) : NULL;
}

static unsigned server_port(server_rec *s)
{
    return s->port ? s->port : (s->addrs ? s->addrs->host_port : 0);
}

/* How /status, /metrics and log lines name a key server. */
static const char *server_name(apr_pool_t *pool, server_rec *s)
{
    return apr_psprintf(pool, "%s:%u", s->server_hostname, server_port(s));
}

/* How startup messages name a server: also where it is defined. */
static const char *server_label(apr_pool_t *pool, server_rec *s)
{
    return s->is_virtual
        ? apr_psprintf(pool, "%s (%s:%d)", server_name(pool, s),
                       s->defn_name ? s->defn_name : "?", s->defn_line_number)
        : apr_psprintf(pool, "%s (main server)", s->server_hostname);
}

/* A virtual host without any of the module's directives shares the main
 * server's configuration object; each key server needs its own. */
static okey_server_conf_t *own_conf(apr_pool_t *pconf, server_rec *s,
                                    server_rec *main_server)
{
    okey_server_conf_t *conf = okey_server_conf(s);

    if (s != main_server && conf == okey_server_conf(main_server)) {
        okey_server_conf_t *copy = create_server_conf(pconf, s);

        copy->raw = conf->raw;
        ap_set_module_config(s->module_config, &openaikey_module, copy);
        conf = copy;
    }
    return conf;
}

static void warn_exposed_files(apr_pool_t *ptemp, apr_hash_t *warned,
                               const okey_raw_config_t *raw, apr_table_t *env)
{
    apr_array_header_t *exposed = okey_config_exposed_files(ptemp, raw, saved_getenv,
                                                            env);
    int i;

    for (i = 0; i < exposed->nelts; i++) {
        const char *line = APR_ARRAY_IDX(exposed, i, const char *);

        if (!apr_hash_get(warned, line, APR_HASH_KEY_STRING)) {
            apr_hash_set(warned, line, APR_HASH_KEY_STRING, line);
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, NULL,
                         OKEY_LOGNO(001) "mod_openaikey: %s", line);
        }
    }
}

/* Each <Location> of s that sets who-gets-which-key settings is a profile:
 * checked like a server; its project's terms, which every issuer into that
 * project must share, are the reaper's and the cap's. */
static void check_profiles(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                           okey_config_t *cfg, apr_array_header_t *problems)
{
    core_server_config *core = ap_get_core_module_config(s->module_config);
    ap_conf_vector_t **sections = (ap_conf_vector_t **)core->sec_url->elts;
    int i;

    cfg->terms = apr_array_make(pconf, 2, sizeof(okey_terms_t *));
    okey_terms_add(pconf, cfg->terms, cfg, cfg->server_name, problems);
    for (i = 0; i < core->sec_url->nelts; i++) {
        okey_dir_conf_t *profile = ap_get_module_config(sections[i], &openaikey_module);
        okey_config_t *resolved;
        const char *where;

        if (!profile || !profile->is_profile) {
            continue;
        }
        resolved = apr_palloc(pconf, sizeof(*resolved));
        where = apr_psprintf(pconf, "%s, <Location %s>", cfg->server_name, profile->path);
        if (!okey_config_profile(pconf, cfg, &profile->raw, where, resolved, problems)) {
            okey_terms_add(pconf, cfg->terms, resolved, where, problems);
        }
    }
    (void)ptemp;
}

const okey_config_t *okey_profile(request_rec *r, okey_server_conf_t *conf,
                                  ap_conf_vector_t *per_dir, okey_err_t **err)
{
    okey_dir_conf_t *profile = per_dir ? ap_get_module_config(per_dir, &openaikey_module)
                                       : NULL;
    const okey_config_t *cfg = conf->cfg;
    apr_array_header_t *problems;
    okey_config_t *made;

    *err = NULL;
    if (profile && profile->is_profile) {
        problems = apr_array_make(r->pool, 1, sizeof(const char *));
        made = apr_palloc(r->pool, sizeof(*made));
        /* Checked at startup: a problem now is a bug, not a configuration. */
        cfg = okey_config_profile(r->pool, conf->cfg, &profile->raw, profile->path, made,
                                  problems) ? NULL : made;
        *err = cfg ? NULL
               : okey_err_make(r->pool, HTTP_INTERNAL_SERVER_ERROR, NULL, "profile %s: %s",
                               profile->path, APR_ARRAY_IDX(problems, 0, const char *));
    }
    if (cfg && !okey_terms_known(conf->cfg->terms, cfg)) {
        *err = okey_err_make(r->pool, HTTP_INTERNAL_SERVER_ERROR, NULL, "the settings at %s "
                             "(project %s) are none that startup checked: a profile set in "
                             "nested <Location> sections or in <If>, <Directory> or <Files> "
                             "is merged per request, and its keys would be judged by other "
                             "rules; set every profile in one <Location>",
                             ap_escape_logitem(r->pool, r->uri), cfg->project);
        cfg = NULL;
    }
    return cfg;
}

/* Key servers of one httpd that issue into one project of one organisation
 * share its terms: each one's reaper judges the others' keys as well. */
static void share_terms(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server,
                        apr_array_header_t *problems)
{
    apr_hash_t *shared = apr_hash_make(ptemp);
    server_rec *s;
    int i;

    for (s = main_server; s; s = s->next) {
        okey_config_t *cfg = okey_server_conf(s)->cfg;

        for (i = 0; cfg && cfg->terms && i < cfg->terms->nelts; i++) {
            okey_terms_t **each = &APR_ARRAY_IDX(cfg->terms, i, okey_terms_t *);
            const char *where = apr_pstrcat(ptemp, cfg->api_base, "\n", cfg->management_key,
                                            "\n", (*each)->project, NULL);
            okey_terms_t *first = apr_hash_get(shared, where, APR_HASH_KEY_STRING);

            if (first) {
                okey_terms_merge(pconf, first, *each, problems);
                *each = first;
            }
            else {
                apr_hash_set(shared, where, APR_HASH_KEY_STRING, *each);
            }
        }
    }
}

/* Resolves every server's settings; one startup line per problem. */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *main_server)
{
    apr_array_header_t *problems = apr_array_make(ptemp, 4, sizeof(const char *));
    apr_table_t *env = module_environment(main_server->process->pool);
    apr_hash_t *warned = apr_hash_make(ptemp);
    server_rec *s;
    int i;

    (void)plog;
    for (s = main_server; s; s = s->next) {
        okey_server_conf_t *conf = own_conf(pconf, s, main_server);

        conf->cfg = NULL;
        if (okey_config_wanted(&conf->raw, saved_getenv, env)) {
            conf->cfg = apr_pcalloc(pconf, sizeof(*conf->cfg));
            okey_config_resolve(pconf, &conf->raw, saved_getenv, env,
                                server_label(ptemp, s), conf->cfg, problems);
            conf->cfg->server_name = server_name(pconf, s);
            warn_exposed_files(ptemp, warned, &conf->raw, env);
            check_profiles(pconf, ptemp, s, conf->cfg, problems);
        }
    }
    share_terms(pconf, ptemp, main_server, problems);
    for (i = 0; i < problems->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL,
                     OKEY_LOGNO(002) "mod_openaikey: %s",
                     APR_ARRAY_IDX(problems, i, const char *));
    }
    return problems->nelts ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

static void log_bridge(void *baton, const char *file, int line, int level,
                       const char *msg)
{
    ap_log_error_(file, line, APLOG_MODULE_INDEX, level, 0, (server_rec *)baton,
                  "%s", msg);
}

static int log_wants(void *baton, int level)
{
    server_rec *s = baton;

    return APLOG_IS_LEVEL(s, level);
}

/* A key server's own share of the parent's random bytes: a cookie one
 * virtual host sealed never opens at another. */
static okey_err_t *own_random_key(apr_pool_t *pool, const unsigned char *random,
                                  const okey_config_t *cfg, okey_state_key_t **key)
{
    const char *who = apr_pstrcat(pool, cfg->server_name, " ", cfg->redirect_uri, NULL);
    apr_size_t who_len = strlen(who);
    unsigned char *input = apr_palloc(pool, OKEY_STATE_KEY_BYTES + who_len);
    unsigned char own[32];
    okey_err_t *err;

    memcpy(input, random, OKEY_STATE_KEY_BYTES);
    memcpy(input + OKEY_STATE_KEY_BYTES, who, who_len);
    okey_sha256(input, OKEY_STATE_KEY_BYTES + who_len, own);
    err = okey_state_key_from_bytes(pool, own, key);
    OPENSSL_cleanse(input, OKEY_STATE_KEY_BYTES);
    OPENSSL_cleanse(own, sizeof(own));
    return err;
}

/* The key of a server's state cookie: derived from its passphrase (once
 * per distinct passphrase: derivation is slow by design), or made from the
 * random bytes kept for the parent's life. */
static okey_err_t *state_key(apr_pool_t *pconf, apr_hash_t *derived,
                             const okey_config_t *cfg, okey_state_key_t **key)
{
    const unsigned char *random = cfg->passphrase ? NULL : okey_shm_random_key();
    okey_err_t *err = NULL;

    *key = cfg->passphrase ? apr_hash_get(derived, cfg->passphrase, APR_HASH_KEY_STRING)
                           : NULL;
    if (!*key && cfg->passphrase) {
        err = okey_state_key_create(pconf, cfg->passphrase, key);
        apr_hash_set(derived, cfg->passphrase, APR_HASH_KEY_STRING, *key);
    }
    else if (!cfg->passphrase) {
        err = random ? own_random_key(pconf, random, cfg, key)
                     : okey_err_make(pconf, 500, NULL, "no random bytes for the key");
    }
    return err;
}

/* Makes each server's state key, once per configuration load. */
static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                       server_rec *main_server)
{
    apr_hash_t *derived = apr_hash_make(ptemp); /* passphrase -> key */
    server_rec *s;
    int status = OK;

    (void)plog;
    okey_http_global_init();
    for (s = main_server; s && status == OK; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        okey_err_t *err = conf->cfg ? state_key(pconf, derived, conf->cfg,
                                                &conf->state_key) : NULL;

        conf->logger.fn = log_bridge;
        conf->logger.wants = log_wants;
        conf->logger.baton = s;

        if (err) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OKEY_LOGNO(003) "state key: %s",
                         err->log_msg);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    status = status == OK ? okey_shm_post_config(pconf, main_server) : status;
    return status == OK ? okey_ledger_post_config(pconf, ptemp, main_server) : status;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    okey_shm_register(pconf);
    okey_ledger_register(pconf);
    return OK;
}

/* Half the server's workers, in all its children. */
static apr_uint32_t default_in_flight(void)
{
    int threads = 1;
    int children = 1;

    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &children);
    threads = threads > 0 ? threads : 1;
    children = children > 0 ? children : 1;
    return threads * children > 2 ? (apr_uint32_t)(threads * children) / 2 : 1;
}

static okey_runtime_t *make_runtime(apr_pool_t *pchild, server_rec *s,
                                    okey_server_conf_t *conf)
{
    okey_runtime_t *rt = apr_pcalloc(pchild, sizeof(*rt));
    okey_http_options_t opts = {0, NULL, NULL};

    opts.timeout_seconds = (long)conf->cfg->timeout;
    opts.ca_file = conf->cfg->ca_file;
    rt->logger.fn = log_bridge;
    rt->logger.wants = log_wants;
    rt->logger.baton = s;
    rt->server = s;
    rt->http = okey_http_create(pchild, &opts);
    rt->oidc = okey_oidc_create(pchild, conf->cfg, rt->http, &rt->logger);
    rt->keys = okey_keys_create(pchild, conf->cfg, rt->http, conf->ledger);
    rt->max_in_flight = conf->cfg->max_in_flight
                        ? (apr_uint32_t)conf->cfg->max_in_flight : default_in_flight();
    return rt;
}

static void child_init(apr_pool_t *pchild, server_rec *main_server)
{
    okey_reaper_thread_t *reaper = NULL;
    apr_status_t rv = APR_SUCCESS;
    server_rec *s;
    int wanted = 0;

    for (s = main_server; s; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);

        conf->runtime = (conf->cfg && conf->state_key && conf->slot >= 0 && conf->ledger)
                        ? make_runtime(pchild, s, conf) : NULL;
        wanted = wanted || conf->runtime;
    }
    if (wanted) {
        rv = okey_shm_child_init(pchild, main_server);
    }
    if (wanted && rv == APR_SUCCESS) {
        rv = okey_ledger_child_init(pchild, main_server);
    }
    if (wanted && rv == APR_SUCCESS) {
        rv = okey_reaper_start(pchild, main_server, &reaper);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, main_server,
                     OKEY_LOGNO(004) "cannot start the reaper in this child; keys "
                     "are reaped by the others");
    }
    /* Request threads' paging ends with the child too. */
    for (s = main_server; s && reaper; s = s->next) {
        okey_runtime_t *rt = okey_server_conf(s)->runtime;

        if (rt) {
            rt->reaper = reaper;
            okey_keys_cancel_with(rt->keys, okey_reaper_stopping(reaper));
        }
    }
}

void okey_runtime_wake_reaper(okey_runtime_t *rt)
{
    if (rt->reaper) {
        okey_reaper_wake(rt->reaper);
    }
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

int okey_send_html(request_rec *r, int status, okey_page_t page)
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
    case HTTP_TOO_MANY_REQUESTS: title = "Please wait a moment"; break;
    case HTTP_SERVICE_UNAVAILABLE: title = "Busy, please try again"; break;
    case HTTP_GATEWAY_TIME_OUT: title = "Upstream service timeout"; break;
    default: break;
    }
    return title;
}

static int send_json_error(request_rec *r, int status, const char *message)
{
    r->status = status;
    okey_send_json(r, okey_json_own(r->pool, json_pack("{s:s}", "error", message)));
    return OK;
}

void okey_log_error(request_rec *r, const okey_err_t *err)
{
    int level = err->status >= 500 ? APLOG_ERR : APLOG_NOTICE;

    ap_log_rerror(APLOG_MARK, level, 0, r, OKEY_LOGNO(010) "%d: %s", err->status,
                  err->log_msg);
}

const char *okey_error_message(const okey_err_t *err)
{
    return err->user_msg ? err->user_msg : "The server could not complete the request.";
}

int okey_send_error(request_rec *r, const okey_err_t *err)
{
    const char *message = okey_error_message(err);

    okey_log_error(r, err);
    if (err->status == HTTP_TOO_MANY_REQUESTS) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_psprintf(r->pool, "%" APR_INT64_T_FMT, err->retry_after));
    }
    else if (err->status == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       err->retry_after > 0
                       ? apr_psprintf(r->pool, "%" APR_INT64_T_FMT, err->retry_after)
                       : BUSY_RETRY_AFTER);
    }
    return okey_accepts_json(r)
           ? send_json_error(r, err->status, message)
           : okey_send_html(r, err->status,
                            okey_page_error(r->pool, err->status,
                                            status_title(err->status), message));
}

void okey_send_json(request_rec *r, json_t *doc)
{
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "application/json");
    if (!r->header_only) {
        ap_rvputs(r, okey_json_dump(r->pool, doc), "\n", NULL);
    }
}

okey_err_t *okey_method_error(request_rec *r, const char *allow)
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

okey_server_conf_t *okey_ready_conf(request_rec *r, okey_err_t **err)
{
    okey_server_conf_t *conf = okey_server_conf(r->server);

    *err = NULL;
    if (!conf->cfg || !conf->runtime) {
        *err = okey_err_make(r->pool, HTTP_INTERNAL_SERVER_ERROR, NULL,
                             "handler %s used in server %s, which has no "
                             "mod_openaikey configuration (OpenAIKeyClientID "
                             "and the other required settings)", r->handler,
                             server_name(r->pool, r->server));
        conf = NULL;
    }
    return conf;
}

/* --- revocations ------------------------------------------------------------- */

void okey_audit_revoked(request_rec *r, const okey_owned_key_t *key, const char *email,
                        okey_revoked_by_e by)
{
    /* An administrator's revoke names who made it. */
    const char *admin = by == OKEY_REVOKED_ADMIN && r->user
                        ? apr_pstrcat(r->pool, " admin=", ap_escape_logitem(r->pool, r->user),
                                      NULL) : "";

    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  OKEY_LOGNO(105) "revoked key: service_account=%s email=%s "
                  "project_id=%s expires=%s by=%s%s", key->service_account_id, email,
                  key->project_id, okey_iso8601(r->pool, key->expires),
                  okey_revoked_names[by], admin);
}

/* Only the keys this request deleted are audited and counted: a key someone
 * else deleted first (404) is gone for the person, but was not revoked here. */
apr_array_header_t *okey_report_revokes(request_rec *r, const apr_array_header_t *revokes,
                                        const char *email, okey_revoked_by_e by)
{
    apr_array_header_t *gone = apr_array_make(r->pool, revokes->nelts + 1,
                                              sizeof(okey_owned_key_t));
    int deleted = 0;
    int i;

    for (i = 0; i < revokes->nelts; i++) {
        const okey_revoke_t *revoke = &APR_ARRAY_IDX(revokes, i, okey_revoke_t);

        if (revoke->outcome == OKEY_DELETE_DONE) {
            okey_audit_revoked(r, &revoke->key, email, by);
            deleted++;
        }
        else if (revoke->outcome == OKEY_DELETE_GONE) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OKEY_LOGNO(111) "service account "
                          "%s of %s was already gone", revoke->key.service_account_id, email);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, OKEY_LOGNO(108) "could not "
                          "revoke service account %s of %s (by %s); it stays until it "
                          "expires or a later attempt", revoke->key.service_account_id,
                          email, okey_revoked_names[by]);
        }
        if (revoke->outcome != OKEY_DELETE_FAILED) {
            APR_ARRAY_PUSH(gone, okey_owned_key_t) = revoke->key;
        }
    }
    okey_shm_count_revoked(r->server, by, deleted);
    return gone;
}

int okey_accepts_json(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    return accept && ap_strcasestr(accept, "application/json") != NULL;
}

okey_err_t *okey_read_body(request_rec *r, apr_size_t max, const char **body)
{
    char *buf = apr_palloc(r->pool, max + 1);
    apr_size_t len = 0;
    long got = 1;
    int rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    okey_err_t *err = NULL;

    if (rc == OK && ap_should_client_block(r)) {
        /* One byte past max tells a body that is too long. */
        while (got > 0 && len <= max) {
            got = ap_get_client_block(r, buf + len, max + 1 - len);
            len += got > 0 ? (apr_size_t)got : 0;
        }
    }
    if (rc != OK || got < 0) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "The request body could not "
                            "be read.", "reading the request body failed");
    }
    else if (len > max) {
        err = okey_err_make(r->pool, HTTP_REQUEST_ENTITY_TOO_LARGE, "The request is "
                            "too large.", "request body over %" APR_SIZE_T_FMT " bytes",
                            max);
    }
    buf[len > max ? max : len] = '\0';
    *body = err ? NULL : buf;
    return err;
}

int okey_in_flight_enter(request_rec *r, okey_runtime_t *rt, okey_err_t **err)
{
    int entered = okey_shm_in_flight_enter(r->server, rt->max_in_flight);

    *err = NULL;
    if (!entered) {
        *err = okey_err_make(r->pool, HTTP_SERVICE_UNAVAILABLE,
                             "This server is handling many sign-ins at the moment. "
                             "Please try again in a few seconds.",
                             "%u requests already wait on upstream services "
                             "(OpenAIKeyMaxInFlight)", rt->max_in_flight);
        (*err)->denied = OKEY_DENIED_BUSY;
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, OKEY_LOGNO(008) "took one of the "
                      "%u places for requests to upstream services", rt->max_in_flight);
    }
    return entered;
}

void okey_in_flight_leave(okey_runtime_t *rt)
{
    okey_shm_in_flight_leave(rt->server);
}

/* --- mapping ------------------------------------------------------------- */

#define HANDLER_PREFIX "openaikey-"
#define NOTE_OURS "openaikey-handler"

typedef struct {
    const char *name;
    int (*handler)(request_rec *r);
} handler_entry_t;

static const handler_entry_t handlers[] = {
    {"openaikey-login", okey_login_handler},
    {"openaikey-callback", okey_callback_handler},
    {"openaikey-cleanup", okey_cleanup_handler},
    {"openaikey-status", okey_status_handler},
    {"openaikey-metrics", okey_metrics_handler},
    {"openaikey-keys", okey_keys_handler},
    {"openaikey-issue", okey_issue_handler},
    {"openaikey-admin", okey_admin_handler},
};

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
    apr_size_t i;

    for (i = 0; r->handler && i < sizeof(handlers) / sizeof(handlers[0]) &&
                status == DECLINED; i++) {
        if (!strcmp(r->handler, handlers[i].name)) {
            status = handlers[i].handler(r);
        }
    }
    return status;
}

static void register_hooks(apr_pool_t *pool)
{
    (void)pool;
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(translate_name, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(okey_handler, NULL, NULL, APR_HOOK_MIDDLE);
    okey_reaper_hooks();
}
