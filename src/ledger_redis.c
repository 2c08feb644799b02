/* The Redis ledger: not in this build yet; a Redis URL is refused at
 * startup with a message that says so. */
#include "ledger_redis.h"

apr_status_t okey_ledger_redis_create(apr_pool_t *pool, const char *url, const char *password,
                                      const char *prefix, const unsigned char mac_key[32],
                                      apr_interval_time_t timeout, okey_ledger_t **ledger,
                                      const char **why)
{
    (void)pool;
    (void)url;
    (void)password;
    (void)prefix;
    (void)mac_key;
    (void)timeout;
    *ledger = NULL;
    *why = "a Redis ledger is not supported by this build";
    return APR_ENOTIMPL;
}
