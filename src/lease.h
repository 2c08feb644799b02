/* Leases: a claim that lapses by time unless its holder renews it, so that
 * a holder that died, or lives on without doing its work, cannot keep what
 * it claimed. No clock or process is read here. */
#ifndef OKEY_LEASE_H
#define OKEY_LEASE_H

#include <apr_time.h>

/* The shortest and longest lease, whatever the timeout. */
#define OKEY_LEASE_MIN apr_time_from_sec(5)
#define OKEY_LEASE_MAX apr_time_from_sec(120)
/* How far apart two claimants may read the clock: the one that read it
 * first may ask last, and then sees the lease end, and the last reap begin,
 * up to this much further ahead than they could. A lease or reap further
 * ahead than that is taken for a clock set back. */
#define OKEY_LEASE_SKEW apr_time_from_sec(1)

/* How long a reap lease lasts from its last renewal, for upstream calls of
 * timeout_seconds: two timeouts and five seconds, within the bounds above. */
apr_interval_time_t okey_lease_length(apr_int64_t timeout_seconds);

/* How often the holder renews it: four times per length, so that a holder
 * that is merely slow to be scheduled does not lose it. */
apr_interval_time_t okey_lease_renew_every(apr_interval_time_t length);

/* Whether a lease that lasts until expires (0: never taken) may be taken
 * at now. One that ends further ahead than a lease can last was taken
 * under a clock since set back: it is free too. */
int okey_lease_free(apr_time_t expires, apr_time_t now, apr_interval_time_t length);

#endif
