/* Settings of one key server: where each comes from (directive, environment,
 * default) and what a valid value is. */
#ifndef OKEY_CONFIG_H
#define OKEY_CONFIG_H

#include "okey.h"

typedef enum {
    OKEY_SET_CLIENT_ID,
    OKEY_SET_CLIENT_SECRET,
    OKEY_SET_REDIRECT_URI,
    OKEY_SET_ALLOWED_USERS,
    OKEY_SET_ALLOWED_DOMAINS,
    OKEY_SET_MANAGEMENT_KEY,
    OKEY_SET_PROJECT,
    OKEY_SET_EXPIRATION,
    OKEY_SET_CLEANUP_INTERVAL,
    OKEY_SET_TIMEOUT,
    OKEY_SET_ISSUER,
    OKEY_SET_API_BASE,
    OKEY_SET_PASSPHRASE,
    OKEY_SET_CA_FILE,
    OKEY_SET_REAP_LEGACY,
    OKEY_SET_COUNT
} okey_setting_e;

typedef struct okey_setting_t {
    const char *directive;
    const char *env;          /* first environment variable */
    const char *env_fallback; /* second one, or NULL */
    const char *default_value; /* NULL: required or optional without default */
    int required;
} okey_setting_t;

extern const okey_setting_t okey_settings[OKEY_SET_COUNT];

/* The raw values a server's directives set, NULL where unset. */
typedef struct okey_raw_config_t {
    const char *value[OKEY_SET_COUNT];
} okey_raw_config_t;

/* The resolved, validated settings of one key server. */
typedef struct okey_config_t {
    const char *server_name;
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
    const char *passphrase; /* NULL: a random one per start */
    const char *ca_file;
    int reap_legacy;
    int redirect_is_https;
} okey_config_t;

typedef const char *okey_getenv_fn(void *baton, const char *name);

/* Whether a server with these raw values, or an environment with any of the
 * module's variables, asks for the module at all. */
int okey_config_wanted(const okey_raw_config_t *raw, okey_getenv_fn *getenv_fn,
                       void *env_baton);

/* Resolves raw values (directive, then environment, then default) into cfg.
 * Each problem found is pushed onto problems as one line naming the
 * directive, its environment variable and server_name. Returns the number of
 * problems. */
int okey_config_resolve(apr_pool_t *pool, const okey_raw_config_t *raw,
                        okey_getenv_fn *getenv_fn, void *env_baton,
                        const char *server_name, okey_config_t *cfg,
                        apr_array_header_t *problems);

/* Splits a comma-separated list into trimmed, lower-cased, non-empty items. */
apr_array_header_t *okey_config_split_list(apr_pool_t *pool, const char *list);

#endif
