/* Resolution and validation of the settings of one key server. */
#include "config.h"

#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SECRET_FILE_MAX 65536

const okey_setting_t okey_settings[OKEY_SET_COUNT] = {
    [OKEY_SET_CLIENT_ID] = {"OpenAIKeyClientID", "CLIENT_ID", NULL, NULL, 1},
    [OKEY_SET_CLIENT_SECRET] = {"OpenAIKeyClientSecret", "CLIENT_SECRET", NULL,
                                NULL, 1},
    [OKEY_SET_REDIRECT_URI] = {"OpenAIKeyRedirectURI", "REDIRECT_URI", NULL,
                               NULL, 1},
    [OKEY_SET_ALLOWED_USERS] = {"OpenAIKeyAllowedUsers", "ALLOWED_USERS", NULL,
                                NULL, 0},
    [OKEY_SET_ALLOWED_DOMAINS] = {"OpenAIKeyAllowedDomains", "ALLOWED_DOMAINS",
                                  NULL, NULL, 0},
    [OKEY_SET_MANAGEMENT_KEY] = {"OpenAIKeyManagementKey",
                                 "OPENAI_MANAGEMENT_KEY", NULL, NULL, 1},
    [OKEY_SET_PROJECT] = {"OpenAIKeyProject", "DEFAULT_PROJECT_NAME", NULL,
                          "personal", 0},
    [OKEY_SET_EXPIRATION] = {"OpenAIKeyExpiration", "EXPIRATION", NULL,
                             "86400", 0},
    [OKEY_SET_CLEANUP_INTERVAL] = {"OpenAIKeyCleanupInterval",
                                   "CLEANUP_INTERVAL", NULL, "3600", 0},
    [OKEY_SET_TIMEOUT] = {"OpenAIKeyTimeout", "TIMEOUT", NULL, "10", 0},
    [OKEY_SET_ISSUER] = {"OpenAIKeyIssuer", "OIDC_ISSUER",
                         "GOOGLE_TOKEN_ISSUER_URL",
                         "https://accounts.google.com", 0},
    [OKEY_SET_API_BASE] = {"OpenAIKeyAPIBase", "OPENAI_API_BASE", NULL,
                           "https://api.openai.com/v1", 0},
    [OKEY_SET_PASSPHRASE] = {"OpenAIKeyPassphrase", "OPENAIKEY_PASSPHRASE",
                             NULL, NULL, 0},
    [OKEY_SET_CA_FILE] = {"OpenAIKeyCAFile", "OPENAIKEY_CA_FILE", NULL, NULL, 0},
    [OKEY_SET_REAP_LEGACY] = {"OpenAIKeyReapLegacy", "OPENAIKEY_REAP_LEGACY",
                              NULL, "Off", 0},
};

typedef struct {
    apr_pool_t *pool;
    const okey_raw_config_t *raw;
    okey_getenv_fn *getenv_fn;
    void *env_baton;
    const char *server_name;
    apr_array_header_t *problems;
} resolver_t;

static void add_problem(resolver_t *res, okey_setting_e setting,
                        const char *what)
{
    const okey_setting_t *def = &okey_settings[setting];
    const char *env = def->env_fallback
        ? apr_pstrcat(res->pool, def->env, " or ", def->env_fallback, NULL)
        : def->env;

    APR_ARRAY_PUSH(res->problems, const char *) =
        apr_psprintf(res->pool, "%s (environment %s) in server %s: %s",
                     def->directive, env, res->server_name, what);
}

static const char *lookup_env(resolver_t *res, const char *name)
{
    const char *value = name ? res->getenv_fn(res->env_baton, name) : NULL;

    return (value && *value) ? value : NULL;
}

/* The value of a setting: directive, then environment, then default. */
static const char *raw_value(resolver_t *res, okey_setting_e setting)
{
    const okey_setting_t *def = &okey_settings[setting];
    const char *value = res->raw->value[setting];

    if (!value) {
        value = lookup_env(res, def->env);
    }
    if (!value) {
        value = lookup_env(res, def->env_fallback);
    }
    if (!value) {
        value = def->default_value;
    }
    return value;
}

static const char *read_secret_file(resolver_t *res, okey_setting_e setting,
                                    const char *path)
{
    apr_file_t *file;
    char *buf = apr_palloc(res->pool, SECRET_FILE_MAX + 1);
    apr_size_t len = SECRET_FILE_MAX;
    const char *secret = NULL;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ,
                                    APR_FPROT_OS_DEFAULT, res->pool);

    if (rv == APR_SUCCESS) {
        rv = apr_file_read(file, buf, &len);
        apr_file_close(file);
        if (rv == APR_SUCCESS || rv == APR_EOF) {
            while (len > 0 && apr_isspace(buf[len - 1])) {
                len--;
            }
            buf[len] = '\0';
            secret = len ? buf : NULL;
            if (!secret) {
                add_problem(res, setting,
                            apr_psprintf(res->pool, "file %s is empty", path));
            }
        }
    }
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        char msg[120];
        add_problem(res, setting,
                    apr_psprintf(res->pool, "cannot read file %s: %s", path,
                                 apr_strerror(rv, msg, sizeof(msg))));
    }
    return secret;
}

static const char *resolve_string(resolver_t *res, okey_setting_e setting)
{
    const char *value = raw_value(res, setting);

    if (!value && okey_settings[setting].required) {
        add_problem(res, setting, "required but not set");
    }
    return value;
}

static const char *resolve_secret(resolver_t *res, okey_setting_e setting)
{
    const char *value = resolve_string(res, setting);

    if (value && strncmp(value, "file:", 5) == 0) {
        value = read_secret_file(res, setting, value + 5);
    }
    return value;
}

static apr_int64_t resolve_number(resolver_t *res, okey_setting_e setting,
                                  apr_int64_t min, apr_int64_t max)
{
    const char *value = raw_value(res, setting);
    char *end = NULL;
    long long number;

    errno = 0;
    number = strtoll(value, &end, 10);
    if (errno || end == value || *end || !apr_isdigit(*value)) {
        add_problem(res, setting,
                    apr_psprintf(res->pool, "'%s' is not a whole number of "
                                 "seconds", value));
        number = min;
    }
    else if (number < min || number > max) {
        add_problem(res, setting,
                    apr_psprintf(res->pool, "%" APR_INT64_T_FMT " is out of "
                                 "range (%" APR_INT64_T_FMT "..%" APR_INT64_T_FMT
                                 ")", (apr_int64_t)number, min, max));
        number = min;
    }
    return number;
}

static int is_http_url(const char *url)
{
    const char *host = NULL;

    if (strncasecmp(url, "https://", 8) == 0) {
        host = url + 8;
    }
    else if (strncasecmp(url, "http://", 7) == 0) {
        host = url + 7;
    }
    return host && *host && *host != '/' && !strpbrk(url, " \t\r\n\"<>#");
}

static const char *resolve_url(resolver_t *res, okey_setting_e setting)
{
    const char *value = resolve_string(res, setting);

    if (value && !is_http_url(value)) {
        add_problem(res, setting,
                    apr_psprintf(res->pool, "'%s' is not an absolute http(s) "
                                 "URL", value));
        value = NULL;
    }
    return value;
}

static int resolve_flag(resolver_t *res, okey_setting_e setting)
{
    const char *value = raw_value(res, setting);
    int flag = 0;

    if (!strcasecmp(value, "on") || !strcasecmp(value, "true") ||
        !strcasecmp(value, "yes") || !strcmp(value, "1")) {
        flag = 1;
    }
    else if (strcasecmp(value, "off") && strcasecmp(value, "false") &&
             strcasecmp(value, "no") && strcmp(value, "0")) {
        add_problem(res, setting,
                    apr_psprintf(res->pool, "'%s' is neither On nor Off",
                                 value));
    }
    return flag;
}

static void resolve_ca_file(resolver_t *res, okey_config_t *cfg)
{
    apr_finfo_t info;

    cfg->ca_file = raw_value(res, OKEY_SET_CA_FILE);
    if (cfg->ca_file &&
        apr_stat(&info, cfg->ca_file, APR_FINFO_TYPE, res->pool) != APR_SUCCESS) {
        add_problem(res, OKEY_SET_CA_FILE,
                    apr_psprintf(res->pool, "cannot read file %s", cfg->ca_file));
    }
}

static void resolve_policy(resolver_t *res, okey_config_t *cfg)
{
    cfg->allowed_users = okey_config_split_list(
        res->pool, raw_value(res, OKEY_SET_ALLOWED_USERS));
    cfg->allowed_domains = okey_config_split_list(
        res->pool, raw_value(res, OKEY_SET_ALLOWED_DOMAINS));
    if (cfg->allowed_users->nelts == 0 && cfg->allowed_domains->nelts == 0) {
        add_problem(res, OKEY_SET_ALLOWED_USERS,
                    "neither allowed users nor allowed domains "
                    "(OpenAIKeyAllowedDomains, ALLOWED_DOMAINS) are set; "
                    "nobody could sign in");
    }
}

int okey_config_wanted(const okey_raw_config_t *raw, okey_getenv_fn *getenv_fn,
                       void *env_baton)
{
    int wanted = 0;
    int i;

    for (i = 0; i < OKEY_SET_COUNT && !wanted; i++) {
        const char *env = getenv_fn(env_baton, okey_settings[i].env);
        wanted = raw->value[i] != NULL ||
                 (okey_settings[i].required && env && *env);
    }
    return wanted;
}

int okey_config_resolve(apr_pool_t *pool, const okey_raw_config_t *raw,
                        okey_getenv_fn *getenv_fn, void *env_baton,
                        const char *server_name, okey_config_t *cfg,
                        apr_array_header_t *problems)
{
    resolver_t res = {pool, raw, getenv_fn, env_baton, server_name, problems};
    int before = problems->nelts;

    memset(cfg, 0, sizeof(*cfg));
    cfg->server_name = server_name;
    cfg->client_id = resolve_string(&res, OKEY_SET_CLIENT_ID);
    cfg->client_secret = resolve_secret(&res, OKEY_SET_CLIENT_SECRET);
    cfg->redirect_uri = resolve_url(&res, OKEY_SET_REDIRECT_URI);
    cfg->redirect_is_https =
        cfg->redirect_uri && strncasecmp(cfg->redirect_uri, "https:", 6) == 0;
    resolve_policy(&res, cfg);
    cfg->management_key = resolve_secret(&res, OKEY_SET_MANAGEMENT_KEY);
    cfg->project = resolve_string(&res, OKEY_SET_PROJECT);
    /* Ranges in seconds: a minute to a year, a second to a week, to 5 min. */
    cfg->expiration = resolve_number(&res, OKEY_SET_EXPIRATION, 60, 31536000);
    cfg->cleanup_interval = resolve_number(&res, OKEY_SET_CLEANUP_INTERVAL, 1, 604800);
    cfg->timeout = resolve_number(&res, OKEY_SET_TIMEOUT, 1, 300);
    cfg->issuer = okey_strip_slashes(pool, resolve_url(&res, OKEY_SET_ISSUER));
    cfg->api_base =
        okey_strip_slashes(pool, resolve_url(&res, OKEY_SET_API_BASE));
    cfg->passphrase = resolve_secret(&res, OKEY_SET_PASSPHRASE);
    resolve_ca_file(&res, cfg);
    cfg->reap_legacy = resolve_flag(&res, OKEY_SET_REAP_LEGACY);
    return problems->nelts - before;
}

apr_array_header_t *okey_config_split_list(apr_pool_t *pool, const char *list)
{
    apr_array_header_t *items = apr_array_make(pool, 4, sizeof(const char *));
    char *copy = apr_pstrdup(pool, list ? list : "");
    char *state = NULL;
    char *item;

    for (item = apr_strtok(copy, ",", &state); item;
         item = apr_strtok(NULL, ",", &state)) {
        char *end;

        while (apr_isspace(*item)) {
            item++;
        }
        end = item + strlen(item);
        while (end > item && apr_isspace(end[-1])) {
            *--end = '\0';
        }
        if (*item) {
            APR_ARRAY_PUSH(items, const char *) = okey_lower(pool, item);
        }
    }
    return items;
}
