/* Reaping policy. */
#include "reaper.h"


int okey_reap_delete_unclear(int status)
{
    return status == 0 || status >= 500;
}

okey_delete_outcome_e okey_reap_classify(int status, int attempt, int unclear_before)
{
    int retryable = okey_reap_delete_unclear(status) || status == 429;
    okey_delete_outcome_e outcome = OKEY_DELETE_FAILED;

    if ((status >= 200 && status < 300) || (status == 404 && unclear_before)) {
        outcome = OKEY_DELETE_DONE;
    }
    else if (status == 404) {
        outcome = OKEY_DELETE_GONE;
    }
    else if (retryable && attempt < OKEY_REAP_ATTEMPTS) {
        outcome = OKEY_DELETE_RETRY;
    }
    return outcome;
}

apr_interval_time_t okey_reap_backoff(apr_interval_time_t base, int attempt,
                                      apr_int64_t retry_after)
{
    apr_interval_time_t wait = base;
    apr_interval_time_t asked;
    int i;

    for (i = 1; i < attempt && wait < apr_time_from_sec(OKEY_REAP_RETRY_AFTER_MAX); i++) {
        wait *= 2;
    }
    asked = apr_time_from_sec(retry_after > OKEY_REAP_RETRY_AFTER_MAX
                                  ? OKEY_REAP_RETRY_AFTER_MAX : retry_after);
    return retry_after > 0 && asked > wait ? asked : wait;
}
