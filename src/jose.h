/* JOSE sealing: the cookie key, from the passphrase or random bytes, and
 * what is done with it. Text sealed as a compact JWE (dir + A256GCM) and
 * opened again, MACs and SHA-256 digests under it; and a JWE opened with a
 * cjose key, as the command-line helper does with its private key. The
 * sign-in state and the session cookie are sealed here. */
#ifndef OKEY_JOSE_H
#define OKEY_JOSE_H

#include "okey.h"

#include <cjose/cjose.h>

#define OKEY_STATE_KEY_BYTES 32
/* AES-GCM nonces of sealed text. */
#define OKEY_SEAL_IV_BYTES 12

typedef struct okey_state_key_t okey_state_key_t;

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

/* Seals plain text under key as a JWE (dir + A256GCM), with iv or, when
 * iv is NULL, a fresh random one. */
okey_err_t *okey_seal(apr_pool_t *pool, const okey_state_key_t *key,
                      const char *plain, const unsigned char *iv, const char **sealed);

/* The plain text of what okey_seal made under key, or NULL. */
const char *okey_unseal(apr_pool_t *pool, const okey_state_key_t *key,
                        const char *sealed);

/* The plain text of a compact JWE whose protected header names exactly alg
 * and A256GCM, decrypted with jwk; NULL otherwise. Callers check the
 * segments' lengths first: cjose reads past short ones. */
const char *okey_jwe_open(apr_pool_t *pool, const cjose_jwk_t *jwk, const char *alg,
                          const char *compact);

/* HMAC-SHA256 of data under a subkey derived from key for MACs alone. */
void okey_state_key_mac(const okey_state_key_t *key, const char *data,
                        unsigned char mac[32]);

/* SHA-256 of data (no key involved: the key holds the digest's contexts).
 * 0 when OpenSSL failed. */
int okey_state_key_sha256(const okey_state_key_t *key, const char *data,
                          unsigned char digest[32]);

#endif
