/* The one place that speaks HTTP to upstream services, through libcurl. */
#ifndef OKEY_HTTP_H
#define OKEY_HTTP_H

#include "okey.h"

#include <apr_thread_mutex.h>

/* Curl handles of one process, kept for keep-alive and handed to one thread
 * at a time. Never carried across fork: create it in the child. */
typedef struct okey_http_t okey_http_t;

typedef struct okey_http_request_t {
    const char *method;        /* GET, POST, DELETE */
    const char *url;
    const char *authorization; /* whole Authorization header value, or NULL */
    const char *content_type;  /* of body, or NULL */
    const char *body;          /* or NULL */
    apr_size_t body_len;
} okey_http_request_t;

typedef struct okey_http_response_t {
    int status;                /* 0 when no response arrived */
    const char *body;          /* NUL-terminated */
    apr_size_t body_len;
    apr_int64_t retry_after;   /* seconds from Retry-After, -1 when absent */
    apr_int64_t max_age;       /* Cache-Control max-age, -1 when absent */
    double seconds;            /* time the request took */
} okey_http_response_t;

typedef struct okey_http_options_t {
    long timeout_seconds;
    const char *ca_file;       /* NULL: the system bundle */
    /* When set and nonzero, transfers in flight abort within 100 ms: a
     * stopping thread must not wait out a timeout. NULL: never. */
    volatile const int *cancel;
} okey_http_options_t;

/* Must run once in the parent before any thread exists. */
void okey_http_global_init(void);

okey_http_t *okey_http_create(apr_pool_t *pool, const okey_http_options_t *opts);

/* Performs one request. Transport failures come back as errors with status
 * 504 (timeout) or 502 (anything else); any HTTP answer is a response. A
 * POST is sent at most once: it goes on a new connection, never one kept
 * alive, which libcurl would resend it on if it closed unanswered. */
okey_err_t *okey_http_perform(okey_http_t *http, apr_pool_t *pool,
                              const okey_http_request_t *req,
                              okey_http_response_t *resp);

/* Performs n requests with at most parallel in flight at once. Each
 * request gets either a response or an error, as okey_http_perform. */
void okey_http_perform_many(okey_http_t *http, apr_pool_t *pool,
                            const okey_http_request_t *reqs, int n, int parallel,
                            okey_http_response_t *resps, okey_err_t **errs);

#endif
