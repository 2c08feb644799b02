/* Reaping policy. */
#include "reaper.h"

#include <string.h>

#include "keys.h"

/* The Go program's names: an address, and not a malformed one of ours. */
static int bare_address(const char *name)
{
    const char *at = strchr(name, '@');

    return at && at != name && at[1] && !strchr(at + 1, '@') &&
           !strpbrk(name, " \t\r\n\"<>,;:") &&
           strncmp(name, OKEY_KEYS_NAME_PREFIX, strlen(OKEY_KEYS_NAME_PREFIX)) != 0;
}

okey_reap_verdict_e okey_reap_decide(apr_pool_t *pool, const char *name,
                                     apr_int64_t created_at, apr_int64_t now,
                                     apr_int64_t expiration, int reap_legacy,
                                     apr_int64_t *expires, const char **email)
{
    /* created_at in the future says nothing: only a passed one counts. */
    int old = created_at > 0 && created_at <= now && created_at + expiration <= now;
    okey_reap_verdict_e verdict = OKEY_REAP_KEEP;

    *expires = 0;
    *email = NULL;
    if (okey_keys_parse_name(pool, name, expires, email)) {
        verdict = (*expires <= now || old) ? OKEY_REAP_EXPIRED : OKEY_REAP_KEEP;
    }
    else if (reap_legacy && bare_address(name)) {
        *email = name;
        verdict = old ? OKEY_REAP_LEGACY : OKEY_REAP_KEEP;
    }
    return verdict;
}

okey_delete_outcome_e okey_reap_classify(int status, int attempt)
{
    int retryable = status == 0 || status == 429 || status >= 500;
    okey_delete_outcome_e outcome = OKEY_DELETE_FAILED;

    if ((status >= 200 && status < 300) || status == 404) {
        outcome = OKEY_DELETE_DONE;
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
