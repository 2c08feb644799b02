/* The command-line helper's protocol: the loopback port and public key a
 * login URL carries (cli_port, cli_key), and the result the callback sends
 * back, a JWE (RSA-OAEP + A256GCM) only the helper's private key opens. */
#ifndef OKEY_CLI_H
#define OKEY_CLI_H

#include "okey.h"

#define OKEY_CLI_PORT_MIN 1024
#define OKEY_CLI_PORT_MAX 65535
#define OKEY_CLI_KEY_BITS_MIN 2048
#define OKEY_CLI_KEY_BITS_MAX 4096
/* A cli_key longer than this is refused unread: a 4096-bit public JWK with
 * the usual members takes about 1 000. */
#define OKEY_CLI_KEY_MAX_CHARS 2048
/* The helper's results are at most this long: a 4096-bit wrapped key and
 * a payload of a few hundred bytes fit with room. */
#define OKEY_CLI_RESULT_MAX_CHARS 8192

/* A helper's public key, as the state cookie carries it: the RSA modulus
 * and exponent, base64url without leading zero bytes. */
typedef struct okey_cli_key_t {
    const char *n;
    const char *e;
} okey_cli_key_t;

/* Reads a cli_port value: digits only, OKEY_CLI_PORT_MIN..MAX; else a 400. */
okey_err_t *okey_cli_port_parse(apr_pool_t *pool, const char *text, int *port);

/* Reads a cli_key value: base64url of a public RSA JWK (kty RSA, n of
 * 2048 to 4096 bits, an odd e, alg RSA-OAEP and use enc when given, no
 * private members); else a 400 saying which rule it broke. */
okey_err_t *okey_cli_key_parse(apr_pool_t *pool, const char *text,
                               okey_cli_key_t **key);

/* Encrypts plain to key: a compact JWE, RSA-OAEP + A256GCM. */
okey_err_t *okey_cli_seal(apr_pool_t *pool, const okey_cli_key_t *key,
                          const char *plain, const char **jwe);

/* Where the callback sends a result: the helper's listener on the loopback
 * address, never a host or URL from a request. */
const char *okey_cli_result_url(apr_pool_t *pool, int port, const char *jwe);

/* --- the helper's side --------------------------------------------------- */

typedef struct okey_cli_keypair_t okey_cli_keypair_t;

/* A fresh RSA key pair of bits, released with pool. */
okey_err_t *okey_cli_keypair_new(apr_pool_t *pool, int bits,
                                 okey_cli_keypair_t **pair);

/* The pair's public half as cli_key carries it. */
const char *okey_cli_keypair_public(apr_pool_t *pool, const okey_cli_keypair_t *pair);

/* The plain text of a result sealed to pair's public key, or NULL when
 * jwe is not exactly such a JWE or does not open with pair. */
const char *okey_cli_open(apr_pool_t *pool, const okey_cli_keypair_t *pair,
                          const char *jwe);

/* NULL when url may be the helper's server, else why not: http or https,
 * no user information, a host of letters, digits, dots and hyphens or an
 * IPv6 address in brackets, a port from 1 to 65535; and plain http only to
 * this machine, named exactly (localhost, 127.x.y.z as a dotted quad,
 * [::1]), since a password, a Negotiate token or a sign-in must not cross a
 * network in the clear. */
const char *okey_cli_url_problem(apr_pool_t *pool, const char *url);

#endif
