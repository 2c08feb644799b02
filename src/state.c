/* The sign-in state and its cookies, sealed with jose.c. */
#include "state.h"

#include <apr_strings.h>
#include <string.h>

static const char STATE_ERROR[] =
    "This sign-in link is no longer valid. Please start again.";

okey_err_t *okey_state_new(apr_pool_t *pool, apr_time_t now,
                           okey_state_t **state)
{
    okey_state_t *made = apr_pcalloc(pool, sizeof(*made));
    apr_size_t len = 3 * OKEY_STATE_TOKEN_BYTES + OKEY_STATE_IV_BYTES;
    unsigned char *bytes = apr_palloc(pool, len);
    okey_err_t *err = NULL;

    /* One draw for all four values; none is derived from another. */
    if (apr_generate_random_bytes(bytes, len) != APR_SUCCESS) {
        err = okey_err_make(pool, 500, "The server could not start a sign-in.",
                            "no random bytes from the system");
    }
    else {
        made->state = okey_b64url_encode(pool, bytes, OKEY_STATE_TOKEN_BYTES);
        made->nonce = okey_b64url_encode(pool, bytes + OKEY_STATE_TOKEN_BYTES,
                                         OKEY_STATE_TOKEN_BYTES);
        made->verifier = okey_b64url_encode(pool, bytes + 2 * OKEY_STATE_TOKEN_BYTES,
                                            OKEY_STATE_TOKEN_BYTES);
        memcpy(made->iv, bytes + 3 * OKEY_STATE_TOKEN_BYTES, OKEY_STATE_IV_BYTES);
        made->created = apr_time_as_msec(now);
    }
    *state = err ? NULL : made;
    return err;
}

const char *okey_state_challenge(apr_pool_t *pool, const okey_state_key_t *key,
                                 const char *verifier)
{
    unsigned char digest[32];

    return okey_state_key_sha256(key, verifier, digest)
               ? okey_b64url_encode(pool, digest, sizeof(digest)) : NULL;
}

okey_err_t *okey_state_seal(apr_pool_t *pool, const okey_state_key_t *key,
                            const okey_state_t *state, const char **sealed)
{
    /* The values are base64url or numbers and need no JSON escaping. */
    /* A profile's path is carried base64url-encoded: any bytes, no escaping. */
    const char *plain = apr_pstrcat(
        pool, "{\"s\":\"", state->state, "\",\"n\":\"", state->nonce, "\",\"v\":\"",
        state->verifier, "\",\"t\":", apr_off_t_toa(pool, state->created), ",\"l\":",
        apr_off_t_toa(pool, state->ttl), ",\"x\":", state->next_keys ? "1" : "0",
        state->profile ? ",\"p\":\"" : "",
        state->profile ? okey_b64url_encode(pool, (const unsigned char *)state->profile,
                                            strlen(state->profile)) : "",
        state->profile ? "\"" : "",
        state->cli_key ? apr_psprintf(pool, ",\"c\":%d,\"kn\":\"%s\",\"ke\":\"%s\"",
                                      state->cli_port, state->cli_key->n,
                                      state->cli_key->e) : "",
        "}", NULL);
    okey_err_t *err = okey_seal(pool, key, plain, state->iv, sealed);

    if (err) {
        err->user_msg = "The server could not start a sign-in.";
    }
    return err;
}

/* The path a sealed base64url value holds; NULL when there is none, or it
 * is not a path. */
static const char *profile_path(apr_pool_t *pool, const char *encoded)
{
    apr_size_t len = 0;
    const char *path = encoded ? (const char *)okey_b64url_decode(pool, encoded, &len) : NULL;

    return (path && path[0] == '/' && strlen(path) == len) ? path : NULL;
}

/* The helper a sign-in reports to, when it has one; its port is -1 when
 * what is there is not whole. The values are the login's, checked there. */
static void cli_from_json(apr_pool_t *pool, const json_t *claims, okey_state_t *state)
{
    const json_t *port = json_object_get(claims, "c");
    const char *n = okey_json_str(claims, "kn");
    const char *e = okey_json_str(claims, "ke");

    if (port || n || e) {
        state->cli_port = json_is_integer(port) && n && e ? (int)json_integer_value(port) : -1;
    }
    if (state->cli_port > 0) {
        state->cli_key = apr_pcalloc(pool, sizeof(*state->cli_key));
        state->cli_key->n = n;
        state->cli_key->e = e;
    }
}

static okey_state_t *state_from_json(apr_pool_t *pool, const json_t *claims)
{
    okey_state_t *state = apr_pcalloc(pool, sizeof(*state));
    const json_t *created = json_object_get(claims, "t");
    const json_t *ttl = json_object_get(claims, "l");
    const json_t *next_keys = json_object_get(claims, "x");

    state->state = okey_json_str(claims, "s");
    state->nonce = okey_json_str(claims, "n");
    state->verifier = okey_json_str(claims, "v");
    state->created = json_is_integer(created) ? json_integer_value(created) : -1;
    /* Cookies sealed before lifetimes existed carry none: the default. */
    state->ttl = !ttl ? 0 : json_is_integer(ttl) ? json_integer_value(ttl) : -1;
    state->next_keys = json_is_integer(next_keys) && json_integer_value(next_keys) == 1;
    state->profile = profile_path(pool, okey_json_str(claims, "p"));
    cli_from_json(pool, claims, state);
    if (state->ttl < 0 || state->cli_port < 0 || !state->state || !state->nonce ||
        !state->verifier || state->created < 0) {
        state = NULL;
    }
    return state;
}

okey_err_t *okey_state_open(apr_pool_t *pool, const okey_state_key_t *key,
                            const char *sealed, apr_time_t now,
                            okey_state_t **state)
{
    apr_int64_t now_ms = apr_time_as_msec(now);
    const char *plain = okey_unseal(pool, key, sealed);
    json_t *claims = plain ? okey_json_parse(pool, plain, strlen(plain), NULL) : NULL;
    okey_state_t *opened = claims ? state_from_json(pool, claims) : NULL;
    okey_err_t *err = NULL;

    if (!plain) {
        err = okey_err_make(pool, 400, STATE_ERROR,
                            "state cookie does not decrypt with this server's key");
    }
    else if (!opened) {
        err = okey_err_make(pool, 400, STATE_ERROR, "state cookie is malformed");
    }
    else if (now_ms - opened->created > OKEY_STATE_LIFETIME * APR_INT64_C(1000) ||
             opened->created > now_ms + 60000) {
        err = okey_err_make(pool, 400, STATE_ERROR,
                            "state cookie expired (created %" APR_INT64_T_FMT
                            " s ago)", (now_ms - opened->created) / 1000);
        opened = NULL;
    }
    if (err) {
        err->denied = OKEY_DENIED_STATE;
    }
    *state = opened;
    return err;
}

int okey_state_token_valid(const char *token)
{
    apr_size_t len = token ? strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "abcdefghijklmnopqrstuvwxyz"
                                           "0123456789-_") : 0;

    return token && token[len] == '\0' && len >= 16 && len <= 128;
}

const char *okey_state_cookie_prefix(int secure)
{
    return secure ? "__Host-" OKEY_STATE_COOKIE_PREFIX : OKEY_STATE_COOKIE_PREFIX;
}

apr_array_header_t *okey_state_cookies(apr_pool_t *pool, const char *header,
                                       int secure)
{
    const char *prefix = okey_state_cookie_prefix(secure);
    apr_size_t prefix_len = strlen(prefix);
    apr_array_header_t *cookies =
        apr_array_make(pool, 4, sizeof(okey_state_cookie_t));
    const char *cursor = header ? header : "";
    okey_cookie_t pair;

    /* Only names this module could have set count, and no more than a
     * bound of them: junk cookies must not cost a decryption each. */
    while (cookies->nelts < OKEY_STATE_MAX_SEEN && okey_cookie_next(&cursor, &pair)) {
        const char *name = pair.value && pair.name_len > prefix_len &&
                           !memcmp(pair.name, prefix, prefix_len)
                           ? apr_pstrmemdup(pool, pair.name, pair.name_len) : NULL;

        if (name && okey_state_token_valid(name + prefix_len)) {
            okey_state_cookie_t *cookie = apr_array_push(cookies);

            cookie->name = name;
            cookie->value = apr_pstrmemdup(pool, pair.value, pair.value_len);
        }
    }
    return cookies;
}

#define STR(x) #x
#define XSTR(x) STR(x)

const char *okey_state_set_cookie(apr_pool_t *pool, const char *name,
                                  const char *sealed, int secure)
{
    /* Expires beside Max-Age for clients that only know the former. */
    return apr_pstrcat(pool, name, "=", sealed ? sealed : "", "; Path=/; Max-Age=",
                       sealed ? XSTR(OKEY_STATE_LIFETIME) ";"
                              : "0; Expires=Thu, 01 Jan 1970 00:00:00 GMT;",
                       " HttpOnly; SameSite=Lax", secure ? "; Secure" : "", NULL);
}

apr_array_header_t *okey_state_cookies_to_drop(apr_pool_t *pool,
                                               const okey_state_key_t *key,
                                               const apr_array_header_t *cookies,
                                               apr_time_t now)
{
    apr_array_header_t *drop = apr_array_make(pool, 4, sizeof(const char *));
    apr_int64_t *created = apr_pcalloc(pool, sizeof(*created) * (cookies->nelts + 1));
    int excess = cookies->nelts - (OKEY_STATE_MAX_COOKIES - 1);
    int i;

    for (i = 0; i < cookies->nelts; i++) {
        const okey_state_cookie_t *cookie =
            &APR_ARRAY_IDX(cookies, i, okey_state_cookie_t);
        okey_state_t *state = NULL;

        created[i] = okey_state_open(pool, key, cookie->value, now, &state)
                         ? -1 : state->created;
    }
    /* Repeatedly drop the oldest; -1 (unreadable) sorts first. */
    for (; excess > 0; excess--) {
        int oldest = -1;

        for (i = 0; i < cookies->nelts; i++) {
            if (created[i] != APR_INT64_MAX &&
                (oldest < 0 || created[i] < created[oldest])) {
                oldest = i;
            }
        }
        APR_ARRAY_PUSH(drop, const char *) =
            APR_ARRAY_IDX(cookies, oldest, okey_state_cookie_t).name;
        created[oldest] = APR_INT64_MAX;
    }
    for (i = 0; i < cookies->nelts; i++) {
        if (created[i] == -1) {
            APR_ARRAY_PUSH(drop, const char *) =
                APR_ARRAY_IDX(cookies, i, okey_state_cookie_t).name;
        }
    }
    return drop;
}
