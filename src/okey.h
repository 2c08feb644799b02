/* Shared types of the mod_openaikey library: errors, encodings, JSON ownership.
 * Nothing here includes httpd headers. */
#ifndef OKEY_H
#define OKEY_H

#include <apr_time.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <jansson.h>

/* The Makefile passes the version, read from debian/changelog. */
#ifndef OKEY_VERSION
#error "OKEY_VERSION is not defined: build with make, which reads it from debian/changelog"
#endif

/* A failure as the person and the administrator see it: the HTTP status
 * the handler answers, a sentence safe to show on a page, and the cause
 * for the error log. Neither text may carry a secret. */
typedef struct okey_err_t {
    int status;
    const char *user_msg;
    const char *log_msg;
    int endpoint;        /* okey_endpoint_e of a failed upstream call */
    int upstream_status; /* what that upstream answered; 0: no answer */
    int denied;          /* okey_denied_e of a refused sign-in */
    apr_int64_t retry_after; /* seconds to tell the person to wait; 0: none */
    int no_answer;       /* the request went out and no answer came back */
} okey_err_t;

/* The upstream endpoints whose failures are counted apart. */
typedef enum {
    OKEY_ENDPOINT_NONE,
    OKEY_ENDPOINT_DISCOVERY,
    OKEY_ENDPOINT_JWKS,
    OKEY_ENDPOINT_TOKEN,
    OKEY_ENDPOINT_PROJECTS,
    OKEY_ENDPOINT_SERVICE_ACCOUNTS,
    OKEY_ENDPOINT_USAGE,  /* API-key listings, usage and costs */
    OKEY_ENDPOINT_COUNT
} okey_endpoint_e;

/* Why a sign-in was refused. */
typedef enum {
    OKEY_DENIED_NONE,
    OKEY_DENIED_PROVIDER_ERROR, /* the provider answered error= */
    OKEY_DENIED_BAD_REQUEST,    /* malformed or repeated parameters */
    OKEY_DENIED_STATE,          /* missing, expired or foreign state cookie */
    OKEY_DENIED_ID_TOKEN,       /* the ID token failed a check */
    OKEY_DENIED_EMAIL_UNVERIFIED,
    OKEY_DENIED_NOT_ALLOWED,
    OKEY_DENIED_BUSY,           /* no upstream place left in the child */
    OKEY_DENIED_BUDGET,         /* at or over the budget */
    OKEY_DENIED_COUNT
} okey_denied_e;

extern const char *const okey_endpoint_names[OKEY_ENDPOINT_COUNT];
extern const char *const okey_denied_names[OKEY_DENIED_COUNT];

/* Who had a live key deleted before its expiry. */
typedef enum {
    OKEY_REVOKED_USER,   /* its holder, through My keys */
    OKEY_REVOKED_CAP,    /* a newer key of the address, past the cap */
    OKEY_REVOKED_POLICY, /* the reaper: the policy no longer allows the address */
    OKEY_REVOKED_BUDGET, /* the reaper: the owner is at or over their budget */
    OKEY_REVOKED_ADMIN,  /* an administrator, through the admin console */
    OKEY_REVOKED_COUNT
} okey_revoked_by_e;

extern const char *const okey_revoked_names[OKEY_REVOKED_COUNT];

okey_err_t *okey_err_make(apr_pool_t *pool, int status, const char *user_msg,
                          const char *log_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Log levels of the library, mapped onto httpd's by the glue. */
typedef enum {
    OKEY_LOG_ERR = 3,
    OKEY_LOG_WARNING = 4,
    OKEY_LOG_NOTICE = 5,
    OKEY_LOG_INFO = 6,
    OKEY_LOG_DEBUG = 7
} okey_log_level_e;

typedef void okey_log_fn(void *baton, const char *file, int line, int level,
                         const char *msg);
/* Whether a line of level would be written at all. */
typedef int okey_log_wants_fn(void *baton, int level);

typedef struct okey_logger_t {
    okey_log_fn *fn;
    okey_log_wants_fn *wants; /* NULL: every level */
    void *baton;
} okey_logger_t;

/* Logs a line with the caller's file and line; nothing is formatted when
 * the level is filtered out. Every format starts with a message id,
 * OKEY_LOGNO(n). */
#define okey_log(logger, level, pool, ...) \
    okey_log_at(__FILE__, __LINE__, logger, level, pool, __VA_ARGS__)
void okey_log_at(const char *file, int line, const okey_logger_t *logger,
                 int level, apr_pool_t *pool, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* A stable message id, for the library and the glue alike. */
#define OKEY_LOGNO(n) "OKEY" #n ": "

/* text with anything shaped like an API key, a bearer token or a JWT
 * replaced by a marker: upstream text may echo credentials. */
const char *okey_scrub(apr_pool_t *pool, const char *text);

/* base64url without padding (RFC 7515 section 2). */
const char *okey_b64url_encode(apr_pool_t *pool, const unsigned char *data,
                               apr_size_t len);
/* The same written at out, which has room for (len + 2) / 3 * 4 + 1
 * bytes; returns where its terminating NUL is. */
char *okey_b64url_encode_into(char *out, const unsigned char *data, apr_size_t len);

/* The bytes base64url text (no padding) holds, NUL-terminated for
 * convenience, or NULL when text is not base64url. */
unsigned char *okey_b64url_decode(apr_pool_t *pool, const char *text, apr_size_t *len);
/* The same for the text_len bytes at text. */
unsigned char *okey_b64url_decoden(apr_pool_t *pool, const char *text, apr_size_t text_len,
                                   apr_size_t *len);

/* len random bytes from the system's generator, base64url encoded. */
okey_err_t *okey_random_b64url(apr_pool_t *pool, apr_size_t len,
                               const char **out);

void okey_sha256(const void *data, apr_size_t len, unsigned char out[32]);

/* A bounded stack of idle objects that threads take and give back (curl
 * handles, cipher contexts): the steady state then makes none. Its own
 * mutex guards it; what it holds the caller frees when it is cleared. */
typedef struct okey_idle_t okey_idle_t;
typedef void okey_idle_free_fn(void *item);

/* An empty stack of at most capacity items; free_item frees those it
 * still holds when pool is cleared. */
okey_idle_t *okey_idle_create(apr_pool_t *pool, int capacity, okey_idle_free_fn *free_item);
/* The item given back last, or NULL when none waits. */
void *okey_idle_take(okey_idle_t *idle);
/* Keeps item for a later take; frees it with free_item when full. */
void okey_idle_give_back(okey_idle_t *idle, void *item);

/* Jansson values whose reference the pool drops when it is cleared. */
json_t *okey_json_own(apr_pool_t *pool, json_t *json);
/* An object or array from len bytes of strict JSON (src/json.c), owned by
 * pool; NULL, with *error saying what and where when error is given. No
 * duplicate names, no U+0000, at most OKEY_JSON_MAX_DEPTH containers deep. */
#define OKEY_JSON_MAX_DEPTH 64
json_t *okey_json_parse(apr_pool_t *pool, const char *text, apr_size_t len,
                        const char **error);
/* A JSON value serialised into the pool. */
const char *okey_json_dump(apr_pool_t *pool, const json_t *json);

/* text as a JSON string literal, quotes included; NULL when text is not
 * UTF-8 (src/json.c). */
const char *okey_json_quote(apr_pool_t *pool, const char *text);

/* One "name=value" pair of a Cookie header; value is NULL for a pair
 * without '='. Neither is NUL-terminated. */
typedef struct {
    const char *name;
    apr_size_t name_len;
    const char *value;
    apr_size_t value_len;
} okey_cookie_t;

/* The next pair at *cursor (a Cookie header, or what is left of it),
 * moving *cursor past it; 0 at the end. Empty pairs are skipped. */
int okey_cookie_next(const char **cursor, okey_cookie_t *cookie);

/* The string member name of obj, or NULL when absent or not a string. */
const char *okey_json_str(const json_t *obj, const char *name);

/* Application/x-www-form-urlencoded encoding of one value. */
const char *okey_form_escape(apr_pool_t *pool, const char *value);

/* ISO 8601 UTC rendering of Unix seconds, e.g. 2026-11-26T14:00:00Z. */
const char *okey_iso8601(apr_pool_t *pool, apr_int64_t unix_seconds);

/* Case-insensitive ASCII comparison of two whole strings. */
int okey_strieq(const char *a, const char *b);

/* An ASCII lower-case copy of text. */
char *okey_lower(apr_pool_t *pool, const char *text);

/* url without its trailing slashes, so that paths can be appended. */
const char *okey_strip_slashes(apr_pool_t *pool, const char *url);

/* Whether text is a JOSE compact serialisation of exactly segments parts,
 * each base64url that cjose can decode: its decoder aborts the process on a
 * part whose length leaves a remainder of 1 when divided by 4. When lens
 * is not NULL it receives each part's length. */
int okey_jose_compact_ok(const char *text, int segments, apr_size_t *lens);

/* Whether every base64url member of a JWK (n, e, x, y, d, k...) is one
 * cjose can decode. */
int okey_jwk_decodable(const json_t *jwk);

/* A pool that threads may create sub-pools of at once: its own allocator,
 * guarded by a mutex. Destroyed with parent. */
apr_pool_t *okey_pool_for_threads(apr_pool_t *parent);

/* The current time in Unix seconds. */
apr_int64_t okey_now(void);

/* A token bucket: burst requests at once, then one per refill. */
typedef struct okey_rate_t {
    double tokens;
    apr_time_t last;  /* 0: never used, full */
} okey_rate_t;

/* Takes one request from rate at now: 1 when it may go, else 0 with
 * *retry_after the whole seconds until it may. */
int okey_rate_take(okey_rate_t *rate, apr_time_t now, int burst, apr_interval_time_t refill,
                   apr_int64_t *retry_after);

#endif
