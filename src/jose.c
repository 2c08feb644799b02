/* JOSE sealing: the cookie key and what it does. Text sealed as a compact
 * JWE with alg dir and enc A256GCM, and opened again; MACs and digests
 * under the same key; and JWEs of other algorithms opened with cjose. */
#include "jose.h"

#include <apr_strings.h>
#include <limits.h>
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
 * nothing. The digest (for PKCE challenges) is fetched once. */
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

int okey_state_key_sha256(const okey_state_key_t *key, const char *data,
                          unsigned char digest[32])
{
    contexts_t *contexts = take_contexts(key);
    int ok = contexts && EVP_DigestInit_ex2(contexts->digest, key->sha256, NULL) &&
             EVP_DigestUpdate(contexts->digest, data, strlen(data)) &&
             EVP_DigestFinal_ex(contexts->digest, digest, NULL);

    give_back_contexts(key, contexts);
    return ok;
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
    at = okey_b64url_encode_into(at, iv, OKEY_SEAL_IV_BYTES);
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
    unsigned char fresh_iv[OKEY_SEAL_IV_BYTES];
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
    char *plain = tag && iv_len == OKEY_SEAL_IV_BYTES && tag_len == TAG_BYTES &&
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
