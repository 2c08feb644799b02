/* Sign-in state and session cookies: JWE with alg dir and enc A256GCM. */
#include "state.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <limits.h>
#include <cjose/cjose.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES OKEY_STATE_KEY_BYTES
#define PBKDF2_ROUNDS 200000
#define PBKDF2_SALT "mod_openaikey state cookie v1"

#define TAG_BYTES 16
#define PROTECTED_HEADER "{\"alg\":\"dir\",\"enc\":\"A256GCM\"}"

/* Sealing and opening write and read the JWE compact serialisation
 * themselves, with cipher contexts keyed once: cjose costs a method-store
 * lookup, a key schedule and a header parse per call, which the login
 * redirect and the callback cannot afford. A context in use belongs to one
 * thread; idle ones wait in a small stack, so the steady state allocates
 * nothing. The digest for PKCE challenges is fetched once. */
#define IDLE_MAX 32

typedef struct {
    EVP_CIPHER_CTX *cipher; /* AES-256-GCM under the key; IV set per use */
    EVP_MAC_CTX *mac;       /* HMAC-SHA256 under the MAC subkey */
    EVP_MD_CTX *digest;
} contexts_t;

struct okey_state_key_t {
    EVP_CIPHER *aes_gcm;
    EVP_CIPHER_CTX *keyed;  /* AES-256-GCM with the key set, no IV: copied */
    EVP_MD *sha256;
    EVP_MAC_CTX *mac_keyed; /* HMAC-SHA256 under the MAC subkey: duplicated */
    const char *header_b64; /* base64url of PROTECTED_HEADER, the AAD */
    okey_idle_t *spare;     /* of contexts_t *, not in use */
};

static const char STATE_ERROR[] =
    "This sign-in link is no longer valid. Please start again.";

/* Held by malloc: they come and go in any thread, and OpenSSL's own
 * objects inside are malloc's anyway. */
static void free_contexts(void *data)
{
    contexts_t *contexts = data;

    if (contexts) {
        EVP_CIPHER_CTX_free(contexts->cipher);
        EVP_MAC_CTX_free(contexts->mac);
        EVP_MD_CTX_free(contexts->digest);
        free(contexts);
    }
}

static apr_status_t release_key(void *data)
{
    okey_state_key_t *key = data;

    EVP_CIPHER_CTX_free(key->keyed);
    EVP_MAC_CTX_free(key->mac_keyed);
    EVP_CIPHER_free(key->aes_gcm);
    EVP_MD_free(key->sha256);
    return APR_SUCCESS;
}

static okey_err_t *key_bytes(apr_pool_t *pool, const char *passphrase,
                             unsigned char bytes[KEY_BYTES])
{
    okey_err_t *err = NULL;

    if (passphrase) {
        if (!PKCS5_PBKDF2_HMAC(passphrase, (int)strlen(passphrase),
                               (const unsigned char *)PBKDF2_SALT,
                               (int)strlen(PBKDF2_SALT), PBKDF2_ROUNDS,
                               EVP_sha256(), KEY_BYTES, bytes)) {
            err = okey_err_make(pool, 500, NULL, "key derivation failed");
        }
    }
    else if (apr_generate_random_bytes(bytes, KEY_BYTES) != APR_SUCCESS) {
        err = okey_err_make(pool, 500, NULL, "no random bytes for the state key");
    }
    return err;
}

okey_err_t *okey_state_key_create(apr_pool_t *pool, const char *passphrase,
                                  okey_state_key_t **key)
{
    unsigned char bytes[KEY_BYTES];
    okey_err_t *err = key_bytes(pool, passphrase, bytes);

    *key = NULL;
    if (!err) {
        err = okey_state_key_from_bytes(pool, bytes, key);
    }
    OPENSSL_cleanse(bytes, sizeof(bytes));
    return err;
}

/* HMAC-SHA256 keyed with a subkey of raw's own, so that a MAC never
 * doubles as the cipher key. */
static EVP_MAC_CTX *mac_context(const unsigned char raw[KEY_BYTES])
{
    static const char label[] = "mod_openaikey mac v1";
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()
    };
    unsigned char subkey[32];
    unsigned int len = sizeof(subkey);
    int ok = ctx && HMAC(EVP_sha256(), raw, KEY_BYTES, (const unsigned char *)label,
                         strlen(label), subkey, &len) &&
             EVP_MAC_init(ctx, subkey, sizeof(subkey), params);

    OPENSSL_cleanse(subkey, sizeof(subkey));
    EVP_MAC_free(hmac);
    if (!ok) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

okey_err_t *okey_state_key_from_bytes(apr_pool_t *pool,
                                      const unsigned char bytes[KEY_BYTES],
                                      okey_state_key_t **key)
{
    okey_state_key_t *made = apr_pcalloc(pool, sizeof(*made));
    okey_err_t *err = NULL;

    made->spare = okey_idle_create(pool, IDLE_MAX, free_contexts);
    made->aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    made->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    made->keyed = EVP_CIPHER_CTX_new();
    made->mac_keyed = mac_context(bytes);
    made->header_b64 = okey_b64url_encode(pool, (const unsigned char *)PROTECTED_HEADER,
                                          strlen(PROTECTED_HEADER));
    apr_pool_cleanup_register(pool, made, release_key, apr_pool_cleanup_null);
    if (!made->aes_gcm || !made->sha256 || !made->keyed ||
        !made->mac_keyed ||
        !EVP_EncryptInit_ex(made->keyed, made->aes_gcm, NULL, bytes, NULL)) {
        err = okey_err_make(pool, 500, NULL,
                            "state key: no AES-256-GCM, SHA-256 or HMAC in OpenSSL");
    }
    *key = err ? NULL : made;
    return err;
}

/* Idle contexts, or fresh ones keyed from the originals; NULL when
 * OpenSSL could not make them. */
static contexts_t *take_contexts(const okey_state_key_t *key)
{
    contexts_t *taken = okey_idle_take(key->spare);

    if (!taken && (taken = calloc(1, sizeof(*taken)))) {
        taken->cipher = EVP_CIPHER_CTX_new();
        taken->mac = EVP_MAC_CTX_dup(key->mac_keyed);
        taken->digest = EVP_MD_CTX_new();
        if (!taken->cipher || !taken->mac || !taken->digest ||
            !EVP_CIPHER_CTX_copy(taken->cipher, key->keyed)) {
            free_contexts(taken);
            taken = NULL;
        }
    }
    return taken;
}

static void give_back_contexts(const okey_state_key_t *key, contexts_t *given)
{
    if (given) {
        okey_idle_give_back(key->spare, given);
    }
}

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
    contexts_t *contexts = take_contexts(key);
    unsigned char digest[32];
    int ok = contexts && EVP_DigestInit_ex2(contexts->digest, key->sha256, NULL) &&
             EVP_DigestUpdate(contexts->digest, verifier, strlen(verifier)) &&
             EVP_DigestFinal_ex(contexts->digest, digest, NULL);

    give_back_contexts(key, contexts);
    return ok ? okey_b64url_encode(pool, digest, sizeof(digest)) : NULL;
}

/* AES-256-GCM of in under key and iv, with the protected header aad as
 * AAD (RFC 7516 section 5.1): encrypt fills tag, decrypt checks it. Returns
 * the length of out, or -1. */
static int gcm(const okey_state_key_t *key, int encrypt, const unsigned char *iv,
               const char *aad, const unsigned char *in, int in_len, unsigned char *out,
               unsigned char *tag)
{
    contexts_t *contexts = take_contexts(key);
    EVP_CIPHER_CTX *ctx = contexts ? contexts->cipher : NULL;
    int len = 0;
    int final_len = 0;
    int ok = ctx && EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, encrypt) &&
             EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad,
                              (int)strlen(aad)) &&
             EVP_CipherUpdate(ctx, out, &len, in, in_len) &&
             (encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag)) &&
             EVP_CipherFinal_ex(ctx, out + len, &final_len) &&
             (!encrypt || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag));

    give_back_contexts(key, contexts);
    return ok ? len + final_len : -1;
}

/* The JWE compact serialisation, written in one allocation. */
static const char *compact(apr_pool_t *pool, const char *header_b64,
                           const unsigned char *iv, const unsigned char *cipher,
                           int cipher_len, const unsigned char *tag)
{
    apr_size_t header_len = strlen(header_b64);
    char *out = apr_palloc(pool, header_len + 2 + 17 + (apr_size_t)cipher_len / 3 * 4 + 5 +
                                 1 + 22 + 1);
    char *at = out;

    memcpy(at, header_b64, header_len);
    at += header_len;
    *at++ = '.';
    *at++ = '.';
    at = okey_b64url_encode_into(at, iv, OKEY_STATE_IV_BYTES);
    *at++ = '.';
    at = okey_b64url_encode_into(at, cipher, (apr_size_t)cipher_len);
    *at++ = '.';
    okey_b64url_encode_into(at, tag, TAG_BYTES);
    return out;
}

okey_err_t *okey_seal(apr_pool_t *pool, const okey_state_key_t *key,
                      const char *plain, const unsigned char *iv, const char **sealed)
{
    int plain_len = (int)strlen(plain);
    unsigned char fresh_iv[OKEY_STATE_IV_BYTES];
    unsigned char tag[TAG_BYTES];
    unsigned char *cipher = apr_palloc(pool, plain_len + TAG_BYTES);
    int cipher_len = -1;
    okey_err_t *err = NULL;

    if (!iv && apr_generate_random_bytes(fresh_iv, sizeof(fresh_iv)) == APR_SUCCESS) {
        iv = fresh_iv;
    }
    if (iv) {
        cipher_len = gcm(key, 1, iv, key->header_b64, (const unsigned char *)plain,
                         plain_len, cipher, tag);
    }
    if (cipher_len < 0) {
        err = okey_err_make(pool, 500, "The server could not seal a cookie.",
                            "sealing a cookie failed");
    }
    *sealed = err ? NULL : compact(pool, key->header_b64, iv, cipher, cipher_len, tag);
    return err;
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

/* Whether a cookie value has the exact shape of what seal makes: dir (no
 * encrypted key), a 96-bit IV and a 128-bit tag, every segment base64url;
 * lens gets the segments' lengths. The value comes from whoever sends the
 * request. */
static int sealed_shape(const char *sealed, apr_size_t lens[5])
{
    return okey_jose_compact_ok(sealed, 5, lens) && lens[0] > 0 && lens[1] == 0 &&
           lens[2] == 16 && lens[3] > 0 && lens[4] == 22;
}

const char *okey_jwe_open(apr_pool_t *pool, const cjose_jwk_t *jwk, const char *alg,
                          const char *compact)
{
    cjose_jwe_t *jwe = cjose_jwe_import(compact, strlen(compact), NULL);
    cjose_header_t *header = jwe ? cjose_jwe_get_protected(jwe) : NULL;
    const char *given_alg = header ? cjose_header_get(header, CJOSE_HDR_ALG, NULL) : NULL;
    const char *given_enc = header ? cjose_header_get(header, CJOSE_HDR_ENC, NULL) : NULL;
    const char *plain = NULL;

    if (given_alg && given_enc && !strcmp(given_alg, alg) &&
        !strcmp(given_enc, CJOSE_HDR_ENC_A256GCM)) {
        size_t len = 0;
        uint8_t *bytes = cjose_jwe_decrypt(jwe, jwk, &len, NULL);

        plain = bytes ? apr_pstrndup(pool, (const char *)bytes, len) : NULL;
        cjose_get_dealloc()(bytes);
    }
    cjose_jwe_release(jwe);
    return plain;
}

/* Whether the protected header at sealed (len bytes) is one this key
 * opens: the one seal writes, or any other whose alg is dir and enc
 * A256GCM with nothing that would change how to read it. */
static int header_ok(apr_pool_t *pool, const okey_state_key_t *key, const char *sealed,
                     apr_size_t len)
{
    int ours = len == strlen(key->header_b64) && !memcmp(sealed, key->header_b64, len);
    apr_size_t json_len = 0;
    const char *json = ours ? NULL
                            : (const char *)okey_b64url_decoden(pool, sealed, len, &json_len);
    json_t *header = json ? okey_json_parse(pool, json, json_len, NULL) : NULL;
    const char *alg = okey_json_str(header, "alg");
    const char *enc = okey_json_str(header, "enc");

    return ours || (alg && enc && !strcmp(alg, "dir") && !strcmp(enc, "A256GCM") &&
                    !json_object_get(header, "zip") && !json_object_get(header, "crit"));
}

const char *okey_unseal(apr_pool_t *pool, const okey_state_key_t *key,
                        const char *sealed)
{
    apr_size_t lens[5];
    int ok = sealed_shape(sealed, lens) && header_ok(pool, key, sealed, lens[0]);
    const char *iv_b64 = ok ? sealed + lens[0] + 2 : NULL;
    const char *cipher_b64 = ok ? iv_b64 + lens[2] + 1 : NULL;
    const char *tag_b64 = ok ? cipher_b64 + lens[3] + 1 : NULL;
    apr_size_t iv_len = 0, cipher_len = 0, tag_len = 0;
    unsigned char *iv = ok ? okey_b64url_decoden(pool, iv_b64, lens[2], &iv_len) : NULL;
    unsigned char *cipher = iv ? okey_b64url_decoden(pool, cipher_b64, lens[3], &cipher_len)
                               : NULL;
    unsigned char *tag = cipher ? okey_b64url_decoden(pool, tag_b64, lens[4], &tag_len) : NULL;
    char *plain = tag && iv_len == OKEY_STATE_IV_BYTES && tag_len == TAG_BYTES &&
                  cipher_len < INT_MAX ? apr_palloc(pool, cipher_len + 1) : NULL;
    /* The AAD is the header as sent (RFC 7516 section 5.2, step 14). */
    int plain_len = plain ? gcm(key, 0, iv, apr_pstrndup(pool, sealed, lens[0]), cipher,
                                (int)cipher_len, (unsigned char *)plain, tag) : -1;

    /* A sealed text is JSON: a NUL inside is a forgery, not a value. */
    if (plain_len >= 0) {
        plain[plain_len] = '\0';
    }
    return plain_len >= 0 && strlen(plain) == (apr_size_t)plain_len ? plain : NULL;
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

void okey_state_key_mac(const okey_state_key_t *key, const char *data,
                        unsigned char mac[32])
{
    contexts_t *contexts = take_contexts(key);
    size_t len = 0;

    /* A NULL key starts over under the key the context holds. */
    if (!contexts || !EVP_MAC_init(contexts->mac, NULL, 0, NULL) ||
        !EVP_MAC_update(contexts->mac, (const unsigned char *)data, strlen(data)) ||
        !EVP_MAC_final(contexts->mac, mac, &len, 32) || len != 32) {
        /* Never a predictable token: one that matches nothing. */
        apr_generate_random_bytes(mac, 32);
    }
    give_back_contexts(key, contexts);
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
