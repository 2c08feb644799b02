/* Key issuance: the project that holds the keys, the service account that
 * carries one, and the naming scheme that lets the reaper find it again. */
#ifndef OKEY_KEYS_H
#define OKEY_KEYS_H

#include "config.h"
#include "openai.h"

#define OKEY_KEYS_NAME_PREFIX "okey-"

typedef struct okey_keys_t okey_keys_t;

typedef struct okey_issued_t {
    const char *service_account_id;
    const char *name;
    const char *api_key;
    const char *email;
    const char *project;
    const char *project_id;
    apr_int64_t expires; /* Unix seconds */
} okey_issued_t;

/* okey-<expires>-<email in lower case> */
const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires,
                           const char *email);

/* Splits a name of the form above; 0 when it is not one. */
int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email);

/* Per-process issuer of one key server; caches the project id. */
okey_keys_t *okey_keys_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http);

okey_err_t *okey_keys_issue(okey_keys_t *keys, apr_pool_t *pool,
                            const char *email, apr_int64_t now,
                            okey_issued_t **issued);

#endif
