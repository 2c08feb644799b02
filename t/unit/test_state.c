/* The sign-in state cookie. */
#include "testutil.h"

#include <apr_strings.h>
#include <cjose/cjose.h>
#include <string.h>

#include "state.h"

#define SECOND APR_USEC_PER_SEC

static okey_state_key_t *key_for(const char *passphrase)
{
    okey_state_key_t *key = NULL;

    ck_assert_ptr_null(okey_state_key_create(test_pool, passphrase, &key));
    return key;
}

static const char *sealed_now(okey_state_key_t *key, apr_time_t now,
                              okey_state_t **state)
{
    const char *sealed = NULL;

    ck_assert_ptr_null(okey_state_new(test_pool, now, state));
    ck_assert_ptr_null(okey_state_seal(test_pool, key, *state, &sealed));
    return sealed;
}

START_TEST(state_round_trips)
{
    okey_state_key_t *key = key_for("a passphrase");
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    const char *sealed = sealed_now(key, now, &state);

    ck_assert_ptr_null(okey_state_open(test_pool, key, sealed, now + 599 * SECOND, &opened));
    ck_assert_str_eq(opened->state, state->state);
    ck_assert_str_eq(opened->nonce, state->nonce);
    ck_assert_str_eq(opened->verifier, state->verifier);
    ck_assert(okey_state_token_valid(state->state));
    ck_assert_str_ne(state->state, state->nonce);
    ck_assert_ptr_null(strstr(sealed, state->verifier));
    /* The same passphrase gives the same key, as on servers behind one balancer. */
    ck_assert_ptr_null(okey_state_open(test_pool, key_for("a passphrase"), sealed, now, &opened));
    ck_assert_int_eq(opened->ttl, 0);
    ck_assert_int_eq(opened->next_keys, 0);
}
END_TEST

START_TEST(lifetime_and_destination_travel_sealed)
{
    okey_state_key_t *key = key_for("a passphrase");
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    const char *sealed = NULL;

    ck_assert_ptr_null(okey_state_new(test_pool, now, &state));
    state->ttl = 28800;
    state->next_keys = 1;
    ck_assert_ptr_null(okey_state_seal(test_pool, key, state, &sealed));
    ck_assert_ptr_null(okey_state_open(test_pool, key, sealed, now, &opened));
    ck_assert_int_eq(opened->ttl, 28800);
    ck_assert_int_eq(opened->next_keys, 1);
}
END_TEST

START_TEST(tampered_state_is_refused)
{
    okey_state_key_t *key = key_for("a passphrase");
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    char *sealed = apr_pstrdup(test_pool, sealed_now(key, now, &state));
    char *cipher = strrchr(sealed, '.') - 10;
    okey_err_t *err;

    *cipher = *cipher == 'A' ? 'B' : 'A';
    err = okey_state_open(test_pool, key, sealed, now, &opened);
    ck_assert_int_eq(err->status, 400);
    ck_assert_ptr_null(opened);
    ck_assert_int_eq(okey_state_open(test_pool, key, "garbage", now, &opened)->status, 400);
    ck_assert_int_eq(okey_state_open(test_pool, key, "", now, &opened)->status, 400);
}
END_TEST

/* Each segment of a sealed cookie matters: header, IV, ciphertext and tag
 * changed by one character, cut short or given an encrypted key. */
START_TEST(every_segment_is_checked)
{
    okey_state_key_t *key = key_for("a passphrase");
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    const char *sealed = sealed_now(key, now, &state);
    const char *dots[4];
    const char *at = sealed;
    int i;

    for (i = 0; i < 4; i++) {
        dots[i] = strchr(at, '.');
        at = dots[i] + 1;
    }
    for (i = 0; i < 5; i++) {
        char *changed = apr_pstrdup(test_pool, sealed);
        apr_size_t at_char = (i == 0 ? 3 : (apr_size_t)(dots[i == 1 ? 1 : i - 1] - sealed) + 2);

        if (i == 1) {
            /* An encrypted key where dir has none. */
            changed = apr_pstrcat(test_pool, apr_pstrndup(test_pool, sealed,
                                                          (apr_size_t)(dots[0] - sealed) + 1),
                                  "QUFB", dots[1], NULL);
        }
        else {
            changed[at_char] = changed[at_char] == 'A' ? 'B' : 'A';
        }
        ck_assert_msg(okey_state_open(test_pool, key, changed, now, &opened) != NULL,
                      "segment %d changed and accepted", i);
    }
    ck_assert_ptr_nonnull(okey_state_open(test_pool, key,
                                          apr_pstrndup(test_pool, sealed, strlen(sealed) - 1),
                                          now, &opened));
    ck_assert_ptr_null(okey_state_open(test_pool, key, sealed, now, &opened));
}
END_TEST

/* The state cookie is a standard JWE (dir, A256GCM): another
 * implementation opens it with the same key. */
START_TEST(state_cookies_are_standard_jwe)
{
    unsigned char raw[OKEY_STATE_KEY_BYTES];
    okey_state_key_t *key = NULL;
    cjose_jwk_t *jwk;
    cjose_jwe_t *jwe;
    size_t len = 0;
    uint8_t *plain;
    const char *sealed = NULL;
    okey_state_t *state = NULL;

    memset(raw, 7, sizeof(raw));
    ck_assert_ptr_null(okey_state_key_from_bytes(test_pool, raw, &key));
    jwk = cjose_jwk_create_oct_spec(raw, sizeof(raw), NULL);
    ck_assert_ptr_null(okey_state_new(test_pool, apr_time_now(), &state));
    ck_assert_ptr_null(okey_state_seal(test_pool, key, state, &sealed));
    jwe = cjose_jwe_import(sealed, strlen(sealed), NULL);
    plain = cjose_jwe_decrypt(jwe, jwk, &len, NULL);
    ck_assert_ptr_nonnull(plain);
    ck_assert_ptr_nonnull(strstr(apr_pstrndup(test_pool, (const char *)plain, len),
                                 state->verifier));
    cjose_get_dealloc()(plain);
    cjose_jwe_release(jwe);
    cjose_jwk_release(jwk);
}
END_TEST

START_TEST(expired_state_is_refused)
{
    okey_state_key_t *key = key_for(NULL);
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    const char *sealed = sealed_now(key, now, &state);
    okey_err_t *err = okey_state_open(test_pool, key, sealed,
                                      now + (OKEY_STATE_LIFETIME + 1) * SECOND, &opened);

    ck_assert_int_eq(err->status, 400);
    ck_assert_ptr_nonnull(strstr(err->log_msg, "expired"));
    /* Nor is a state from the future accepted. */
    ck_assert_ptr_nonnull(okey_state_open(test_pool, key, sealed, now - 120 * SECOND, &opened));
}
END_TEST

START_TEST(state_under_another_key_is_refused)
{
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    apr_time_t now = apr_time_now();
    const char *sealed = sealed_now(key_for("one"), now, &state);

    ck_assert_int_eq(okey_state_open(test_pool, key_for("two"), sealed, now, &opened)->status, 400);
    /* Without a passphrase each start draws a new random key. */
    sealed = sealed_now(key_for(NULL), now, &state);
    ck_assert_ptr_nonnull(okey_state_open(test_pool, key_for(NULL), sealed, now, &opened));
}
END_TEST

START_TEST(challenge_is_s256_of_the_verifier)
{
    /* RFC 7636 appendix B. */
    ck_assert_str_eq(okey_state_challenge(test_pool, key_for(NULL), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(token_shape_is_checked)
{
    ck_assert(okey_state_token_valid("abcdefghijklmnop_-09"));
    ck_assert(!okey_state_token_valid("short"));
    ck_assert(!okey_state_token_valid("abcdefghijklmnop<script>"));
    ck_assert(!okey_state_token_valid("abcdefghijklmnop;x=y"));
    ck_assert(!okey_state_token_valid(NULL));
}
END_TEST

START_TEST(cookies_are_found_and_set)
{
    apr_array_header_t *cookies = okey_state_cookies(
        test_pool, "a=1; okey_state_xxxxxxxxxxxxxxxx=v1;okey_state_yyyyyyyyyyyyyyyy=v2; "
        "b=okey_state_zzzzzzzzzzzzzzzz; okey_state_<junk>=v3; "
        "__Host-okey_state_wwwwwwwwwwwwwwww=v4", 0);

    ck_assert_int_eq(cookies->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(cookies, 1, okey_state_cookie_t).name,
                     "okey_state_yyyyyyyyyyyyyyyy");
    ck_assert_str_eq(APR_ARRAY_IDX(cookies, 1, okey_state_cookie_t).value, "v2");
    ck_assert_str_eq(okey_state_set_cookie(test_pool, "okey_state_x", "v", 1),
                     "okey_state_x=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure");
    ck_assert_str_eq(okey_state_set_cookie(test_pool, "okey_state_x", NULL, 0),
                     "okey_state_x=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 "
                     "00:00:00 GMT; HttpOnly; SameSite=Lax");
}
END_TEST

START_TEST(secure_cookies_carry_the_host_prefix)
{
    apr_array_header_t *cookies = okey_state_cookies(
        test_pool, "okey_state_xxxxxxxxxxxxxxxx=v1; __Host-okey_state_yyyyyyyyyyyyyyyy=v2",
        1);

    ck_assert_str_eq(okey_state_cookie_prefix(1), "__Host-okey_state_");
    ck_assert_int_eq(cookies->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(cookies, 0, okey_state_cookie_t).value, "v2");
}
END_TEST

START_TEST(junk_state_cookies_are_bounded)
{
    const char *header = "";
    apr_array_header_t *cookies;
    int i;

    for (i = 0; i < 500; i++) {
        header = apr_psprintf(test_pool, "%sokey_state_%016d=x; ", header, i);
    }
    cookies = okey_state_cookies(test_pool, header, 0);
    ck_assert_int_eq(cookies->nelts, OKEY_STATE_MAX_SEEN);
}
END_TEST

START_TEST(oldest_and_unreadable_cookies_are_dropped)
{
    okey_state_key_t *key = key_for("p");
    apr_array_header_t *cookies = apr_array_make(test_pool, 5, sizeof(okey_state_cookie_t));
    apr_time_t now = apr_time_now();
    okey_state_t *state;
    apr_array_header_t *drop;
    int i;

    for (i = 0; i < 4; i++) {
        okey_state_cookie_t *c = apr_array_push(cookies);

        c->name = apr_psprintf(test_pool, "okey_state_%d", i);
        /* Cookie 2 is the oldest. */
        c->value = sealed_now(key, now - (i == 2 ? 9 : i) * 1000, &state);
    }
    drop = okey_state_cookies_to_drop(test_pool, key, cookies, now);
    ck_assert_int_eq(drop->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(drop, 0, const char *), "okey_state_2");

    APR_ARRAY_IDX(cookies, 0, okey_state_cookie_t).value = "unreadable";
    drop = okey_state_cookies_to_drop(test_pool, key, cookies, now);
    ck_assert_int_eq(drop->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(drop, 0, const char *), "okey_state_0");

    apr_array_pop(cookies);
    apr_array_pop(cookies);
    drop = okey_state_cookies_to_drop(test_pool, key, cookies, now);
    ck_assert_int_eq(drop->nelts, 1); /* only the unreadable one */
}
END_TEST

Suite *okey_state_suite(void)
{
    Suite *suite = suite_create("state");
    TCase *tc = test_case("cookie");

    tcase_add_test(tc, state_round_trips);
    tcase_add_test(tc, lifetime_and_destination_travel_sealed);
    tcase_add_test(tc, tampered_state_is_refused);
    tcase_add_test(tc, every_segment_is_checked);
    tcase_add_test(tc, state_cookies_are_standard_jwe);
    tcase_add_test(tc, expired_state_is_refused);
    tcase_add_test(tc, state_under_another_key_is_refused);
    tcase_add_test(tc, challenge_is_s256_of_the_verifier);
    tcase_add_test(tc, token_shape_is_checked);
    tcase_add_test(tc, cookies_are_found_and_set);
    tcase_add_test(tc, oldest_and_unreadable_cookies_are_dropped);
    tcase_add_test(tc, secure_cookies_carry_the_host_prefix);
    tcase_add_test(tc, junk_state_cookies_are_bounded);
    suite_add_tcase(suite, tc);
    return suite;
}
