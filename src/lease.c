/* Leases that lapse by time. */
#include "lease.h"

apr_interval_time_t okey_lease_length(apr_int64_t timeout_seconds)
{
    apr_interval_time_t length = apr_time_from_sec(2 * timeout_seconds + 5);

    if (timeout_seconds < 0 || length < OKEY_LEASE_MIN) {
        length = OKEY_LEASE_MIN;
    }
    return length > OKEY_LEASE_MAX ? OKEY_LEASE_MAX : length;
}

apr_interval_time_t okey_lease_renew_every(apr_interval_time_t length)
{
    return length / 4;
}

int okey_lease_free(apr_time_t expires, apr_time_t now, apr_interval_time_t length)
{
    return expires <= now || expires - now > length + OKEY_LEASE_SKEW;
}
