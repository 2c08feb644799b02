/* The ledger a fleet shares through Redis (hiredis).
 *
 * Every Redis key starts with the deployment's prefix:
 *   u:<person>        hash: service account id -> record (see ledger_redis.c)
 *   n                 the number of records the ledger's own writes keep
 *   gone              sorted set: service account id -> when forgotten (usec),
 *                     the last hour of them
 *   filled            present once a full listing has filled the records
 *   projects          hash: project -> its id, authenticated
 *   lock:<project>    a project lock: its holder's token, with an expiry
 *   lease, reap       the reap lease (token, expires) and (last claim, requested)
 *   suspects, suspect-names  orphan checks: an opaque id by due time, and
 *                     the name, sealed
 *   m:<what>, l:<person>     one-time marks and listing rates, with expiries
 *   store:keys, store:spend  hash: name -> text|mac, what outlives a stop;
 *                     store:<kind>:new:<token>, a replace's hash before
 *                     it is renamed over the kind's
 * Persons and marks are keyed by hashes; names are sealed; records carry
 * an HMAC-SHA256 over where they are filed, so that a record copied,
 * altered or written by anyone without the key is ignored.
 *
 * Connections are made on first use in each process, kept in a pool the
 * process's threads share, and dropped when the process is not the one
 * that made them (after a fork). Every call is bounded by the timeout;
 * after a failure no connection is tried for a wait that grows from one
 * second to thirty, and calls meanwhile fail at once.
 *
 * One Redis server, not Redis Cluster: a fill's scripts write many persons'
 * hashes at once, which a cluster refuses across its slots.
 *
 * count is a counter the ledger's own writes keep (record, forget, fill),
 * read in one GET: each record written into Redis by anything else may
 * move it by one. */
#ifndef OKEY_LEDGER_REDIS_H
#define OKEY_LEDGER_REDIS_H

#include "ledger.h"

/* How a Redis ledger reaches its server, from OpenAIKeyLedger. */
typedef struct okey_redis_url_t {
    const char *host;      /* NULL for a unix socket */
    int port;
    const char *path;      /* the unix socket, or NULL */
    int db;
    const char *user;      /* an ACL user from the URL; NULL: the default one */
    const char *password;  /* from the URL; NULL: none */
} okey_redis_url_t;

/* Splits url, redis://[[user]:password@]host[:port][/db] or
 * redis+unix:///path/redis.sock[?db=N]; 0 with *why (never showing the
 * password) when it is neither. */
int okey_redis_url_parse(apr_pool_t *pool, const char *url, okey_redis_url_t *parsed,
                         const char **why);

/* A Redis ledger for url, in pool. password (NULL: the URL's) overrides the
 * URL's; prefix starts every key; mac_key authenticates records; timeout
 * bounds each connection and each exchange. Nothing is connected here.
 * Returns APR_EINVAL with *why when url is not one. */
apr_status_t okey_ledger_redis_create(apr_pool_t *pool, const char *url, const char *password,
                                      const char *prefix, const unsigned char mac_key[32],
                                      apr_interval_time_t timeout, okey_ledger_t **ledger,
                                      const char **why);

/* The exchanges with Redis that ledger (a Redis one) has made, each a
 * round trip: what tests and benchmarks count. 0 for another backend. */
apr_uint64_t okey_ledger_redis_round_trips(const okey_ledger_t *ledger);

#endif
