/* The command-line helper's protocol, both ends: what the module accepts
 * from a login URL and seals for the helper, and what the helper opens. */
#include "cli.h"
#include "jose.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <arpa/inet.h>
#include <cjose/cjose.h>
#include <string.h>
#include <strings.h>

#define TAG_CHARS 22 /* a 128-bit GCM tag, base64url */
#define IV_CHARS 16  /* a 96-bit GCM IV, base64url */

struct okey_cli_keypair_t {
    cjose_jwk_t *jwk;
};

static okey_err_t *refused(apr_pool_t *pool, const char *rule)
{
    return okey_err_make(pool, 400,
                         apr_pstrcat(pool, "The sign-in link from the command-line helper "
                                     "is not valid: ", rule, ".", NULL),
                         "login refused: %s", rule);
}

okey_err_t *okey_cli_port_parse(apr_pool_t *pool, const char *text, int *port)
{
    apr_size_t len = text ? strlen(text) : 0;
    apr_size_t i;
    int value = 0;
    int digits = len > 0 && len <= 5;

    for (i = 0; i < len && digits; i++) {
        digits = apr_isdigit(text[i]);
        value = value * 10 + (text[i] - '0');
    }
    *port = digits && value >= OKEY_CLI_PORT_MIN && value <= OKEY_CLI_PORT_MAX ? value : 0;
    return *port ? NULL
                 : refused(pool, "cli_port must be a port from 1024 to 65535");
}

/* The bytes of a big-endian integer member without its leading zeros, as
 * base64url; NULL when the member is missing, empty or not base64url. */
static const unsigned char *integer_member(apr_pool_t *pool, const json_t *jwk,
                                           const char *name, apr_size_t *len)
{
    const char *text = okey_json_str(jwk, name);
    const unsigned char *bytes = text ? okey_b64url_decode(pool, text, len) : NULL;

    while (bytes && *len > 0 && bytes[0] == 0) {
        bytes++;
        (*len)--;
    }
    return bytes && *len > 0 ? bytes : NULL;
}

static int bit_length(const unsigned char *bytes, apr_size_t len)
{
    int bits = (int)(len - 1) * 8;
    unsigned char top = bytes[0];

    while (top) {
        bits++;
        top >>= 1;
    }
    return bits;
}

/* Which rule a decoded JWK breaks, or NULL. */
static const char *public_rsa_rule(apr_pool_t *pool, const json_t *jwk,
                                   okey_cli_key_t *key)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};
    const char *kty = okey_json_str(jwk, "kty");
    const char *alg = okey_json_str(jwk, "alg");
    const char *use = okey_json_str(jwk, "use");
    apr_size_t n_len = 0, e_len = 0, i;
    const unsigned char *n = integer_member(pool, jwk, "n", &n_len);
    const unsigned char *e = integer_member(pool, jwk, "e", &e_len);
    int bits = n ? bit_length(n, n_len) : 0;
    int private_key = 0;
    const char *rule = NULL;

    for (i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        private_key |= json_object_get(jwk, private_members[i]) != NULL;
    }
    if (!kty || strcmp(kty, "RSA")) {
        rule = "cli_key must be an RSA public key (kty RSA)";
    }
    else if (private_key) {
        rule = "cli_key must hold only a public key";
    }
    else if ((json_object_get(jwk, "alg") && (!alg || strcmp(alg, "RSA-OAEP"))) ||
             (json_object_get(jwk, "use") && (!use || strcmp(use, "enc")))) {
        rule = "cli_key must be for encryption with RSA-OAEP";
    }
    else if (!n || !e || !(n[n_len - 1] & 1) || !(e[e_len - 1] & 1) || e_len > 4 ||
             (e_len == 1 && e[0] < 3)) {
        rule = "cli_key does not hold a valid RSA modulus and exponent";
    }
    else if (bits < OKEY_CLI_KEY_BITS_MIN || bits > OKEY_CLI_KEY_BITS_MAX) {
        rule = "cli_key must be an RSA key of 2048 to 4096 bits";
    }
    else {
        key->n = okey_b64url_encode(pool, n, n_len);
        key->e = okey_b64url_encode(pool, e, e_len);
    }
    return rule;
}

okey_err_t *okey_cli_key_parse(apr_pool_t *pool, const char *text,
                               okey_cli_key_t **key)
{
    apr_size_t text_len = text ? strlen(text) : 0;
    apr_size_t json_len = 0;
    const unsigned char *json = text_len <= OKEY_CLI_KEY_MAX_CHARS
                                ? okey_b64url_decode(pool, text ? text : "", &json_len)
                                : NULL;
    json_t *jwk = json ? okey_json_parse(pool, (const char *)json, json_len, NULL) : NULL;
    okey_cli_key_t *made = apr_pcalloc(pool, sizeof(*made));
    const char *rule = NULL;

    if (text_len > OKEY_CLI_KEY_MAX_CHARS) {
        rule = "cli_key is too long";
    }
    else if (!json_is_object(jwk)) {
        rule = "cli_key must be a JSON Web Key, base64url-encoded";
    }
    else {
        rule = public_rsa_rule(pool, jwk, made);
    }
    *key = rule ? NULL : made;
    return rule ? refused(pool, rule) : NULL;
}

static apr_status_t release_jwk(void *jwk)
{
    cjose_jwk_release(jwk);
    return APR_SUCCESS;
}

/* A cjose key from key, released with pool; NULL on failure. */
static cjose_jwk_t *public_jwk(apr_pool_t *pool, const okey_cli_key_t *key)
{
    apr_size_t n_len = 0, e_len = 0;
    unsigned char *n = okey_b64url_decode(pool, key->n, &n_len);
    unsigned char *e = okey_b64url_decode(pool, key->e, &e_len);
    cjose_jwk_rsa_keyspec spec;
    cjose_jwk_t *jwk = NULL;

    memset(&spec, 0, sizeof(spec));
    spec.n = n;
    spec.nlen = n_len;
    spec.e = e;
    spec.elen = e_len;
    jwk = n && e ? cjose_jwk_create_RSA_spec(&spec, NULL) : NULL;
    if (jwk) {
        apr_pool_cleanup_register(pool, jwk, release_jwk, apr_pool_cleanup_null);
    }
    return jwk;
}

okey_err_t *okey_cli_seal(apr_pool_t *pool, const okey_cli_key_t *key,
                          const char *plain, const char **jwe)
{
    cjose_jwk_t *jwk = public_jwk(pool, key);
    cjose_header_t *header = cjose_header_new(NULL);
    cjose_jwe_t *sealed = NULL;
    char *compact = NULL;

    if (jwk && header && cjose_header_set(header, CJOSE_HDR_ALG, CJOSE_HDR_ALG_RSA_OAEP, NULL) &&
        cjose_header_set(header, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, NULL)) {
        sealed = cjose_jwe_encrypt(jwk, header, (const uint8_t *)plain, strlen(plain), NULL);
    }
    compact = sealed ? cjose_jwe_export(sealed, NULL) : NULL;
    *jwe = compact ? apr_pstrdup(pool, compact) : NULL;
    cjose_get_dealloc()(compact);
    cjose_jwe_release(sealed);
    cjose_header_release(header);
    return *jwe ? NULL
                : okey_err_make(pool, 500, "The server could not encrypt the key for "
                                "the command-line helper.", "encrypting a result to a "
                                "helper's key failed");
}

const char *okey_cli_result_url(apr_pool_t *pool, int port, const char *jwe)
{
    return apr_psprintf(pool, "http://127.0.0.1:%d/?result=%s", port, jwe);
}

okey_err_t *okey_cli_keypair_new(apr_pool_t *pool, int bits, okey_cli_keypair_t **pair)
{
    static const uint8_t exponent[] = {0x01, 0x00, 0x01};
    okey_cli_keypair_t *made = apr_pcalloc(pool, sizeof(*made));
    cjose_err cerr;

    made->jwk = cjose_jwk_create_RSA_random((size_t)bits, exponent, sizeof(exponent), &cerr);
    if (made->jwk) {
        apr_pool_cleanup_register(pool, made->jwk, release_jwk, apr_pool_cleanup_null);
    }
    *pair = made->jwk ? made : NULL;
    return made->jwk ? NULL
                     : okey_err_make(pool, 500, "could not make a key pair",
                                     "RSA key generation: %s", cerr.message);
}

const char *okey_cli_keypair_public(apr_pool_t *pool, const okey_cli_keypair_t *pair)
{
    char *json = cjose_jwk_to_json(pair->jwk, false, NULL);
    const char *encoded = json ? okey_b64url_encode(pool, (const unsigned char *)json,
                                                    strlen(json)) : NULL;

    cjose_get_dealloc()(json);
    return encoded;
}

/* Whether jwe has the shape RSA-OAEP + A256GCM gives for a key of 2048 to
 * 4096 bits: cjose reads past shorter segments. */
static int result_shape_ok(const char *jwe)
{
    apr_size_t lens[5];

    return strlen(jwe) <= OKEY_CLI_RESULT_MAX_CHARS &&
           okey_jose_compact_ok(jwe, 5, lens) && lens[0] > 0 &&
           lens[1] >= (OKEY_CLI_KEY_BITS_MIN / 8 * 4 + 2) / 3 &&
           lens[1] <= (OKEY_CLI_KEY_BITS_MAX / 8 * 4 + 2) / 3 && lens[2] == IV_CHARS &&
           lens[3] > 0 && lens[4] == TAG_CHARS;
}

const char *okey_cli_open(apr_pool_t *pool, const okey_cli_keypair_t *pair, const char *jwe)
{
    return jwe && result_shape_ok(jwe)
           ? okey_jwe_open(pool, pair->jwk, CJOSE_HDR_ALG_RSA_OAEP, jwe) : NULL;
}

/* Whether host[0..len) is an address of 127.0.0.0/8 written as a dotted
 * quad of decimal numbers without leading zeros. */
static int loopback_quad(const char *host, apr_size_t len)
{
    apr_size_t i = 0;
    int octets = 0;
    int first = -1;
    int ok = 1;

    while (ok && octets < 4) {
        apr_size_t start = i;
        int value = 0;

        while (i < len && i - start < 3 && apr_isdigit(host[i])) {
            value = value * 10 + (host[i++] - '0');
        }
        ok = i > start && value <= 255 && !(host[start] == '0' && i - start > 1);
        first = octets++ ? first : value;
        ok = ok && (octets == 4 || (i < len && host[i++] == '.'));
    }
    return ok && i == len && first == 127;
}

/* Whether host[0..len), as written, is this machine: localhost, a dotted
 * quad of 127.0.0.0/8, or [::1]. Other spellings (127.1, 0x7f000001,
 * [0:0:0:0:0:0:0:1], localhost.) are not: resolvers and parsers read
 * some of them differently, and a check must read what the request does. */
static int loopback_host(const char *host, apr_size_t len)
{
    return (len == 9 && !strncasecmp(host, "localhost", 9)) ||
           (len == 5 && !strncmp(host, "[::1]", 5)) || loopback_quad(host, len);
}

/* Whether text[0..len) is an IPv6 address as inet_pton, and so curl, reads
 * one: "[:2]" has the right characters and is not one. */
static int ipv6_ok(const char *text, apr_size_t len)
{
    char copy[INET6_ADDRSTRLEN + 1];
    struct in6_addr address;
    int ok = len < sizeof(copy);

    if (ok) {
        memcpy(copy, text, len);
        copy[len] = '\0';
        ok = inet_pton(AF_INET6, copy, &address) == 1;
    }
    return ok;
}

/* The length of the host at the start of authority[0..len): a name or IPv4
 * address of letters, digits, dots and hyphens, or an IPv6 address in
 * brackets; 0 when there is none. */
static apr_size_t host_length(const char *authority, apr_size_t len)
{
    const char *chars = authority[0] == '[' ? "0123456789abcdefABCDEF:."
                                            : "0123456789abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-";
    apr_size_t i = authority[0] == '[' ? 1 : 0;

    while (i < len && authority[i] && strchr(chars, authority[i])) {
        i++;
    }
    if (authority[0] == '[') {
        i = i > 1 && i < len && authority[i] == ']' && ipv6_ok(authority + 1, i - 1)
            ? i + 1 : 0;
    }
    return i;
}

/* Whether text[0..len) is ":" and a port from 1 to 65535 in decimal. */
static int port_ok(const char *text, apr_size_t len)
{
    apr_size_t i;
    long value = 0;
    int digits = len >= 2 && len <= 6 && text[0] == ':' && text[1] != '0';

    for (i = 1; digits && i < len; i++) {
        digits = apr_isdigit(text[i]);
        value = value * 10 + (text[i] - '0');
    }
    return digits && value >= 1 && value <= 65535;
}

/* Why url cannot be read as http(s)://host[:port][/?#...], or NULL with
 * *https and *loopback set. User information (user@, user:password@) is
 * refused outright: it is where an attacker puts this machine's name. */
static const char *url_read(const char *url, int *https, int *loopback)
{
    apr_size_t i;
    apr_size_t len = 0;
    apr_size_t host_len = 0;
    const char *authority = NULL;
    const char *why = NULL;

    for (i = 0; url[i] && !why; i++) {
        why = (unsigned char)url[i] <= ' ' || url[i] == 0x7f
              ? "holds a space or a control character" : NULL;
    }
    *https = !strncasecmp(url, "https://", 8);
    authority = *https ? url + 8 : !strncasecmp(url, "http://", 7) ? url + 7 : NULL;
    if (!why && !authority) {
        why = "is not an http or https URL";
    }
    if (!why) {
        len = strcspn(authority, "/?#");
        why = memchr(authority, '@', len)
              ? "names a user before its host; give the user with --user" : NULL;
    }
    if (!why) {
        host_len = len ? host_length(authority, len) : 0;
        why = host_len ? NULL : "has no host, or a host that is not a name or an address";
    }
    if (!why && host_len < len) {
        why = authority[host_len] != ':'
              ? "has no host, or a host that is not a name or an address"
              : port_ok(authority + host_len, len - host_len)
              ? NULL : "has a port that is not a number from 1 to 65535";
    }
    *loopback = !why && loopback_host(authority, host_len);
    return why;
}

const char *okey_cli_url_problem(apr_pool_t *pool, const char *url)
{
    int https = 0;
    int loopback = 0;
    const char *why = url ? url_read(url, &https, &loopback) : "is not an http or https URL";

    if (!why && !https && !loopback) {
        why = "is plain http to another machine: use https (plain http is only for "
              "localhost, 127.x.y.z and [::1])";
    }
    /* The address is not repeated: it may hold a password. */
    return why ? apr_pstrcat(pool, "the server's address ", why, NULL) : NULL;
}
