/* Reaping: deleting the service accounts this module issued once they
 * expire, and nothing else. */
#ifndef OKEY_REAPER_H
#define OKEY_REAPER_H

#include "config.h"
#include "keys.h"
#include "openai.h"

#define OKEY_REAP_PARALLEL 12
#define OKEY_REAP_ATTEMPTS 4
#define OKEY_REAP_RETRY_AFTER_MAX 60

typedef enum {
    OKEY_REAP_KEEP,
    OKEY_REAP_EXPIRED, /* okey-<expires>-<email> past its expiry */
    OKEY_REAP_LEGACY   /* a bare e-mail address, older than the expiration */
} okey_reap_verdict_e;

/* What to do with one service account at now. *expires and *email are
 * set for accounts of ours (expires 0 for legacy ones). */
okey_reap_verdict_e okey_reap_decide(apr_pool_t *pool, const char *name,
                                     apr_int64_t created_at, apr_int64_t now,
                                     apr_int64_t expiration, int reap_legacy,
                                     apr_int64_t *expires, const char **email);

typedef struct okey_reap_summary_t {
    int listed;
    int deleted;
    int failed;
    int kept;
    double seconds;
    const char *error; /* why the reap could not run, or NULL */
} okey_reap_summary_t;

typedef struct okey_reaper_t {
    const okey_config_t *cfg;
    okey_openai_t api;
    const okey_logger_t *logger;
    int parallel;
    apr_interval_time_t backoff;  /* first retry delay; doubles per round */
    volatile const int *cancel;   /* stops waiting between rounds */
} okey_reaper_t;

void okey_reaper_init(okey_reaper_t *reaper, const okey_config_t *cfg,
                      okey_http_t *http, const okey_logger_t *logger,
                      volatile const int *cancel);

/* One reap of the configured project. Logs one audit line per deleted key. */
void okey_reap(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
               okey_reap_summary_t *summary);

#endif
