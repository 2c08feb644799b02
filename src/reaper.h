/* Reaping policy: which failed deletes to retry, and how long to wait
 * first (which keys to delete is okey_terms_judge's). No network here. */
#ifndef OKEY_REAPER_H
#define OKEY_REAPER_H

#include "okey.h"

#include <apr_time.h>

#define OKEY_REAP_PARALLEL 12
#define OKEY_REAP_ATTEMPTS 4
#define OKEY_REAP_RETRY_AFTER_MAX 60

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
