/* Key lifetimes a person asks for (ttl=8h) and how a page says them. */
#ifndef OKEY_LIFETIME_H
#define OKEY_LIFETIME_H

#include "okey.h"

/* The shortest lifetime anyone may ask for, seconds. */
#define OKEY_LIFETIME_MIN 60

/* Reads text (seconds, or a whole number with s, m, h or d) into *seconds.
 * Anything else, or a lifetime outside OKEY_LIFETIME_MIN..max, is a 400
 * whose message names the allowed range. */
okey_err_t *okey_lifetime_parse(apr_pool_t *pool, const char *text,
                                apr_int64_t max, apr_int64_t *seconds);

/* "8 hours", "1 day 2 hours": the two largest units of seconds. */
const char *okey_lifetime_text(apr_pool_t *pool, apr_int64_t seconds);

#endif
