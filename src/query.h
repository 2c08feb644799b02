/* Query strings parsed without losing repeated names: a callback with two
 * codes or two states must be refused, not resolved to one of them. */
#ifndef OKEY_QUERY_H
#define OKEY_QUERY_H

#include "okey.h"

#define OKEY_QUERY_MAX_PARAMS 64

typedef struct okey_param_t {
    const char *name;
    const char *value;
} okey_param_t;

/* The parameters of query (without the '?'), decoded, in order; NULL with
 * *why set when an escape is malformed, a NUL is encoded, or there are more
 * than OKEY_QUERY_MAX_PARAMS. An empty or NULL query has none. */
apr_array_header_t *okey_query_parse(apr_pool_t *pool, const char *query,
                                     const char **why);

/* The last value of name in params, or NULL; *count says how often name
 * occurs. */
const char *okey_query_get(const apr_array_header_t *params, const char *name,
                           int *count);

#endif
