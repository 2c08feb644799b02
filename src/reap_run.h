/* One reap of a key server: every active project of its name is listed
 * page by page through the Admin API client, the policy picks the expired
 * keys of ours, and they are deleted in bounded-parallel rounds. */
#ifndef OKEY_REAP_RUN_H
#define OKEY_REAP_RUN_H

#include "config.h"
#include "keys.h"
#include "openai.h"
#include "reaper.h"

typedef struct okey_reap_summary_t {
    int projects;
    int listed;
    int deleted;
    int failed;
    int kept;
    int skipped;    /* to delete, but not attempted: the reap was cancelled */
    int revoked_cap;    /* live keys deleted: their address held too many */
    int revoked_policy; /* live keys deleted: the policy no longer allows */
    int revoked_budget; /* live keys deleted: their owner spent their budget */
    int cancelled;  /* stopped by its child's stop */
    double seconds;
    const char *error;       /* why the reap could not finish, or NULL */
    const char *error_class; /* a short class of it for /status, or NULL */
    /* The live keys of ours left within the cap (of okey_owned_key_t): what
     * the ledger is filled with. */
    apr_array_header_t *live;
    /* Expired keys deleted, by project name (to an int *). */
    apr_hash_t *reaped_by_project;
} okey_reap_summary_t;

typedef struct okey_reaper_t {
    const okey_config_t *cfg;
    okey_openai_t api;            /* its cancel stops paging, deleting, waiting */
    const okey_logger_t *logger;
    int parallel;
    apr_interval_time_t backoff;  /* first retry delay; doubles per round */
    /* Names of accounts whose creation got no clear answer: deleted when
     * listed, live or not; each value is an int set to 1 once found. NULL:
     * none. */
    apr_hash_t *unsure;
    /* Where sign-ins record their keys, and so rank them, for the cap.
     * NULL: keys rank by their creation. */
    okey_ledger_t *ledger;
} okey_reaper_t;

void okey_reaper_init(okey_reaper_t *reaper, const okey_config_t *cfg,
                      okey_http_t *http, const okey_logger_t *logger,
                      volatile const int *cancel);

/* One reap. Logs one audit line per deleted key and one summary line of
 * the failures. */
void okey_reap(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
               okey_reap_summary_t *summary);

/* The ids of every project the server's terms name, each once (ids, of
 * const char *), with the terms to judge its keys by (terms_of, of const
 * okey_terms_t *, in the same order). */
okey_err_t *okey_reap_projects(const okey_reaper_t *reaper, apr_pool_t *pool,
                               apr_array_header_t *ids, apr_array_header_t *terms_of);

#endif
