/* JOSE sealing: the cookie key, sealed text, MACs and digests. */
#include "testutil.h"

#include <apr_strings.h>
#include <cjose/cjose.h>
#include <string.h>

#include "jose.h"

static okey_state_key_t *key_for(const char *passphrase)
{
    okey_state_key_t *key = NULL;

    ck_assert_ptr_null(okey_state_key_create(test_pool, passphrase, &key));
    return key;
}

/* Sealed text is a standard JWE (dir, A256GCM): another implementation
 * opens it with the same key, and what that one seals opens here. */
START_TEST(sealed_text_is_standard_jwe)
{
    unsigned char raw[OKEY_STATE_KEY_BYTES];
    okey_state_key_t *key = NULL;
    cjose_jwk_t *jwk;
    cjose_jwe_t *jwe;
    size_t len = 0;
    uint8_t *plain;
    const char *sealed = NULL;
    int i;

    memset(raw, 7, sizeof(raw));
    ck_assert_ptr_null(okey_state_key_from_bytes(test_pool, raw, &key));
    jwk = cjose_jwk_create_oct_spec(raw, sizeof(raw), NULL);
    /* Many seals in a row reuse the contexts: every one must open. */
    for (i = 0; i < 40; i++) {
        ck_assert_ptr_null(okey_seal(test_pool, key, "{\"a\":1}", NULL, &sealed));
        jwe = cjose_jwe_import(sealed, strlen(sealed), NULL);
        plain = cjose_jwe_decrypt(jwe, jwk, &len, NULL);
        ck_assert_ptr_nonnull(plain);
        ck_assert_int_eq(len, 7);
        ck_assert_int_eq(memcmp(plain, "{\"a\":1}", 7), 0);
        cjose_get_dealloc()(plain);
        cjose_jwe_release(jwe);
        ck_assert_str_eq(okey_unseal(test_pool, key, sealed), "{\"a\":1}");
    }
    /* Headers another implementation writes open; ones that ask for what
     * this reader does not do (compression, critical extensions) do not. */
    for (i = 0; i < 3; i++) {
        static const char *const extra[] = {"kid", "zip", "crit"};
        cjose_header_t *header = cjose_header_new(NULL);
        char *other;

        cjose_header_set(header, CJOSE_HDR_ALG, CJOSE_HDR_ALG_DIR, NULL);
        cjose_header_set(header, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, NULL);
        cjose_header_set(header, extra[i], "DEF", NULL);
        jwe = cjose_jwe_encrypt(jwk, header, (const uint8_t *)"{}", 2, NULL);
        other = cjose_jwe_export(jwe, NULL);
        ck_assert_ptr_nonnull(other);
        if (i == 0) {
            ck_assert_str_eq(okey_unseal(test_pool, key, other), "{}");
        }
        else {
            ck_assert_msg(okey_unseal(test_pool, key, other) == NULL, "opened with %s",
                          extra[i]);
        }
        cjose_get_dealloc()(other);
        cjose_jwe_release(jwe);
        cjose_header_release(header);
    }
    cjose_jwk_release(jwk);
}
END_TEST

/* What one key seals, only that key (or one from the same passphrase)
 * opens; a given IV is used as given. */
START_TEST(sealed_text_opens_under_its_key_alone)
{
    okey_state_key_t *one = key_for("one");
    unsigned char iv[OKEY_SEAL_IV_BYTES];
    const char *sealed = NULL;
    const char *again = NULL;

    memset(iv, 3, sizeof(iv));
    ck_assert_ptr_null(okey_seal(test_pool, one, "{\"x\":2}", iv, &sealed));
    ck_assert_str_eq(okey_unseal(test_pool, key_for("one"), sealed), "{\"x\":2}");
    ck_assert_ptr_null(okey_unseal(test_pool, key_for("two"), sealed));
    ck_assert_ptr_null(okey_unseal(test_pool, key_for(NULL), sealed));
    ck_assert_ptr_null(okey_seal(test_pool, one, "{\"x\":2}", iv, &again));
    ck_assert_str_eq(again, sealed);
    ck_assert_ptr_null(okey_seal(test_pool, one, "{\"x\":2}", NULL, &again));
    ck_assert_str_ne(again, sealed);
    ck_assert_ptr_null(okey_unseal(test_pool, one, ""));
    ck_assert_ptr_null(okey_unseal(test_pool, one, "a.b.c.d.e"));
}
END_TEST

/* okey_jwe_open takes exactly the algorithm it is asked for. */
START_TEST(jwe_open_checks_the_algorithm)
{
    unsigned char raw[OKEY_STATE_KEY_BYTES];
    cjose_jwk_t *jwk;
    cjose_header_t *header = cjose_header_new(NULL);
    cjose_jwe_t *jwe;
    char *compact;

    memset(raw, 9, sizeof(raw));
    jwk = cjose_jwk_create_oct_spec(raw, sizeof(raw), NULL);
    cjose_header_set(header, CJOSE_HDR_ALG, CJOSE_HDR_ALG_DIR, NULL);
    cjose_header_set(header, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, NULL);
    jwe = cjose_jwe_encrypt(jwk, header, (const uint8_t *)"hello", 5, NULL);
    compact = cjose_jwe_export(jwe, NULL);
    ck_assert_str_eq(okey_jwe_open(test_pool, jwk, CJOSE_HDR_ALG_DIR, compact), "hello");
    ck_assert_ptr_null(okey_jwe_open(test_pool, jwk, CJOSE_HDR_ALG_RSA_OAEP, compact));
    cjose_get_dealloc()(compact);
    cjose_jwe_release(jwe);
    cjose_header_release(header);
    cjose_jwk_release(jwk);
}
END_TEST

START_TEST(macs_and_digests)
{
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
        0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
        0xf2, 0x00, 0x15, 0xad};
    okey_state_key_t *key = key_for("p");
    unsigned char mac[32], same[32], other[32], digest[32];

    okey_state_key_mac(key, "data", mac);
    okey_state_key_mac(key_for("p"), "data", same);
    ck_assert_int_eq(memcmp(mac, same, 32), 0);
    okey_state_key_mac(key_for("q"), "data", other);
    ck_assert_int_ne(memcmp(mac, other, 32), 0);
    okey_state_key_mac(key, "datb", other);
    ck_assert_int_ne(memcmp(mac, other, 32), 0);
    /* FIPS 180-2 appendix B.1. */
    ck_assert(okey_state_key_sha256(key, "abc", digest));
    ck_assert_int_eq(memcmp(digest, abc, 32), 0);
}
END_TEST

Suite *okey_jose_suite(void)
{
    Suite *suite = suite_create("jose");
    TCase *tc = test_case("jose");

    tcase_add_test(tc, sealed_text_is_standard_jwe);
    tcase_add_test(tc, sealed_text_opens_under_its_key_alone);
    tcase_add_test(tc, jwe_open_checks_the_algorithm);
    tcase_add_test(tc, macs_and_digests);
    suite_add_tcase(suite, tc);
    return suite;
}
