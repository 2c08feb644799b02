/* The only code that talks to the OpenAI Admin API: projects and project
 * service accounts, a bounded page iterator and a batch delete. */
#ifndef OKEY_OPENAI_H
#define OKEY_OPENAI_H

#include "http.h"

#include <apr_hash.h>

#define OKEY_OPENAI_PAGE_LIMIT 100
/* 100 000 items: far past any real project, short of a loop. */
#define OKEY_OPENAI_PAGE_MAX 1000
/* A 429 asking to wait at most this long is waited out and retried once,
 * within the request; a longer one becomes a 503 with its Retry-After. */
#define OKEY_OPENAI_SHORT_RETRY 3
/* The longest Retry-After passed on to a person. */
#define OKEY_OPENAI_RETRY_AFTER_MAX 3600

typedef struct okey_openai_t {
    okey_http_t *http;
    const char *api_base;       /* without trailing slash */
    const char *management_key;
    volatile const int *cancel; /* set: paging and retries stop; NULL: never */
} okey_openai_t;

typedef struct okey_openai_page_t {
    const json_t *data;         /* array of objects */
    const char *last_id;        /* NULL when absent or null */
    int has_more;
} okey_openai_page_t;

typedef struct okey_service_account_t {
    const char *id;
    const char *name;
    apr_int64_t created_at;
    const char *api_key;        /* only when just created */
    const char *api_key_id;     /* key_...: only when just created */
} okey_service_account_t;

/* Parses one page of a list answer. */
okey_err_t *okey_openai_page_parse(apr_pool_t *pool, const char *text,
                                   apr_size_t len, okey_openai_page_t *page);

/* A project of the name sought, as found in a listing. */
typedef struct okey_openai_project_t {
    const char *id;
    apr_int64_t created_at;
} okey_openai_project_t;

/* Adds project (a listed object) to found (of okey_openai_project_t) when it
 * is active and named name. */
void okey_openai_note_project(apr_pool_t *pool, const json_t *project,
                              const char *name, apr_array_header_t *found);

/* The ids in found, oldest first and then by id, so that every child and
 * every server racing to create the project picks the same one. */
apr_array_header_t *okey_openai_oldest_first(apr_pool_t *pool,
                                             apr_array_header_t *found);

okey_err_t *okey_openai_service_account_parse(apr_pool_t *pool, const char *text,
                                              apr_size_t len,
                                              okey_service_account_t **account);

/* Walks a list endpoint page by page. Each page lives in a pool of its own,
 * cleared when the next is asked for, so a walk holds one page at a time.
 * The walk fails, rather than loops, on a repeated or missing cursor, an
 * empty page that claims more, more than OKEY_OPENAI_PAGE_MAX pages, or
 * cancellation. */
typedef struct okey_openai_pager_t okey_openai_pager_t;

okey_openai_pager_t *okey_openai_pager(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *path, okey_endpoint_e endpoint,
                                       const char *what);

/* The next page in *page, or *page NULL once the list is done. */
okey_err_t *okey_openai_pager_next(okey_openai_pager_t *pager,
                                   const okey_openai_page_t **page);

/* Calls visit for every object of every page of a list endpoint, through a
 * pager (so with its bounds); stops at the first error. */
typedef void okey_openai_visit_fn(void *baton, const json_t *item);
okey_err_t *okey_openai_each(const okey_openai_t *api, apr_pool_t *pool,
                             const char *path, okey_endpoint_e endpoint,
                             const char *what, okey_openai_visit_fn *visit,
                             void *baton);

/* Whether a paged answer must stop here (the rules above); *why says why. */
int okey_openai_page_loops(const okey_openai_page_t *page, int pages,
                           apr_hash_t *seen_cursors, const char **why);

/* Walks a page-of-buckets answer (usage, costs) page by page through
 * next_page, calling visit for every result of every bucket with the
 * bucket's start_time. Bounded as a pager: OKEY_OPENAI_PAGE_MAX pages, a
 * repeated or missing cursor, a page claiming more with none, cancel. */
typedef void okey_openai_bucket_fn(void *baton, apr_int64_t start_time, const json_t *result);
okey_err_t *okey_openai_buckets(const okey_openai_t *api, apr_pool_t *pool, const char *path,
                                const char *what, okey_openai_bucket_fn *visit, void *baton);

/* The ids of every active project named name, oldest first (an array of
 * const char *, empty when there is none). */
okey_err_t *okey_openai_find_projects(const okey_openai_t *api, apr_pool_t *pool,
                                      const char *name,
                                      apr_array_header_t **project_ids);

okey_err_t *okey_openai_create_project(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *name, const char **project_id);

okey_err_t *okey_openai_create_service_account(const okey_openai_t *api,
                                               apr_pool_t *pool,
                                               const char *project_id,
                                               const char *name,
                                               okey_service_account_t **account);

/* The account a 2xx answer to a creation describes, with its key; an error
 * when the answer cannot be read or lacks the key. */
okey_err_t *okey_openai_service_account_answer(apr_pool_t *pool,
                                               const okey_http_response_t *resp,
                                               okey_service_account_t **account);

/* Whether a failed creation may have made its account all the same: no
 * answer, or any answer but a refusal (a 4xx, 429 included, other than 408
 * and 409), a 2xx that could not be read or lacks the key among them. An
 * error raised before anything was sent is not unclear. */
int okey_openai_creation_unclear(const okey_err_t *err);

/* The path of a project's service-account list. */
const char *okey_openai_accounts_path(apr_pool_t *pool, const char *project_id);

/* One delete of a batch: the upstream status (0: no answer) and the
 * Retry-After it asked for (-1: none). */
typedef struct okey_openai_deleted_t {
    int status;
    apr_int64_t retry_after;
    const char *error; /* why, for the log; never a secret */
} okey_openai_deleted_t;

/* Deletes n service accounts of a project with at most parallel requests in
 * flight; results[i] says how deleting ids[i] went. */
void okey_openai_delete_accounts(const okey_openai_t *api, apr_pool_t *pool,
                                 const char *project_id, const char *const *ids,
                                 int n, int parallel, okey_openai_deleted_t *results);

/* The error for an answer other than 2xx: its status and OpenAI's message,
 * with anything key- or token-shaped scrubbed out. */
okey_err_t *okey_openai_status_error(apr_pool_t *pool, const char *what,
                                     okey_endpoint_e endpoint,
                                     const okey_http_response_t *resp);

/* --- Admin API keys: the management key itself, for its rotation ------------ */

/* An Admin API key as listed or created; value only in a creation's answer. */
typedef struct okey_openai_admin_key_t {
    const char *id;
    const char *name;
    const char *redacted_value; /* sk-admin...def */
    const char *value;          /* NULL but in a creation's answer */
    apr_int64_t created_at;
    apr_int64_t expires_at;     /* 0: never */
} okey_openai_admin_key_t;

/* Whether redacted_value (a head, "...", a tail) could be the redaction of
 * value: both ends given, matching, and not overlapping. */
int okey_openai_redaction_matches(const char *redacted_value, const char *value);

/* Reads an Admin API key object; NULL when it has no id. */
okey_openai_admin_key_t *okey_openai_admin_key_parse(apr_pool_t *pool, const json_t *object);

/* Every Admin API key of the organisation (of okey_openai_admin_key_t),
 * through a pager. */
okey_err_t *okey_openai_admin_keys(const okey_openai_t *api, apr_pool_t *pool,
                                   apr_array_header_t **keys);

/* Creates an Admin API key named name, expiring after expires_in seconds
 * (0: never); *key holds its value. A 2xx without a value is an error. */
okey_err_t *okey_openai_create_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                         const char *name, apr_int64_t expires_in,
                                         okey_openai_admin_key_t **key);

/* Reads the Admin API key id, as the key in api sees it. */
okey_err_t *okey_openai_read_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *id, okey_openai_admin_key_t **key);

okey_err_t *okey_openai_delete_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                         const char *id);

#endif
