/* Session cookies and CSRF tokens. */
#include "session.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <string.h>

#define SESSION_ID_BYTES 18
#define CSRF_LABEL "mod_openaikey csrf v1"
#define ISSUE_LABEL "mod_openaikey issue v1"

okey_err_t *okey_session_new(apr_pool_t *pool, const char *email,
                             const char *issuer, const char *subject,
                             apr_int64_t now, apr_int64_t lifetime,
                             okey_session_t **session)
{
    okey_session_t *made = apr_pcalloc(pool, sizeof(*made));
    okey_err_t *err = okey_random_b64url(pool, SESSION_ID_BYTES, &made->id);

    made->email = okey_lower(pool, email);
    made->issuer = issuer;
    made->subject = subject ? subject : "";
    made->issued = now;
    made->expires = now + lifetime;
    *session = err ? NULL : made;
    return err;
}

okey_err_t *okey_session_seal(apr_pool_t *pool, const okey_state_key_t *key,
                              const okey_session_t *session, const char **sealed)
{
    const char *email = okey_json_quote(pool, session->email);
    const char *issuer = okey_json_quote(pool, session->issuer);
    const char *subject = okey_json_quote(pool, session->subject);
    /* The id is base64url and the times numbers: nothing to escape. */
    const char *plain = email && issuer && subject
        ? apr_pstrcat(pool, "{\"email\":", email, ",\"iss\":", issuer, ",\"sub\":", subject,
                      ",\"sid\":\"", session->id, "\",\"iat\":",
                      apr_off_t_toa(pool, session->issued), ",\"exp\":",
                      apr_off_t_toa(pool, session->expires), "}", NULL)
        : NULL;
    okey_err_t *err = NULL;

    if (!plain) {
        err = okey_err_make(pool, 500, NULL, "session claims do not serialise");
    }
    else {
        err = okey_seal(pool, key, plain, NULL, sealed);
    }
    return err;
}

static okey_session_t *session_from_json(apr_pool_t *pool, const json_t *claims)
{
    okey_session_t *session = apr_pcalloc(pool, sizeof(*session));
    const json_t *issued = json_object_get(claims, "iat");
    const json_t *expires = json_object_get(claims, "exp");

    session->email = okey_json_str(claims, "email");
    session->issuer = okey_json_str(claims, "iss");
    session->subject = okey_json_str(claims, "sub");
    session->id = okey_json_str(claims, "sid");
    session->issued = json_is_integer(issued) ? json_integer_value(issued) : 0;
    session->expires = json_is_integer(expires) ? json_integer_value(expires) : 0;
    if (!session->email || !session->issuer || !session->subject || !session->id ||
        !session->issued || !session->expires) {
        session = NULL;
    }
    return session;
}

okey_session_t *okey_session_open(apr_pool_t *pool, const okey_state_key_t *key,
                                  const char *sealed, apr_int64_t now,
                                  const char **why)
{
    const char *plain = okey_unseal(pool, key, sealed);
    json_t *claims = plain ? okey_json_parse(pool, plain, strlen(plain), NULL) : NULL;
    okey_session_t *session = claims ? session_from_json(pool, claims) : NULL;

    *why = !plain ? "session cookie does not decrypt with this server's key"
           : !session ? "session cookie is malformed"
           : (session->expires <= now || session->issued > now + 60)
             ? "session cookie expired" : NULL;
    return *why ? NULL : session;
}

const char *okey_session_cookie_name(int secure)
{
    return secure ? "__Host-" OKEY_SESSION_COOKIE : OKEY_SESSION_COOKIE;
}

const char *okey_session_cookie(apr_pool_t *pool, const char *header, int secure)
{
    const char *name = okey_session_cookie_name(secure);
    apr_size_t name_len = strlen(name);
    const char *cursor = header ? header : "";
    const char *value = NULL;
    okey_cookie_t cookie;

    while (!value && okey_cookie_next(&cursor, &cookie)) {
        if (cookie.value && cookie.name_len == name_len &&
            !memcmp(cookie.name, name, name_len)) {
            value = apr_pstrmemdup(pool, cookie.value, cookie.value_len);
        }
    }
    return value;
}

const char *okey_session_set_cookie(apr_pool_t *pool, const char *sealed,
                                    apr_int64_t lifetime, int secure)
{
    return apr_psprintf(pool, "%s=%s; Path=/; Max-Age=%" APR_INT64_T_FMT ";%s "
                        "HttpOnly; SameSite=Strict%s", okey_session_cookie_name(secure),
                        sealed ? sealed : "", sealed ? lifetime : 0,
                        sealed ? "" : " Expires=Thu, 01 Jan 1970 00:00:00 GMT;",
                        secure ? "; Secure" : "");
}

const char *okey_session_csrf(apr_pool_t *pool, const okey_state_key_t *key,
                              const okey_session_t *session)
{
    unsigned char mac[32];

    okey_state_key_mac(key, apr_pstrcat(pool, CSRF_LABEL, "\n", session->id, NULL), mac);
    return okey_b64url_encode(pool, mac, sizeof(mac));
}

/* Whether a token someone sent is the expected one, in constant time. */
static int same_token(const char *given, const char *expected)
{
    return given && strlen(given) == strlen(expected) &&
           CRYPTO_memcmp(given, expected, strlen(expected)) == 0;
}

int okey_session_csrf_ok(apr_pool_t *pool, const okey_state_key_t *key,
                         const okey_session_t *session, const char *token)
{
    return same_token(token, okey_session_csrf(pool, key, session));
}

static const char *issue_mac(apr_pool_t *pool, const okey_state_key_t *key,
                             const char *email, const char *made)
{
    unsigned char mac[32];

    okey_state_key_mac(key, apr_pstrcat(pool, ISSUE_LABEL, "\n", made, "\n",
                                        okey_lower(pool, email), NULL), mac);
    return okey_b64url_encode(pool, mac, sizeof(mac));
}

const char *okey_session_issue_token(apr_pool_t *pool, const okey_state_key_t *key,
                                     const char *email, apr_int64_t now)
{
    const char *made = apr_off_t_toa(pool, now);

    return apr_pstrcat(pool, made, ".", issue_mac(pool, key, email, made), NULL);
}

int okey_session_issue_token_ok(apr_pool_t *pool, const okey_state_key_t *key,
                                const char *email, const char *token, apr_int64_t now)
{
    const char *dot = token ? strchr(token, '.') : NULL;
    const char *made = dot ? apr_pstrndup(pool, token, (apr_size_t)(dot - token)) : "";
    apr_size_t digits = strspn(made, "0123456789");
    apr_int64_t when = (digits && !made[digits] && digits <= 12) ? apr_atoi64(made) : -1;
    const char *expected = when >= 0 ? issue_mac(pool, key, email, made) : NULL;

    return expected && when <= now + 60 && now - when <= OKEY_SESSION_ISSUE_TOKEN_LIFETIME &&
           same_token(dot + 1, expected);
}
