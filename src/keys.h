/* Key issuance: the project that holds the keys, the service account that
 * carries one, and the naming scheme that lets the reaper find it again. */
#ifndef OKEY_KEYS_H
#define OKEY_KEYS_H

#include "config.h"
#include "ledger.h"
#include "openai.h"
#include "reaper.h"
#include "terms.h"

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
    apr_int64_t created_at; /* as the creation answered, within the clock skew */
} okey_issued_t;

/* A tag: OKEY_KEYS_TAG_DRAWN characters drawn at random, then
 * OKEY_KEYS_TAG_CHECK that a digest of the expiry, the drawn part and the
 * address gives, so that a name from before tags, whose address happens to
 * begin like a tag, is not read as a tagged one. */
#define OKEY_KEYS_TAG_DRAWN 5
#define OKEY_KEYS_TAG_CHECK 3
#define OKEY_KEYS_TAG_LEN (OKEY_KEYS_TAG_DRAWN + OKEY_KEYS_TAG_CHECK)

/* okey-<expires>-<tag>-<email in lower case>, the tag made from drawn
 * (OKEY_KEYS_TAG_DRAWN characters of [a-z0-9]). */
const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires, const char *drawn,
                           const char *email);

/* The same with a tag drawn from the system's generator. */
okey_err_t *okey_keys_new_name(apr_pool_t *pool, apr_int64_t expires, const char *email,
                               const char **name);

/* A name from its parts, as okey_keys_name_tag gives the tag. */
const char *okey_keys_name_tagged(apr_pool_t *pool, apr_int64_t expires, const char *tag,
                                  const char *email);

/* The tag of a name of ours; "" for an untagged one, NULL when not ours. */
const char *okey_keys_name_tag(apr_pool_t *pool, const char *name);

/* Splits a name of the form above, or of the untagged form of releases 1
 * and 2 (okey-<expires>-<email>); 0 when it is neither. */
int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email);

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

#endif
