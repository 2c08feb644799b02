/* Shared helpers of the mod_openaikey library. */
#include "okey.h"

#include <apr_base64.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

okey_err_t *okey_err_make(apr_pool_t *pool, int status, const char *user_msg,
                          const char *log_fmt, ...)
{
    okey_err_t *err = apr_pcalloc(pool, sizeof(*err));
    va_list args;

    va_start(args, log_fmt);
    err->status = status;
    err->user_msg = user_msg;
    err->log_msg = apr_pvsprintf(pool, log_fmt, args);
    va_end(args);
    return err;
}

const char *const okey_endpoint_names[OKEY_ENDPOINT_COUNT] = {
    "none", "discovery", "jwks", "token", "projects", "service_accounts", "usage"
};

const char *const okey_revoked_names[OKEY_REVOKED_COUNT] = {"user", "cap", "policy", "budget",
                                                             "admin"};

const char *const okey_denied_names[OKEY_DENIED_COUNT] = {
    "none", "provider_error", "bad_request", "state", "id_token",
    "email_unverified", "not_allowed", "busy", "budget"
};

void okey_log_at(const char *file, int line, const okey_logger_t *logger,
                 int level, apr_pool_t *pool, const char *fmt, ...)
{
    va_list args;

    if (logger && logger->fn &&
        (!logger->wants || logger->wants(logger->baton, level))) {
        va_start(args, fmt);
        logger->fn(logger->baton, file, line, level, apr_pvsprintf(pool, fmt, args));
        va_end(args);
    }
}

static int token_char(char c)
{
    return apr_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '*' ||
           c == '+' || c == '/' || c == '=';
}

/* Length of the credential that starts at text, or 0. */
static apr_size_t credential_at(const char *text, int word_start)
{
    apr_size_t len = 0;
    apr_size_t run = 0;

    while (token_char(text[run])) {
        run++;
    }
    apr_size_t scheme = !strncasecmp(text, "bearer ", 7) ? 7
                        : (!strncasecmp(text, "basic ", 6) ? 6 : 0);

    if (scheme) {
        while (token_char(text[scheme + len])) {
            len++;
        }
        len = len ? scheme + len : 0;
    }
    else if (word_start && (!strncmp(text, "sk-", 3) || !strncmp(text, "eyJ", 3)) &&
             run >= 8) {
        len = run;
    }
    else if (word_start && run >= 32) {
        len = run; /* a long opaque string: a token or a key */
    }
    return len;
}

const char *okey_scrub(apr_pool_t *pool, const char *text)
{
    apr_size_t n = text ? strlen(text) : 0;
    char *out = apr_palloc(pool, n * 2 + 16);
    apr_size_t i = 0;
    apr_size_t o = 0;

    while (text && text[i]) {
        int word_start = i == 0 || !token_char(text[i - 1]);
        apr_size_t len = credential_at(text + i, word_start);

        if (len) {
            memcpy(out + o, "[redacted]", 10);
            o += 10;
            i += len;
        }
        else {
            out[o++] = text[i++];
        }
    }
    out[o] = '\0';
    return text ? out : NULL;
}

/* Every pair of base64url characters, in order: twelve bits to two
 * characters in one lookup, which halves the login redirect's encoding. */
#define B64_ROW(c) \
    c "A" c "B" c "C" c "D" c "E" c "F" c "G" c "H" c "I" c "J" c "K" c "L" c "M" \
    c "N" c "O" c "P" c "Q" c "R" c "S" c "T" c "U" c "V" c "W" c "X" c "Y" c "Z" \
    c "a" c "b" c "c" c "d" c "e" c "f" c "g" c "h" c "i" c "j" c "k" c "l" c "m" \
    c "n" c "o" c "p" c "q" c "r" c "s" c "t" c "u" c "v" c "w" c "x" c "y" c "z" \
    c "0" c "1" c "2" c "3" c "4" c "5" c "6" c "7" c "8" c "9" c "-" c "_"
static const char B64URL_PAIRS[] =
    B64_ROW("A") B64_ROW("B") B64_ROW("C") B64_ROW("D") B64_ROW("E") B64_ROW("F")
    B64_ROW("G") B64_ROW("H") B64_ROW("I") B64_ROW("J") B64_ROW("K") B64_ROW("L")
    B64_ROW("M") B64_ROW("N") B64_ROW("O") B64_ROW("P") B64_ROW("Q") B64_ROW("R")
    B64_ROW("S") B64_ROW("T") B64_ROW("U") B64_ROW("V") B64_ROW("W") B64_ROW("X")
    B64_ROW("Y") B64_ROW("Z") B64_ROW("a") B64_ROW("b") B64_ROW("c") B64_ROW("d")
    B64_ROW("e") B64_ROW("f") B64_ROW("g") B64_ROW("h") B64_ROW("i") B64_ROW("j")
    B64_ROW("k") B64_ROW("l") B64_ROW("m") B64_ROW("n") B64_ROW("o") B64_ROW("p")
    B64_ROW("q") B64_ROW("r") B64_ROW("s") B64_ROW("t") B64_ROW("u") B64_ROW("v")
    B64_ROW("w") B64_ROW("x") B64_ROW("y") B64_ROW("z") B64_ROW("0") B64_ROW("1")
    B64_ROW("2") B64_ROW("3") B64_ROW("4") B64_ROW("5") B64_ROW("6") B64_ROW("7")
    B64_ROW("8") B64_ROW("9") B64_ROW("-") B64_ROW("_");
#undef B64_ROW

char *okey_b64url_encode_into(char *out, const unsigned char *data, apr_size_t len)
{
    char *dst = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        apr_uint32_t bits = (apr_uint32_t)data[i] << 16 | (apr_uint32_t)data[i + 1] << 8 |
                            data[i + 2];

        memcpy(dst, B64URL_PAIRS + 2 * (bits >> 12), 2);
        memcpy(dst + 2, B64URL_PAIRS + 2 * (bits & 0xFFF), 2);
        dst += 4;
    }
    if (i < len) {
        apr_uint32_t bits = (apr_uint32_t)data[i] << 16 |
                            (i + 1 < len ? (apr_uint32_t)data[i + 1] << 8 : 0);

        memcpy(dst, B64URL_PAIRS + 2 * (bits >> 12), 2);
        dst += 2;
        if (i + 1 < len) {
            *dst++ = B64URL_PAIRS[2 * ((bits >> 6) & 63) + 1];
        }
    }
    *dst = '\0';
    return dst;
}

const char *okey_b64url_encode(apr_pool_t *pool, const unsigned char *data,
                               apr_size_t len)
{
    char *out = apr_palloc(pool, (len + 2) / 3 * 4 + 1);

    okey_b64url_encode_into(out, data, len);
    return out;
}

/* Each base64url character's six bits; 64 for any other byte. */
static const unsigned char B64URL_VALUE[256] = {
#define X64 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
    X64, X64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 63,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    X64, X64, X64, X64, X64, X64, X64, X64,
#undef X64
};

unsigned char *okey_b64url_decoden(apr_pool_t *pool, const char *text, apr_size_t text_len,
                                   apr_size_t *len)
{
    unsigned char *out = apr_palloc(pool, text_len * 3 / 4 + 1);
    apr_uint32_t bits = 0;
    apr_size_t i;
    int held = 0;
    int ok = text_len % 4 != 1;

    *len = 0;
    for (i = 0; i < text_len && ok; i++) {
        unsigned char value = B64URL_VALUE[(unsigned char)text[i]];

        ok = value < 64;
        bits = bits << 6 | (apr_uint32_t)(value & 63);
        held += 6;
        if (held >= 8) {
            held -= 8;
            out[(*len)++] = (unsigned char)(bits >> held);
        }
    }
    out[*len] = '\0';
    return ok ? out : NULL;
}

unsigned char *okey_b64url_decode(apr_pool_t *pool, const char *text, apr_size_t *len)
{
    return okey_b64url_decoden(pool, text, strlen(text), len);
}

okey_err_t *okey_random_b64url(apr_pool_t *pool, apr_size_t len,
                               const char **out)
{
    unsigned char *bytes = apr_palloc(pool, len);
    apr_status_t rv = apr_generate_random_bytes(bytes, len);

    *out = NULL;
    if (rv != APR_SUCCESS) {
        return okey_err_make(pool, 500, "The server could not start a sign-in.",
                             "no random bytes from the system (%d)", rv);
    }
    *out = okey_b64url_encode(pool, bytes, len);
    return NULL;
}

void okey_sha256(const void *data, apr_size_t len, unsigned char out[32])
{
    unsigned int out_len = 32;

    EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL);
}

static apr_status_t json_release(void *json)
{
    json_decref(json);
    return APR_SUCCESS;
}

json_t *okey_json_own(apr_pool_t *pool, json_t *json)
{
    if (json) {
        apr_pool_cleanup_register(pool, json, json_release,
                                  apr_pool_cleanup_null);
    }
    return json;
}

const char *okey_json_dump(apr_pool_t *pool, const json_t *json)
{
    char *text = json_dumps(json, JSON_COMPACT);
    const char *copy = text ? apr_pstrdup(pool, text) : NULL;

    free(text);
    return copy;
}

const char *okey_json_str(const json_t *obj, const char *name)
{
    const json_t *value = json_is_object(obj) ? json_object_get(obj, name) : NULL;

    return json_is_string(value) ? json_string_value(value) : NULL;
}

int okey_cookie_next(const char **cursor, okey_cookie_t *cookie)
{
    const char *at = *cursor;
    const char *end;
    const char *eq;

    while (*at == ';' || *at == ' ' || *at == '\t') {
        at++;
    }
    end = at + strcspn(at, ";");
    eq = memchr(at, '=', (apr_size_t)(end - at));
    cookie->name = at;
    cookie->name_len = (apr_size_t)((eq ? eq : end) - at);
    cookie->value = eq ? eq + 1 : NULL;
    cookie->value_len = eq ? (apr_size_t)(end - eq - 1) : 0;
    *cursor = end;
    return at != end;
}

const char *okey_form_escape(apr_pool_t *pool, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    apr_size_t len = strlen(value);
    char *out = apr_palloc(pool, len * 3 + 1);
    char *dst = out;
    const unsigned char *src;

    for (src = (const unsigned char *)value; *src; src++) {
        if (apr_isalnum(*src) || strchr("-._~", *src)) {
            *dst++ = (char)*src;
        }
        else {
            *dst++ = '%';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 15];
        }
    }
    *dst = '\0';
    return out;
}

const char *okey_iso8601(apr_pool_t *pool, apr_int64_t unix_seconds)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, apr_time_from_sec(unix_seconds));
    return apr_psprintf(pool, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int okey_strieq(const char *a, const char *b)
{
    return a && b && strcasecmp(a, b) == 0;
}

char *okey_lower(apr_pool_t *pool, const char *text)
{
    char *lower = apr_pstrdup(pool, text);
    char *c;

    for (c = lower; *c; c++) {
        *c = (char)apr_tolower(*c);
    }
    return lower;
}

const char *okey_strip_slashes(apr_pool_t *pool, const char *url)
{
    apr_size_t len = url ? strlen(url) : 0;

    while (len > 0 && url[len - 1] == '/') {
        len--;
    }
    return url ? apr_pstrndup(pool, url, len) : NULL;
}

apr_int64_t okey_now(void)
{
    return (apr_int64_t)apr_time_sec(apr_time_now());
}

static apr_status_t destroy_pool(void *pool)
{
    apr_pool_destroy(pool);
    return APR_SUCCESS;
}

struct okey_idle_t {
    apr_thread_mutex_t *mutex;
    okey_idle_free_fn *free_item;
    int capacity;
    int count;
    void **items;
};

static apr_status_t idle_cleanup(void *data)
{
    okey_idle_t *idle = data;

    while (idle->count > 0) {
        idle->free_item(idle->items[--idle->count]);
    }
    return APR_SUCCESS;
}

okey_idle_t *okey_idle_create(apr_pool_t *pool, int capacity, okey_idle_free_fn *free_item)
{
    okey_idle_t *idle = apr_pcalloc(pool, sizeof(*idle));

    apr_thread_mutex_create(&idle->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    idle->free_item = free_item;
    idle->capacity = capacity;
    idle->items = apr_pcalloc(pool, sizeof(*idle->items) * (apr_size_t)capacity);
    apr_pool_cleanup_register(pool, idle, idle_cleanup, apr_pool_cleanup_null);
    return idle;
}

void *okey_idle_take(okey_idle_t *idle)
{
    void *item = NULL;

    apr_thread_mutex_lock(idle->mutex);
    if (idle->count > 0) {
        item = idle->items[--idle->count];
    }
    apr_thread_mutex_unlock(idle->mutex);
    return item;
}

void okey_idle_give_back(okey_idle_t *idle, void *item)
{
    void *surplus = item;

    apr_thread_mutex_lock(idle->mutex);
    if (idle->count < idle->capacity) {
        idle->items[idle->count++] = item;
        surplus = NULL;
    }
    apr_thread_mutex_unlock(idle->mutex);
    if (surplus) {
        idle->free_item(surplus);
    }
}

apr_pool_t *okey_pool_for_threads(apr_pool_t *parent)
{
    apr_allocator_t *allocator = NULL;
    apr_thread_mutex_t *mutex = NULL;
    apr_pool_t *pool = NULL;

    apr_allocator_create(&allocator);
    apr_pool_create_unmanaged_ex(&pool, NULL, allocator);
    apr_allocator_owner_set(allocator, pool);
    apr_thread_mutex_create(&mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    apr_allocator_mutex_set(allocator, mutex);
    apr_pool_cleanup_register(parent, pool, destroy_pool, apr_pool_cleanup_null);
    return pool;
}

static int b64url_decodable(const char *text, apr_size_t len)
{
    apr_size_t i;
    int ok = len % 4 != 1;

    for (i = 0; i < len && ok; i++) {
        ok = B64URL_VALUE[(unsigned char)text[i]] < 64;
    }
    return ok;
}

int okey_jose_compact_ok(const char *text, int segments, apr_size_t *lens)
{
    int found = 0;
    int ok = text != NULL;

    while (ok && found < segments) {
        apr_size_t len = strcspn(text, ".");

        ok = b64url_decodable(text, len);
        if (lens) {
            lens[found] = len;
        }
        found++;
        text += len;
        ok = ok && (found == segments ? *text == '\0' : *text == '.');
        text += *text == '.';
    }
    return ok && found == segments;
}

int okey_jwk_decodable(const json_t *jwk)
{
    static const char *const members[] = {"n", "e", "x", "y", "d", "p", "q",
                                          "dp", "dq", "qi", "k"};
    apr_size_t i;
    int ok = json_is_object(jwk);

    for (i = 0; ok && i < sizeof(members) / sizeof(members[0]); i++) {
        const json_t *value = json_object_get(jwk, members[i]);

        ok = !value || (json_is_string(value) &&
                        b64url_decodable(json_string_value(value),
                                         json_string_length(value)));
    }
    return ok;
}

int okey_rate_take(okey_rate_t *rate, apr_time_t now, int burst, apr_interval_time_t refill,
                   apr_int64_t *retry_after)
{
    double earned = rate->last && now > rate->last
                    ? (double)(now - rate->last) / (double)refill : 0;
    double tokens = rate->last ? rate->tokens + earned : burst;
    apr_int64_t short_by;
    int allowed;

    tokens = tokens > burst ? burst : tokens;
    allowed = tokens >= 1;
    rate->tokens = allowed ? tokens - 1 : tokens;
    rate->last = now > rate->last ? now : rate->last;
    /* To the microsecond, then up to whole seconds. */
    short_by = allowed ? 0 : (apr_int64_t)((1 - tokens) * (double)refill + 0.5);
    *retry_after = (short_by + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC;
    return allowed;
}
