/* Settings of one key server: where each comes from (directive, environment,
 * default) and what a valid value is. */
#ifndef OKEY_CONFIG_H
#define OKEY_CONFIG_H

#include "okey.h"
#include "spend.h"

/* The one table of settings. The enum, the resolution table and httpd's
 * directive table are generated from it, so they cannot drift apart.
 * X(name, directive, environment, second environment, default, required,
 *   kind, minimum, maximum, help) */
#define OKEY_SETTINGS(X)                                                       \
    X(CLIENT_ID, "OpenAIKeyClientID", "CLIENT_ID", NULL, NULL, 1, STRING, 0, 0, \
      "OAuth2 client ID")                                                      \
    X(CLIENT_SECRET, "OpenAIKeyClientSecret", "CLIENT_SECRET", NULL, NULL, 1,  \
      SECRET, 0, 0, "OAuth2 client secret, or file:/path")                     \
    X(REDIRECT_URI, "OpenAIKeyRedirectURI", "REDIRECT_URI", NULL, NULL, 1, URL, \
      0, 0, "absolute URL served by openaikey-callback")                       \
    X(ALLOWED_USERS, "OpenAIKeyAllowedUsers", "ALLOWED_USERS", NULL, NULL, 0,  \
      STRING, 0, 0, "comma-separated e-mail addresses")                        \
    X(ALLOWED_DOMAINS, "OpenAIKeyAllowedDomains", "ALLOWED_DOMAINS", NULL,     \
      NULL, 0, STRING, 0, 0, "comma-separated domains")                        \
    X(MANAGEMENT_KEY, "OpenAIKeyManagementKey", "OPENAI_MANAGEMENT_KEY", NULL, \
      NULL, 1, SECRET, 0, 0, "OpenAI Admin API key, or file:/path")            \
    X(PROJECT, "OpenAIKeyProject", "DEFAULT_PROJECT_NAME", NULL, "personal", 0, \
      STRING, 0, 0, "project that holds the keys")                             \
    X(EXPIRATION, "OpenAIKeyExpiration", "EXPIRATION", NULL, "86400", 0,       \
      NUMBER, 60, 31536000, "key lifetime, seconds")                           \
    X(CLEANUP_INTERVAL, "OpenAIKeyCleanupInterval", "CLEANUP_INTERVAL", NULL,  \
      "3600", 0, NUMBER, 1, 604800, "seconds between reaps")                   \
    X(TIMEOUT, "OpenAIKeyTimeout", "TIMEOUT", NULL, "10", 0, NUMBER, 1, 300,   \
      "timeout of each upstream HTTP request, seconds")                        \
    X(ISSUER, "OpenAIKeyIssuer", "OIDC_ISSUER", "GOOGLE_TOKEN_ISSUER_URL",     \
      "https://accounts.google.com", 0, URL, 0, 0, "OpenID provider issuer URL") \
    X(API_BASE, "OpenAIKeyAPIBase", "OPENAI_API_BASE", NULL,                   \
      "https://api.openai.com/v1", 0, URL, 0, 0, "OpenAI API base URL")        \
    X(PASSPHRASE, "OpenAIKeyPassphrase", "OPENAIKEY_PASSPHRASE", NULL, NULL, 0, \
      SECRET, 0, 0, "key for the sign-in state cookie, or file:/path")         \
    X(CA_FILE, "OpenAIKeyCAFile", "OPENAIKEY_CA_FILE", NULL, NULL, 0, PATH, 0, \
      0, "CA certificates for upstream TLS")                                   \
    X(REAP_LEGACY, "OpenAIKeyReapLegacy", "OPENAIKEY_REAP_LEGACY", NULL, "Off", \
      0, FLAG, 0, 0, "On to also reap keys named with a bare e-mail address")  \
    X(MAX_EXPIRATION, "OpenAIKeyMaxExpiration", "MAX_EXPIRATION", NULL, NULL,  \
      0, NUMBER, 60, 31536000,                                                 \
      "longest key lifetime a person may ask for with ttl, seconds")           \
    X(MAX_KEYS_PER_USER, "OpenAIKeyMaxKeysPerUser", "MAX_KEYS_PER_USER", NULL, \
      "0", 0, NUMBER, 0, 10000,                                                \
      "live keys one address may hold; 0 for no cap")                          \
    X(REVOKE_DISALLOWED, "OpenAIKeyRevokeDisallowed", "REVOKE_DISALLOWED",     \
      NULL, "Off", 0, FLAG, 0, 0,                                              \
      "On to also reap live keys of addresses the policy no longer allows")    \
    X(SESSION_LIFETIME, "OpenAIKeySessionLifetime", "SESSION_LIFETIME", NULL,  \
      "900", 0, NUMBER, 0, 86400,                                              \
      "seconds a sign-in may use My keys; 0 turns self-service off")           \
    X(ALLOWED_GROUPS, "OpenAIKeyAllowedGroups", "ALLOWED_GROUPS", NULL, NULL,  \
      0, STRING, 0, 0, "comma-separated groups of the ID token's groups claim") \
    X(GROUPS_CLAIM, "OpenAIKeyGroupsClaim", "GROUPS_CLAIM", NULL, "groups", 0, \
      STRING, 0, 0, "the ID-token claim that lists groups")                    \
    X(SCOPE, "OpenAIKeyScope", "OIDC_SCOPE", NULL, "openid email", 0, STRING,  \
      0, 0, "scopes asked of the provider; must hold openid and email")        \
    X(USER_VAR, "OpenAIKeyUserVar", NULL, NULL, NULL, 0, STRING, 0, 0,        \
      "for openaikey-issue: the variable holding the address, not r->user")   \
    X(MAX_IN_FLIGHT, "OpenAIKeyMaxInFlight", "MAX_IN_FLIGHT", NULL, NULL, 0,   \
      NUMBER, 1, 100000,                                                       \
      "requests that may wait on upstream services at once, in all children") \
    X(LEDGER, "OpenAIKeyLedger", "OPENAIKEY_LEDGER", NULL, "shm", 0, STRING, 0, \
      0, "shm, or redis://... or redis+unix://... shared by several servers")  \
    X(LEDGER_PASSWORD, "OpenAIKeyLedgerPassword", "OPENAIKEY_LEDGER_PASSWORD", \
      NULL, NULL, 0, SECRET, 0, 0, "Redis password, or file:/path")            \
    X(LEDGER_SIZE, "OpenAIKeyLedgerSize", "OPENAIKEY_LEDGER_SIZE", NULL,       \
      "100000", 0, NUMBER, 100, 10000000,                                      \
      "shm: live keys the ledger holds per key server")                       \
    X(STATE_DIR, "OpenAIKeyStateDir", "OPENAIKEY_STATE_DIR", NULL,             \
      "/var/lib/apache2/openaikey", 0, DIR, 0, 0,                              \
      "shm: where records that must outlive a stop are kept")                 \
    X(USAGE_INTERVAL, "OpenAIKeyUsageInterval", "USAGE_INTERVAL", NULL, "900", \
      0, NUMBER, 0, 86400,                                                     \
      "seconds between usage and cost polls; 0 turns spend features off")     \
    X(BUDGET, "OpenAIKeyBudget", "BUDGET", NULL, NULL, 0, BUDGET, 0, 0,        \
      "what one person may spend: <amount> day|week|month (USD)")             \
    X(REVOKE_OVER_BUDGET, "OpenAIKeyRevokeOverBudget", "REVOKE_OVER_BUDGET",   \
      NULL, "Off", 0, FLAG, 0, 0,                                              \
      "On to also reap live keys of people at or over their budget")

#define OKEY_SETTING_ENUM(name, ...) OKEY_SET_##name,
typedef enum { OKEY_SETTINGS(OKEY_SETTING_ENUM) OKEY_SET_COUNT } okey_setting_e;
#undef OKEY_SETTING_ENUM

typedef enum {
    OKEY_KIND_STRING,
    OKEY_KIND_SECRET, /* a value, or file:/path holding it */
    OKEY_KIND_URL,    /* absolute http(s) */
    OKEY_KIND_NUMBER, /* whole seconds or a count, within minimum..maximum */
    OKEY_KIND_PATH,   /* an existing file */
    OKEY_KIND_FLAG,   /* On or Off */
    OKEY_KIND_DIR,    /* an absolute path */
    OKEY_KIND_BUDGET  /* <amount> day|week|month */
} okey_setting_kind_e;

typedef struct okey_setting_t {
    const char *directive;
    const char *env;          /* first environment variable */
    const char *env_fallback; /* second one, or NULL */
    const char *default_value; /* NULL: required or optional without default */
    int required;
    okey_setting_kind_e kind;
    apr_int64_t min, max;     /* for numbers */
} okey_setting_t;

extern const okey_setting_t okey_settings[OKEY_SET_COUNT];

/* The raw values a server's directives set, NULL where unset. */
typedef struct okey_raw_config_t {
    const char *value[OKEY_SET_COUNT];
} okey_raw_config_t;

/* The resolved, validated settings of one key server. */
typedef struct okey_config_t {
    const char *server_name; /* a label for messages: host:port */
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri;
    apr_array_header_t *allowed_users;   /* of const char *, lower case */
    apr_array_header_t *allowed_domains; /* of const char *, lower case */
    const char *management_key;
    const char *project;
    apr_int64_t expiration;
    apr_int64_t cleanup_interval;
    apr_int64_t timeout;
    const char *issuer;
    const char *api_base;
    const char *passphrase; /* NULL: random key bytes kept for the parent's life */
    const char *ca_file;
    int reap_legacy;
    int redirect_is_https;
    apr_int64_t max_in_flight; /* 0: half the server's workers */
    apr_int64_t max_expiration;    /* at least expiration */
    apr_int64_t max_keys_per_user; /* 0: no cap */
    int revoke_disallowed;
    apr_int64_t session_lifetime;  /* 0: no self-service */
    const char *user_var;          /* NULL: openaikey-issue takes r->user */
    apr_array_header_t *allowed_groups; /* of const char *, lower case */
    const char *groups_claim;
    const char *scope;
    const char *ledger;            /* "shm", or a redis:// or redis+unix:// URL */
    const char *ledger_password;   /* NULL: none, or the URL's */
    apr_int64_t ledger_size;
    const char *state_dir;
    apr_int64_t usage_interval;    /* 0: no spend features */
    okey_budget_t budget;          /* set 0: none */
    int revoke_over_budget;
    /* The terms of every project the server issues into, its own first
     * (of okey_terms_t *, see terms.h), found at startup; NULL: its own
     * settings alone. Shared by the server and its profiles. */
    apr_array_header_t *terms;
} okey_config_t;

typedef struct okey_terms_t okey_terms_t;

typedef const char *okey_getenv_fn(void *baton, const char *name);

/* Whether a server with these raw values, or an environment with any of the
 * module's variables, asks for the module at all. */
int okey_config_wanted(const okey_raw_config_t *raw, okey_getenv_fn *getenv_fn,
                       void *env_baton);

/* Why value is not valid for setting, judged without the file system, or
 * NULL when it is. Directive handlers call it so that the error carries the
 * configuration file and line. */
const char *okey_config_check_value(apr_pool_t *pool, okey_setting_e setting,
                                    const char *value);

/* Resolves raw values (directive, then environment, then default) into cfg.
 * Each problem found is pushed onto problems as one line naming the
 * directive, its environment variable and server_name. Returns the number of
 * problems. */
int okey_config_resolve(apr_pool_t *pool, const okey_raw_config_t *raw,
                        okey_getenv_fn *getenv_fn, void *env_baton,
                        const char *server_name, okey_config_t *cfg,
                        apr_array_header_t *problems);

/* Secrets read from files that anyone but their owner may read, as lines
 * for a startup warning (of const char *). */
apr_array_header_t *okey_config_exposed_files(apr_pool_t *pool,
                                              const okey_raw_config_t *raw,
                                              okey_getenv_fn *getenv_fn,
                                              void *env_baton);

/* Whether a setting may also be set in <Location>: the ones that decide
 * who gets which key, and where openaikey-issue finds the address. */
int okey_setting_in_profile(okey_setting_e setting);

/* The settings of a profile: base with the values profile sets (NULL where
 * it sets none) applied. Problems are pushed as for a server, naming where.
 * Returns the number of problems. */
int okey_config_profile(apr_pool_t *pool, const okey_config_t *base,
                        const okey_raw_config_t *profile, const char *where,
                        okey_config_t *cfg, apr_array_header_t *problems);

/* Splits a comma-separated list into trimmed, lower-cased, non-empty items. */
apr_array_header_t *okey_config_split_list(apr_pool_t *pool, const char *list);

#endif
