/* Key issuance: the project that holds the keys and the service account
 * that carries one, named as name.h says. */
#ifndef OKEY_KEYS_H
#define OKEY_KEYS_H

#include "config.h"
#include "ledger.h"
#include "name.h"
#include "openai.h"
#include "reaper.h"
#include "terms.h"

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
    apr_int64_t created_at; /* as the creation answered, within the clock skew */
    const char *api_key_id; /* key_...: what usage and costs name it by; NULL: not given */
} okey_issued_t;

#define OKEY_KEYS_PROJECT_ID_MAX 128

/* Per-process issuer of one key server. */
okey_keys_t *okey_keys_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http, okey_ledger_t *ledger);

/* Makes the issuer's paging stop once *cancel is set (the child stops). */
void okey_keys_cancel_with(okey_keys_t *keys, volatile const int *cancel);

/* The id of a project the key server issues into: stored, found (the
 * oldest active one of its name) or created. Creation is serialised
 * through the ledger, and the project list is read again after creating so
 * that racing servers converge on the oldest. */
okey_err_t *okey_keys_project_id(okey_keys_t *keys, apr_pool_t *pool,
                                 const char *project, const char **project_id);

/* Whether project names a project by its id (proj_...), not by its name. */
int okey_keys_is_project_id(const char *project);

/* The ids of the project: itself when it is an id, else every active
 * project of that name (racing servers may have made two). */
okey_err_t *okey_keys_project_ids(okey_keys_t *keys, apr_pool_t *pool, const char *project,
                                  apr_array_header_t **ids);

/* Issues a key to email. When the creation got no clear answer (none, or
 * one that does not prove it failed: see okey_openai_creation_unclear), the
 * account may exist upstream all the same, with a key nobody holds:
 * *unsure then names the attempt (project id and name), else it is NULL. */
okey_err_t *okey_keys_issue(okey_keys_t *keys, apr_pool_t *pool, const char *project,
                            const char *email, apr_int64_t now, apr_int64_t lifetime,
                            okey_issued_t **issued, const okey_issued_t **unsure);


/* The keys of email, judged by their project's terms at now, oldest first
 * (of okey_owned_key_t): in project (a name or an id), or with NULL in every
 * project the server issues into. Live keys, and with with_expired those
 * past their expiry that still exist (they still work until deleted).
 * Lists page by page. */
okey_err_t *okey_keys_owned(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                            const char *project, apr_int64_t now, int with_expired,
                            apr_array_header_t **owned);

/* Whether keys (of okey_owned_key_t) hold the service account's key. */
int okey_keys_held(const apr_array_header_t *keys, const char *service_account_id);

/* A key a revoke tried to delete, and what became of it: OKEY_DELETE_DONE
 * (deleted here), OKEY_DELETE_GONE (someone else deleted it first: 404) or
 * OKEY_DELETE_FAILED. */
typedef struct okey_revoke_t {
    okey_owned_key_t key;
    okey_delete_outcome_e outcome;
} okey_revoke_t;

/* Deletes victims (of okey_owned_key_t), keys of email, one at a time, and
 * has the ledger forget those that are gone. Returns every attempt (of
 * okey_revoke_t), in order. */
apr_array_header_t *okey_keys_revoke(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                                     const apr_array_header_t *victims);

/* Records issued in the ledger and, when its project has a cap (cap > 0),
 * deletes the address's oldest keys in that project beyond it: as the
 * ledger sees them, in the same step as the record, or, when the ledger
 * cannot answer (*unanswered set), from a listing of that project as well.
 * A failed listing (returned) still lets the cap take what the ledger knows
 * is older than the newest cap keys. *revokes: the attempts, or NULL. */
okey_err_t *okey_keys_cap(okey_keys_t *keys, apr_pool_t *pool, const okey_issued_t *issued,
                          apr_int64_t cap, apr_array_header_t **revokes, int *unanswered);

/* NULL when email may be issued a key under cfg's budget at now; else the
 * 403 that says what was spent, the budget and when its period resets (a
 * refusal counted with err->denied OKEY_DENIED_BUDGET). Reads only the
 * ledger: what the last usage poll found. */
okey_err_t *okey_keys_within_budget(okey_keys_t *keys, apr_pool_t *pool,
                                    const okey_config_t *cfg, const char *email,
                                    apr_int64_t now);

#endif
