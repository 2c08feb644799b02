/* The sign-in state: state, nonce and PKCE verifier of one attempt, carried
 * in a cookie encrypted and authenticated with a key from the passphrase. */
#ifndef OKEY_STATE_H
#define OKEY_STATE_H

#include "cli.h"
#include "okey.h"

#include <apr_time.h>
#include <cjose/cjose.h>

#define OKEY_STATE_COOKIE_PREFIX "okey_state_"
#define OKEY_STATE_LIFETIME 600
#define OKEY_STATE_MAX_COOKIES 4
/* State cookies of one request looked at, at most. */
#define OKEY_STATE_MAX_SEEN 16
#define OKEY_STATE_TOKEN_BYTES 32
#define OKEY_STATE_IV_BYTES 12
#define OKEY_STATE_KEY_BYTES 32

typedef struct okey_state_key_t okey_state_key_t;

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

/* Derives the 256-bit cookie key from a passphrase (PBKDF2-HMAC-SHA256), or
 * from fresh random bytes when passphrase is NULL. The key lives as long as
 * pool. Costly by design: call once at startup. */
okey_err_t *okey_state_key_create(apr_pool_t *pool, const char *passphrase,
                                  okey_state_key_t **key);

/* The cookie key from key bytes drawn elsewhere: random ones need no
 * stretching. */
okey_err_t *okey_state_key_from_bytes(apr_pool_t *pool,
                                      const unsigned char bytes[OKEY_STATE_KEY_BYTES],
                                      okey_state_key_t **key);

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

/* Seals plain text under key as a JWE (dir + A256GCM), with iv or, when
 * iv is NULL, a fresh random one. */
okey_err_t *okey_seal(apr_pool_t *pool, const okey_state_key_t *key,
                      const char *plain, const unsigned char *iv, const char **sealed);

/* The plain text of a compact JWE whose protected header names exactly alg
 * and A256GCM, decrypted with jwk; NULL otherwise. Callers check the
 * segments' lengths first: cjose reads past short ones. */
const char *okey_jwe_open(apr_pool_t *pool, const cjose_jwk_t *jwk, const char *alg,
                          const char *compact);

/* The plain text of what okey_seal made under key, or NULL. */
const char *okey_unseal(apr_pool_t *pool, const okey_state_key_t *key,
                        const char *sealed);

/* HMAC-SHA256 of data under a subkey derived from key for MACs alone. */
void okey_state_key_mac(const okey_state_key_t *key, const char *data,
                        unsigned char mac[32]);

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
