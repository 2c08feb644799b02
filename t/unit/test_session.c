/* Lifetimes a person asks for, the My keys session and its CSRF tokens. */
#include "testutil.h"

#include <apr_strings.h>
#include <string.h>

#include "lifetime.h"
#include "session.h"

START_TEST(lifetimes_parse_with_units)
{
    static const struct { const char *text; apr_int64_t seconds; } good[] = {
        {"3600", 3600}, {"90m", 5400}, {"8h", 28800}, {"1d", 86400}, {"60", 60},
        {"60s", 60}, {"0000120", 120},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        apr_int64_t seconds = 0;

        ck_assert_msg(!okey_lifetime_parse(test_pool, good[i].text, 86400, &seconds),
                      "refused %s", good[i].text);
        ck_assert_int_eq(seconds, good[i].seconds);
    }
}
END_TEST

START_TEST(bad_lifetimes_get_a_400_naming_the_range)
{
    static const char *const bad[] = {
        "1e9", "-5", "8x", "", "59", "2d", "86401", "8 h", "8hh", "h", "1.5h",
        "+60", "999999999999d", "0x10", "60\n",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        apr_int64_t seconds = 7;
        okey_err_t *err = okey_lifetime_parse(test_pool, bad[i], 86400, &seconds);

        ck_assert_msg(err != NULL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(err->status, 400);
        ck_assert_ptr_nonnull(strstr(err->user_msg, "from 1 minute to 1 day"));
        ck_assert_int_eq(seconds, 0);
    }
}
END_TEST

START_TEST(lifetimes_read_as_words)
{
    ck_assert_str_eq(okey_lifetime_text(test_pool, 28800), "8 hours");
    ck_assert_str_eq(okey_lifetime_text(test_pool, 86400), "1 day");
    ck_assert_str_eq(okey_lifetime_text(test_pool, 5400), "1 hour 30 minutes");
    ck_assert_str_eq(okey_lifetime_text(test_pool, 90061), "1 day 1 hour");
    ck_assert_str_eq(okey_lifetime_text(test_pool, 86430), "1 day");
    ck_assert_str_eq(okey_lifetime_text(test_pool, 61), "1 minute 1 second");
}
END_TEST

static okey_state_key_t *key_of(const char *passphrase)
{
    unsigned char bytes[OKEY_STATE_KEY_BYTES];
    okey_state_key_t *key = NULL;

    memset(bytes, 0, sizeof(bytes));
    apr_cpystrn((char *)bytes, passphrase, sizeof(bytes));
    ck_assert_ptr_null(okey_state_key_from_bytes(test_pool, bytes, &key));
    return key;
}

START_TEST(sessions_round_trip_and_expire)
{
    okey_state_key_t *key = key_of("one");
    okey_session_t *session = NULL;
    const char *sealed = NULL;
    const char *why = NULL;
    okey_session_t *opened;

    ck_assert_ptr_null(okey_session_new(test_pool, "Alice@Example.com",
                                        "https://issuer", "sub-1", 1000, 900, &session));
    ck_assert_ptr_null(okey_session_seal(test_pool, key, session, &sealed));
    opened = okey_session_open(test_pool, key, sealed, 1899, &why);
    ck_assert_ptr_nonnull(opened);
    ck_assert_str_eq(opened->email, "alice@example.com");
    ck_assert_str_eq(opened->issuer, "https://issuer");
    ck_assert_str_eq(opened->id, session->id);
    ck_assert_ptr_null(okey_session_open(test_pool, key, sealed, 1900, &why));
    ck_assert_str_eq(why, "session cookie expired");
    ck_assert_ptr_null(okey_session_open(test_pool, key_of("two"), sealed, 1000, &why));
    ck_assert_ptr_null(okey_session_open(test_pool, key, "x.y", 1000, &why));
    ck_assert_ptr_null(okey_session_open(test_pool, key,
                                         apr_pstrcat(test_pool, sealed, "A", NULL), 1000,
                                         &why));
}
END_TEST

/* Names from an authentication module are whatever it says: quotes and
 * controls travel escaped, and bytes that are not UTF-8 get no cookie. */
START_TEST(sessions_carry_any_text_escaped)
{
    okey_state_key_t *key = key_of("one");
    okey_session_t *session = NULL;
    const char *sealed = NULL;
    const char *why = NULL;
    okey_session_t *opened;

    ck_assert_ptr_null(okey_session_new(test_pool, "o\"brien\\@x\tz", "https://i\"",
                                        "s\x01\xc3\xa9", 1000, 900, &session));
    ck_assert_ptr_null(okey_session_seal(test_pool, key, session, &sealed));
    opened = okey_session_open(test_pool, key, sealed, 1001, &why);
    ck_assert_ptr_nonnull(opened);
    ck_assert_str_eq(opened->email, "o\"brien\\@x\tz");
    ck_assert_str_eq(opened->issuer, "https://i\"");
    ck_assert_str_eq(opened->subject, "s\x01\xc3\xa9");
    ck_assert_ptr_null(okey_session_new(test_pool, "bad\xff@x", "i", "s", 1000, 900,
                                        &session));
    ck_assert_ptr_nonnull(okey_session_seal(test_pool, key, session, &sealed));
}
END_TEST

START_TEST(cookie_pairs_are_split_exactly)
{
    const char *cursor = " a=1;;b ; c=x=y;d=";
    okey_cookie_t cookie;

    ck_assert(okey_cookie_next(&cursor, &cookie));
    ck_assert_int_eq(cookie.name_len, 1);
    ck_assert_int_eq(cookie.value_len, 1);
    ck_assert_int_eq(cookie.value[0], '1');
    ck_assert(okey_cookie_next(&cursor, &cookie));
    ck_assert_ptr_null(cookie.value);
    ck_assert_int_eq(cookie.name_len, 2);
    ck_assert(okey_cookie_next(&cursor, &cookie));
    ck_assert_int_eq(cookie.name_len, 1);
    ck_assert_int_eq(cookie.value_len, 3);
    ck_assert(okey_cookie_next(&cursor, &cookie));
    ck_assert_int_eq(cookie.value_len, 0);
    ck_assert(!okey_cookie_next(&cursor, &cookie));
    ck_assert(!okey_cookie_next(&cursor, &cookie));
}
END_TEST

START_TEST(csrf_tokens_bind_to_one_session)
{
    okey_state_key_t *key = key_of("one");
    okey_session_t *first = NULL, *second = NULL;
    const char *token;

    ck_assert_ptr_null(okey_session_new(test_pool, "a@x", "i", "s", 1, 900, &first));
    ck_assert_ptr_null(okey_session_new(test_pool, "a@x", "i", "s", 1, 900, &second));
    token = okey_session_csrf(test_pool, key, first);
    ck_assert(okey_session_csrf_ok(test_pool, key, first, token));
    ck_assert(!okey_session_csrf_ok(test_pool, key, second, token));
    ck_assert(!okey_session_csrf_ok(test_pool, key_of("two"), first, token));
    ck_assert(!okey_session_csrf_ok(test_pool, key, first, NULL));
    ck_assert(!okey_session_csrf_ok(test_pool, key, first, ""));
    ck_assert(!okey_session_csrf_ok(test_pool, key, first,
                                    apr_pstrndup(test_pool, token, strlen(token) - 1)));
}
END_TEST

START_TEST(session_cookie_is_found_by_exact_name)
{
    ck_assert_str_eq(okey_session_cookie(test_pool, "a=1; okey_session=V; b=2", 0), "V");
    ck_assert_ptr_null(okey_session_cookie(test_pool, "okey_session_x=V", 0));
    ck_assert_ptr_null(okey_session_cookie(test_pool, "okey_session=V", 1));
    ck_assert_str_eq(okey_session_cookie(test_pool, "__Host-okey_session=W", 1), "W");
    ck_assert_ptr_nonnull(strstr(okey_session_set_cookie(test_pool, "V", 900, 1),
                                 "__Host-okey_session=V; Path=/; Max-Age=900;"));
    ck_assert_ptr_nonnull(strstr(okey_session_set_cookie(test_pool, "V", 900, 1),
                                 "HttpOnly; SameSite=Strict; Secure"));
    ck_assert_ptr_nonnull(strstr(okey_session_set_cookie(test_pool, NULL, 900, 0),
                                 "Max-Age=0"));
}
END_TEST

START_TEST(issue_tokens_bind_address_and_time)
{
    okey_state_key_t *key = key_of("one");
    const char *token = okey_session_issue_token(test_pool, key, "Alice@Example.com", 5000);

    ck_assert(okey_session_issue_token_ok(test_pool, key, "alice@example.com", token, 5000));
    ck_assert(okey_session_issue_token_ok(test_pool, key, "alice@example.com", token, 8600));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "alice@example.com", token, 8601));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "alice@example.com", token, 4900));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "bob@example.com", token, 5000));
    ck_assert(!okey_session_issue_token_ok(test_pool, key_of("two"), "alice@example.com",
                                           token, 5000));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "alice@example.com",
                                           apr_pstrcat(test_pool, "6", token, NULL), 5000));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "alice@example.com", "5000", 5000));
    ck_assert(!okey_session_issue_token_ok(test_pool, key, "alice@example.com", NULL, 5000));
}
END_TEST

Suite *okey_session_suite(void)
{
    Suite *suite = suite_create("session");
    TCase *tc = test_case("lifetime and session");

    tcase_add_test(tc, lifetimes_parse_with_units);
    tcase_add_test(tc, bad_lifetimes_get_a_400_naming_the_range);
    tcase_add_test(tc, lifetimes_read_as_words);
    tcase_add_test(tc, sessions_round_trip_and_expire);
    tcase_add_test(tc, sessions_carry_any_text_escaped);
    tcase_add_test(tc, cookie_pairs_are_split_exactly);
    tcase_add_test(tc, csrf_tokens_bind_to_one_session);
    tcase_add_test(tc, session_cookie_is_found_by_exact_name);
    tcase_add_test(tc, issue_tokens_bind_address_and_time);
    suite_add_tcase(suite, tc);
    return suite;
}
