/* The sign-in state: state, nonce and PKCE verifier of one attempt, carried
 * in a cookie encrypted and authenticated with a key from the passphrase. */
#ifndef OKEY_STATE_H
#define OKEY_STATE_H

#include "cli.h"
#include "jose.h"
#include "okey.h"

#include <apr_time.h>

#define OKEY_STATE_COOKIE_PREFIX "okey_state_"
#define OKEY_STATE_LIFETIME 600
#define OKEY_STATE_MAX_COOKIES 4
/* State cookies of one request looked at, at most. */
#define OKEY_STATE_MAX_SEEN 16
#define OKEY_STATE_TOKEN_BYTES 32
#define OKEY_STATE_IV_BYTES OKEY_SEAL_IV_BYTES

typedef struct okey_state_t {
    const char *state;
    const char *nonce;
    const char *verifier;
    apr_int64_t created; /* Unix milliseconds: orders attempts of one second */
    apr_int64_t ttl;     /* the lifetime asked for, seconds; 0: the default */
    int next_keys;       /* a sign-in for My keys only: no key is issued */
    const char *profile; /* the path of the profile it began at, or NULL */
    int cli_port;            /* the command-line helper's port, or 0 */
    okey_cli_key_t *cli_key; /* and its public key, or NULL */
    /* AES-GCM nonce for sealing this state, drawn with it: sealed once. */
    unsigned char iv[OKEY_STATE_IV_BYTES];
} okey_state_t;

/* A new attempt: random state, nonce and verifier, created now. */
okey_err_t *okey_state_new(apr_pool_t *pool, apr_time_t now,
                           okey_state_t **state);

/* The S256 code challenge of a verifier (RFC 7636), with the digest the
 * key holds. */
const char *okey_state_challenge(apr_pool_t *pool, const okey_state_key_t *key,
                                 const char *verifier);

okey_err_t *okey_state_seal(apr_pool_t *pool, const okey_state_key_t *key,
                            const okey_state_t *state, const char **sealed);

/* Opens a sealed cookie value. Fails with a 400 error when it is
 * undecryptable, malformed or older than OKEY_STATE_LIFETIME at now. */
okey_err_t *okey_state_open(apr_pool_t *pool, const okey_state_key_t *key,
                            const char *sealed, apr_time_t now,
                            okey_state_t **state);

/* Whether a state parameter has the shape this module issues. */
int okey_state_token_valid(const char *token);

/* One sign-in state cookie found in a request. */
typedef struct okey_state_cookie_t {
    const char *name;
    const char *value;
} okey_state_cookie_t;

/* The name prefix of state cookies: __Host-okey_state_ when secure (the
 * redirect URI is https), else okey_state_. */
const char *okey_state_cookie_prefix(int secure);

/* The state cookies in a Cookie header value, in order: those named with
 * the prefix and a well-formed state, at most OKEY_STATE_MAX_SEEN. */
apr_array_header_t *okey_state_cookies(apr_pool_t *pool, const char *header,
                                       int secure);

/* The Set-Cookie value that stores sealed under the state's name, or that
 * clears name when sealed is NULL. */
const char *okey_state_set_cookie(apr_pool_t *pool, const char *name,
                                  const char *sealed, int secure);

/* Names of the cookies to clear so that, with one more, no more than
 * OKEY_STATE_MAX_COOKIES remain: unreadable or expired ones first, then the
 * oldest. */
apr_array_header_t *okey_state_cookies_to_drop(apr_pool_t *pool,
                                               const okey_state_key_t *key,
                                               const apr_array_header_t *cookies,
                                               apr_time_t now);
#endif
