/* Reaping policy: which service accounts to delete, which failed deletes to
 * retry, and how long to wait first. No network here. */
#ifndef OKEY_REAPER_H
#define OKEY_REAPER_H

#include "okey.h"

#include <apr_time.h>

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

typedef enum {
    OKEY_DELETE_DONE,   /* 2xx, or 404: gone already */
    OKEY_DELETE_RETRY,  /* no answer, 429 or 5xx, with attempts left */
    OKEY_DELETE_FAILED
} okey_delete_outcome_e;

/* What a delete that answered status (0: no answer) on attempt means. */
okey_delete_outcome_e okey_reap_classify(int status, int attempt);

/* How long to wait before retry round attempt + 1: the base doubled per
 * round, or longer when the upstream asked for it (Retry-After, seconds,
 * -1 when absent; honoured up to OKEY_REAP_RETRY_AFTER_MAX). */
apr_interval_time_t okey_reap_backoff(apr_interval_time_t base, int attempt,
                                      apr_int64_t retry_after);

#endif
