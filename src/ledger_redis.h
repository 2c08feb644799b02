/* The Redis ledger: a fleet's shared records. */
#ifndef OKEY_LEDGER_REDIS_H
#define OKEY_LEDGER_REDIS_H

#include "ledger.h"

/* A ledger in the Redis at url, its keys under prefix, its records signed
 * with mac_key; *why says what is wrong with url. */
apr_status_t okey_ledger_redis_create(apr_pool_t *pool, const char *url, const char *password,
                                      const char *prefix, const unsigned char mac_key[32],
                                      apr_interval_time_t timeout, okey_ledger_t **ledger,
                                      const char **why);

#endif
