/* The "My keys" session: a cookie sealed like the sign-in state that holds
 * a verified address for a while, and the CSRF tokens bound to it. */
#ifndef OKEY_SESSION_H
#define OKEY_SESSION_H

#include "jose.h"

#define OKEY_SESSION_COOKIE "okey_session"

typedef struct okey_session_t {
    const char *email;   /* verified, lower case */
    const char *issuer;
    const char *subject;
    const char *id;      /* random: what CSRF tokens are bound to */
    apr_int64_t issued;  /* Unix seconds */
    apr_int64_t expires;
} okey_session_t;

/* A new session for a verified address, valid for lifetime seconds. */
okey_err_t *okey_session_new(apr_pool_t *pool, const char *email,
                             const char *issuer, const char *subject,
                             apr_int64_t now, apr_int64_t lifetime,
                             okey_session_t **session);

okey_err_t *okey_session_seal(apr_pool_t *pool, const okey_state_key_t *key,
                              const okey_session_t *session, const char **sealed);

/* The session in a sealed cookie value; NULL when it is forged, malformed
 * or expired at now (*why says which, for the log). */
okey_session_t *okey_session_open(apr_pool_t *pool, const okey_state_key_t *key,
                                  const char *sealed, apr_int64_t now,
                                  const char **why);

/* __Host-okey_session when secure, else okey_session. */
const char *okey_session_cookie_name(int secure);

/* The session cookie's value in a Cookie header, or NULL. */
const char *okey_session_cookie(apr_pool_t *pool, const char *header, int secure);

/* The Set-Cookie value that stores sealed for lifetime seconds, or clears
 * the cookie when sealed is NULL. */
const char *okey_session_set_cookie(apr_pool_t *pool, const char *sealed,
                                    apr_int64_t lifetime, int secure);

/* The CSRF token of a session's forms. */
const char *okey_session_csrf(apr_pool_t *pool, const okey_state_key_t *key,
                              const okey_session_t *session);

/* Whether token is the session's CSRF token (compared in constant time). */
int okey_session_csrf_ok(apr_pool_t *pool, const okey_state_key_t *key,
                         const okey_session_t *session, const char *token);

/* openaikey-issue's forms have no session: their token binds the address
 * another module authenticated and the time it was made, and is good for
 * OKEY_SESSION_ISSUE_TOKEN_LIFETIME seconds. */
#define OKEY_SESSION_ISSUE_TOKEN_LIFETIME 3600

const char *okey_session_issue_token(apr_pool_t *pool, const okey_state_key_t *key,
                                     const char *email, apr_int64_t now);
int okey_session_issue_token_ok(apr_pool_t *pool, const okey_state_key_t *key,
                                const char *email, const char *token, apr_int64_t now);

#endif
