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
    apr_int64_t lifetime; /* seconds, as asked for */
} okey_issued_t;

/* okey-<expires>-<email in lower case> */
const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires,
                           const char *email);

/* Splits a name of the form above; 0 when it is not one. */
int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email);

/* Where the children of a key server keep the project's id, and the lock
 * that lets one of them at a time find or create the project. */
typedef struct okey_project_store_t {
    /* Copies the stored id into buf; empty when none is stored. */
    void (*get)(void *baton, char *buf, apr_size_t len);
    /* Stores id; or, when id is NULL, forgets stale if it is still stored. */
    void (*set)(void *baton, const char *id, const char *stale);
    /* Takes the creation lock, waiting at most wait; 0 when not taken. */
    int (*lock)(void *baton, apr_interval_time_t wait);
    void (*unlock)(void *baton);
    void *baton;
} okey_project_store_t;

#define OKEY_KEYS_PROJECT_ID_MAX 128

/* Per-process issuer of one key server. */
okey_keys_t *okey_keys_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http,
                              const okey_project_store_t *store);

/* Makes the issuer's paging stop once *cancel is set (the child stops). */
void okey_keys_cancel_with(okey_keys_t *keys, volatile const int *cancel);

/* The id of a project the key server issues into: stored, found (the
 * oldest active one of its name) or created. Creation is serialised
 * through the store, and the project list is read again after creating so
 * that racing servers converge on the oldest. */
okey_err_t *okey_keys_project_id(okey_keys_t *keys, apr_pool_t *pool,
                                 const char *project, const char **project_id);

/* The ids of every active project of every name the server issues into
 * (its own and its profiles'). */
okey_err_t *okey_keys_all_projects(okey_keys_t *keys, apr_pool_t *pool,
                                   apr_array_header_t **project_ids);

/* Issues a key to email. When the creation got no answer (a timeout, a
 * dropped connection), the account may exist upstream all the same, with a
 * key nobody holds: *unsure then names the attempt (project id and name),
 * else it is NULL. */
okey_err_t *okey_keys_issue(okey_keys_t *keys, apr_pool_t *pool, const char *project,
                            const char *email, apr_int64_t now, apr_int64_t lifetime,
                            okey_issued_t **issued, const okey_issued_t **unsure);

/* A key of one address, as listed upstream. */
typedef struct okey_owned_key_t {
    const char *service_account_id;
    const char *name;
    const char *project_id;
    apr_int64_t created_at;
    apr_int64_t expires;
} okey_owned_key_t;

/* Every key of email in every active project of the server's name, oldest
 * first (an array of okey_owned_key_t). Lists the projects page by page. */
okey_err_t *okey_keys_owned(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                            apr_array_header_t **owned);

/* The keys of owned that go, oldest first, when the address may hold at
 * most cap; the key keep_id (just issued) always stays. */
apr_array_header_t *okey_keys_beyond_cap(apr_pool_t *pool,
                                         const apr_array_header_t *owned,
                                         apr_int64_t cap, const char *keep_id);

/* Deletes the n keys victims[i]; done[i] is set when it is gone (deleted,
 * or already gone: 404). Returns the number gone. */
int okey_keys_revoke(okey_keys_t *keys, apr_pool_t *pool,
                     const okey_owned_key_t *const *victims, int n, int *done);

#endif
