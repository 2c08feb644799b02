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
    OKEY_DELETE_DONE,   /* 2xx: this delete took it away */
    OKEY_DELETE_GONE,   /* 404: something else took it away first */
    OKEY_DELETE_RETRY,  /* no answer, 429 or 5xx, with attempts left */
    OKEY_DELETE_FAILED
} okey_delete_outcome_e;

/* What a delete that answered status (0: no answer) on attempt means. A
 * key GONE is gone all the same, but neither counted nor audited as a
 * deletion: one key, one deletion. unclear_before says an earlier attempt
 * got no answer or a 5xx, which may have deleted it: a 404 then is DONE. */
okey_delete_outcome_e okey_reap_classify(int status, int attempt, int unclear_before);

/* Whether a delete that answered status may have been carried out all the
 * same: no answer, or a 5xx. */
int okey_reap_delete_unclear(int status);

/* How long to wait before retry round attempt + 1: the base doubled per
 * round, or longer when the upstream asked for it (Retry-After, seconds,
 * -1 when absent; honoured up to OKEY_REAP_RETRY_AFTER_MAX). */
apr_interval_time_t okey_reap_backoff(apr_interval_time_t base, int attempt,
                                      apr_int64_t retry_after);

#endif
