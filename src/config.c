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

#define OKEY_SETTING_ROW(name, directive, env, env2, def, required, kind, \
                         min, max, help)                                   \
    [OKEY_SET_##name] = {directive, env, env2, def, required, OKEY_KIND_##kind, \
                         min, max},
const okey_setting_t okey_settings[OKEY_SET_COUNT] = {
    OKEY_SETTINGS(OKEY_SETTING_ROW)
};
#undef OKEY_SETTING_ROW

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
        apr_psprintf(res->pool, "%s%s%s%s in server %s: %s", def->directive,
                     env ? " (environment " : "", env ? env : "", env ? ")" : "",
                     res->server_name, what);
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

/* Whether value is a number within the setting's range; *number holds it
 * (the minimum when not), *why says what is wrong. */
static int parse_number(apr_pool_t *pool, const okey_setting_t *def,
                        const char *value, apr_int64_t *number, const char **why)
{
    char *end = NULL;
    long long parsed;

    errno = 0;
    parsed = strtoll(value, &end, 10);
    *why = NULL;
    if (errno || end == value || *end || !apr_isdigit(*value)) {
        *why = apr_psprintf(pool, "'%s' is not a whole number", value);
    }
    else if (parsed < def->min || parsed > def->max) {
        *why = apr_psprintf(pool, "%" APR_INT64_T_FMT " is out of range (%"
                            APR_INT64_T_FMT "..%" APR_INT64_T_FMT ")",
                            (apr_int64_t)parsed, def->min, def->max);
    }
    *number = *why ? def->min : (apr_int64_t)parsed;
    return *why == NULL;
}

static apr_int64_t resolve_number(resolver_t *res, okey_setting_e setting)
{
    const char *value = raw_value(res, setting);
    const char *why = NULL;
    apr_int64_t number = 0;

    if (value && !parse_number(res->pool, &okey_settings[setting], value, &number,
                               &why)) {
        add_problem(res, setting, why);
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

/* 1 for On, 0 for Off, -1 for anything else. */
static int parse_flag(const char *value)
{
    static const char *const on[] = {"on", "true", "yes", "1"};
    static const char *const off[] = {"off", "false", "no", "0"};
    int flag = -1;
    apr_size_t i;

    for (i = 0; i < sizeof(on) / sizeof(on[0]) && flag < 0; i++) {
        flag = !strcasecmp(value, on[i]) ? 1 : (!strcasecmp(value, off[i]) ? 0 : -1);
    }
    return flag;
}

static int resolve_flag(resolver_t *res, okey_setting_e setting)
{
    const char *value = raw_value(res, setting);
    int flag = parse_flag(value);

    if (flag < 0) {
        add_problem(res, setting,
                    apr_psprintf(res->pool, "'%s' is neither On nor Off", value));
    }
    return flag > 0;
}

const char *okey_config_check_value(apr_pool_t *pool, okey_setting_e setting,
                                    const char *value)
{
    const okey_setting_t *def = &okey_settings[setting];
    const char *why = NULL;
    apr_int64_t number;

    switch (def->kind) {
    case OKEY_KIND_NUMBER:
        parse_number(pool, def, value, &number, &why);
        break;
    case OKEY_KIND_URL:
        why = is_http_url(value) ? NULL
              : apr_psprintf(pool, "'%s' is not an absolute http(s) URL", value);
        break;
    case OKEY_KIND_FLAG:
        why = parse_flag(value) >= 0 ? NULL
              : apr_psprintf(pool, "'%s' is neither On nor Off", value);
        break;
    case OKEY_KIND_SECRET:
        why = strcmp(value, "file:") ? NULL : "file: names no file";
        break;
    case OKEY_KIND_DIR:
        why = *value == '/' ? NULL : apr_psprintf(pool, "'%s' is not an absolute path", value);
        break;
    case OKEY_KIND_BUDGET: {
        okey_budget_t budget;

        why = okey_budget_parse(pool, value, &budget);
        break;
    }
    default:
        why = *value ? NULL : "is empty";
        break;
    }
    return why;
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
    cfg->allowed_groups = okey_config_split_list(
        res->pool, raw_value(res, OKEY_SET_ALLOWED_GROUPS));
    if (cfg->allowed_users->nelts == 0 && cfg->allowed_domains->nelts == 0 &&
        cfg->allowed_groups->nelts == 0) {
        add_problem(res, OKEY_SET_ALLOWED_USERS,
                    "neither allowed users, allowed domains "
                    "(OpenAIKeyAllowedDomains, ALLOWED_DOMAINS) nor allowed groups "
                    "(OpenAIKeyAllowedGroups, ALLOWED_GROUPS) are set; "
                    "nobody could sign in");
    }
}

/* Whether a space-separated scope list holds word. */
static int scope_has(const char *scope, const char *word)
{
    apr_size_t len = strlen(word);
    const char *at = scope;
    int found = 0;

    while (!found && (at = strstr(at, word)) != NULL) {
        found = (at == scope || at[-1] == ' ') && (at[len] == ' ' || at[len] == '\0');
        at += len;
    }
    return found;
}

static void resolve_scope(resolver_t *res, okey_config_t *cfg)
{
    cfg->scope = raw_value(res, OKEY_SET_SCOPE);
    cfg->groups_claim = raw_value(res, OKEY_SET_GROUPS_CLAIM);
    if (strspn(cfg->scope, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "0123456789 _-.:/") != strlen(cfg->scope) ||
        !scope_has(cfg->scope, "openid") || !scope_has(cfg->scope, "email")) {
        add_problem(res, OKEY_SET_SCOPE,
                    apr_psprintf(res->pool, "'%s' must list openid and email, separated "
                                 "by spaces", cfg->scope));
    }
}

/* The longest lifetime defaults to the default one and may not be shorter. */
static void resolve_lifetimes(resolver_t *res, okey_config_t *cfg)
{
    int given = raw_value(res, OKEY_SET_MAX_EXPIRATION) != NULL;

    cfg->max_expiration = given ? resolve_number(res, OKEY_SET_MAX_EXPIRATION)
                                : cfg->expiration;
    if (cfg->max_expiration < cfg->expiration) {
        add_problem(res, OKEY_SET_MAX_EXPIRATION,
                    apr_psprintf(res->pool, "%" APR_INT64_T_FMT " is shorter than "
                                 "the default lifetime OpenAIKeyExpiration (%"
                                 APR_INT64_T_FMT ")", cfg->max_expiration,
                                 cfg->expiration));
    }
}

/* The ledger: this server's shared memory, or a Redis that several
 * servers share, whose records only a passphrase they share can sign. */
static void resolve_ledger(resolver_t *res, okey_config_t *cfg)
{
    const char *ledger = raw_value(res, OKEY_SET_LEDGER);
    int redis = !strncmp(ledger, "redis://", 8) || !strncmp(ledger, "redis+unix://", 13);

    cfg->ledger = ledger;
    cfg->ledger_password = resolve_secret(res, OKEY_SET_LEDGER_PASSWORD);
    cfg->ledger_size = resolve_number(res, OKEY_SET_LEDGER_SIZE);
    if (strcmp(ledger, "shm") && !redis) {
        add_problem(res, OKEY_SET_LEDGER, "must be shm, or a redis:// or redis+unix:// URL");
    }
    if (redis && !cfg->passphrase) {
        add_problem(res, OKEY_SET_LEDGER, "a Redis ledger needs OpenAIKeyPassphrase, the "
                    "same on every server that shares it: its records are signed with a "
                    "key derived from it");
    }
}

/* A budget as written, or none; a bad one is a problem. */
static void resolve_budget(resolver_t *res, okey_budget_t *budget)
{
    const char *text = raw_value(res, OKEY_SET_BUDGET);
    const char *why = text ? okey_budget_parse(res->pool, text, budget) : NULL;

    if (!text) {
        memset(budget, 0, sizeof(*budget));
    }
    if (why) {
        add_problem(res, OKEY_SET_BUDGET, why);
    }
}

static void resolve_spend(resolver_t *res, okey_config_t *cfg)
{
    const char *dir = raw_value(res, OKEY_SET_STATE_DIR);
    const char *why = okey_config_check_value(res->pool, OKEY_SET_STATE_DIR, dir);

    cfg->state_dir = dir;
    if (why) {
        add_problem(res, OKEY_SET_STATE_DIR, why);
    }
    cfg->usage_interval = resolve_number(res, OKEY_SET_USAGE_INTERVAL);
    resolve_budget(res, &cfg->budget);
    cfg->revoke_over_budget = resolve_flag(res, OKEY_SET_REVOKE_OVER_BUDGET);
    if ((cfg->budget.set || cfg->revoke_over_budget) && !cfg->usage_interval) {
        add_problem(res, cfg->budget.set ? OKEY_SET_BUDGET : OKEY_SET_REVOKE_OVER_BUDGET,
                    "needs usage polls, which OpenAIKeyUsageInterval 0 turns off");
    }
}

int okey_config_wanted(const okey_raw_config_t *raw, okey_getenv_fn *getenv_fn,
                       void *env_baton)
{
    int wanted = 0;
    int i;

    for (i = 0; i < OKEY_SET_COUNT && !wanted; i++) {
        const char *env = okey_settings[i].env
                          ? getenv_fn(env_baton, okey_settings[i].env) : NULL;
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
    cfg->expiration = resolve_number(&res, OKEY_SET_EXPIRATION);
    cfg->cleanup_interval = resolve_number(&res, OKEY_SET_CLEANUP_INTERVAL);
    cfg->timeout = resolve_number(&res, OKEY_SET_TIMEOUT);
    cfg->issuer = okey_strip_slashes(pool, resolve_url(&res, OKEY_SET_ISSUER));
    cfg->api_base =
        okey_strip_slashes(pool, resolve_url(&res, OKEY_SET_API_BASE));
    cfg->passphrase = resolve_secret(&res, OKEY_SET_PASSPHRASE);
    resolve_ca_file(&res, cfg);
    cfg->reap_legacy = resolve_flag(&res, OKEY_SET_REAP_LEGACY);
    cfg->max_in_flight = resolve_number(&res, OKEY_SET_MAX_IN_FLIGHT);
    resolve_lifetimes(&res, cfg);
    cfg->max_keys_per_user = resolve_number(&res, OKEY_SET_MAX_KEYS_PER_USER);
    cfg->revoke_disallowed = resolve_flag(&res, OKEY_SET_REVOKE_DISALLOWED);
    cfg->session_lifetime = resolve_number(&res, OKEY_SET_SESSION_LIFETIME);
    cfg->user_var = raw_value(&res, OKEY_SET_USER_VAR);
    resolve_scope(&res, cfg);
    resolve_ledger(&res, cfg);
    resolve_spend(&res, cfg);
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

apr_array_header_t *okey_config_exposed_files(apr_pool_t *pool,
                                              const okey_raw_config_t *raw,
                                              okey_getenv_fn *getenv_fn,
                                              void *env_baton)
{
    resolver_t res = {pool, raw, getenv_fn, env_baton, "", NULL};
    apr_array_header_t *exposed = apr_array_make(pool, 2, sizeof(const char *));
    int i;

    for (i = 0; i < OKEY_SET_COUNT; i++) {
        const char *value = okey_settings[i].kind == OKEY_KIND_SECRET
                            ? raw_value(&res, (okey_setting_e)i) : NULL;
        apr_finfo_t info;

        if (value && !strncmp(value, "file:", 5) &&
            apr_stat(&info, value + 5, APR_FINFO_PROT, pool) == APR_SUCCESS &&
            (info.protection & (APR_FPROT_GREAD | APR_FPROT_WREAD))) {
            APR_ARRAY_PUSH(exposed, const char *) = apr_psprintf(
                pool, "%s: file %s is readable by %s; make it readable by its "
                "owner only (chmod 600 or 400)", okey_settings[i].directive,
                value + 5, (info.protection & APR_FPROT_WREAD) ? "everyone"
                                                               : "its group");
        }
    }
    return exposed;
}

int okey_setting_in_profile(okey_setting_e setting)
{
    return setting == OKEY_SET_PROJECT || setting == OKEY_SET_EXPIRATION ||
           setting == OKEY_SET_MAX_EXPIRATION || setting == OKEY_SET_MAX_KEYS_PER_USER ||
           setting == OKEY_SET_ALLOWED_USERS || setting == OKEY_SET_ALLOWED_DOMAINS ||
           setting == OKEY_SET_ALLOWED_GROUPS || setting == OKEY_SET_USER_VAR ||
           setting == OKEY_SET_BUDGET || setting == OKEY_SET_REVOKE_OVER_BUDGET;
}

static const char *no_environment(void *baton, const char *name)
{
    (void)baton;
    (void)name;
    return NULL;
}

int okey_config_profile(apr_pool_t *pool, const okey_config_t *base,
                        const okey_raw_config_t *profile, const char *where,
                        okey_config_t *cfg, apr_array_header_t *problems)
{
    resolver_t res = {pool, profile, no_environment, NULL, where, problems};
    const char *const *value = profile->value;
    int before = problems->nelts;

    *cfg = *base;
    cfg->project = value[OKEY_SET_PROJECT] ? value[OKEY_SET_PROJECT] : base->project;
    cfg->expiration = value[OKEY_SET_EXPIRATION] ? resolve_number(&res, OKEY_SET_EXPIRATION)
                                                 : base->expiration;
    /* The longest lifetime follows a profile's default unless it sets one. */
    cfg->max_expiration = value[OKEY_SET_MAX_EXPIRATION]
                          ? resolve_number(&res, OKEY_SET_MAX_EXPIRATION)
                          : (base->max_expiration > cfg->expiration ? base->max_expiration
                                                                    : cfg->expiration);
    if (cfg->max_expiration < cfg->expiration) {
        add_problem(&res, OKEY_SET_MAX_EXPIRATION,
                    apr_psprintf(pool, "%" APR_INT64_T_FMT " is shorter than the default "
                                 "lifetime OpenAIKeyExpiration (%" APR_INT64_T_FMT ")",
                                 cfg->max_expiration, cfg->expiration));
    }
    cfg->max_keys_per_user = value[OKEY_SET_MAX_KEYS_PER_USER]
                             ? resolve_number(&res, OKEY_SET_MAX_KEYS_PER_USER)
                             : base->max_keys_per_user;
    cfg->allowed_users = value[OKEY_SET_ALLOWED_USERS]
                         ? okey_config_split_list(pool, value[OKEY_SET_ALLOWED_USERS])
                         : base->allowed_users;
    cfg->allowed_domains = value[OKEY_SET_ALLOWED_DOMAINS]
                           ? okey_config_split_list(pool, value[OKEY_SET_ALLOWED_DOMAINS])
                           : base->allowed_domains;
    cfg->allowed_groups = value[OKEY_SET_ALLOWED_GROUPS]
                          ? okey_config_split_list(pool, value[OKEY_SET_ALLOWED_GROUPS])
                          : base->allowed_groups;
    cfg->user_var = value[OKEY_SET_USER_VAR] ? value[OKEY_SET_USER_VAR] : base->user_var;
    if (value[OKEY_SET_BUDGET]) {
        resolve_budget(&res, &cfg->budget);
    }
    cfg->revoke_over_budget = value[OKEY_SET_REVOKE_OVER_BUDGET]
                              ? resolve_flag(&res, OKEY_SET_REVOKE_OVER_BUDGET)
                              : base->revoke_over_budget;
    if ((cfg->budget.set || cfg->revoke_over_budget) && !cfg->usage_interval) {
        add_problem(&res, cfg->budget.set ? OKEY_SET_BUDGET : OKEY_SET_REVOKE_OVER_BUDGET,
                    "needs usage polls, which OpenAIKeyUsageInterval 0 turns off");
    }
    return problems->nelts - before;
}
