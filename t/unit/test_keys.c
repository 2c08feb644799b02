/* The service-account naming scheme. */
#include "testutil.h"

#include <apr_strings.h>

#include "keys.h"

START_TEST(names_carry_expiry_and_lower_case_address)
{
    ck_assert_str_eq(okey_keys_name(test_pool, 1795705143, "Alice@Example.COM"),
                     "okey-1795705143-alice@example.com");
}
END_TEST

START_TEST(names_parse_back)
{
    apr_int64_t expires = 0;
    const char *email = NULL;

    ck_assert(okey_keys_parse_name(test_pool, "okey-1795705143-alice@example.com",
                                   &expires, &email));
    ck_assert_int_eq(expires, 1795705143);
    ck_assert_str_eq(email, "alice@example.com");
    ck_assert(okey_keys_parse_name(test_pool, "okey-0-a-b@c", &expires, &email));
    ck_assert_str_eq(email, "a-b@c");
}
END_TEST

START_TEST(garbage_names_do_not_parse)
{
    static const char *const garbage[] = {
        "alice@example.com", "okey-", "okey--alice@example.com",
        "okey-12x-alice@example.com", "okey-1795705143-", "okey-1795705143-alice",
        "okey-1795705143alice@example.com", "OKEY-1795705143-alice@example.com",
        "okey-1234567890123-alice@example.com", "okey-1795705143-@example.com",
        "xokey-1795705143-alice@example.com", "",
    };
    apr_int64_t expires = 1;
    const char *email = "x";
    apr_size_t i;

    for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        ck_assert_msg(!okey_keys_parse_name(test_pool, garbage[i], &expires, &email),
                      "parsed '%s'", garbage[i]);
        ck_assert_ptr_null(email);
    }
}
END_TEST

static apr_array_header_t *owned_keys(int n)
{
    apr_array_header_t *owned = apr_array_make(test_pool, n, sizeof(okey_owned_key_t));
    int i;

    for (i = 0; i < n; i++) {
        okey_owned_key_t *key = apr_array_push(owned);

        key->service_account_id = apr_psprintf(test_pool, "svc_%d", i);
        key->created_at = 100 + i;
    }
    return owned;
}

START_TEST(the_cap_takes_the_oldest_and_spares_the_new_key)
{
    apr_array_header_t *victims = okey_keys_beyond_cap(test_pool, owned_keys(5), 3,
                                                       "svc_4");

    ck_assert_int_eq(victims->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(victims, 0, okey_owned_key_t).service_account_id,
                     "svc_0");
    ck_assert_str_eq(APR_ARRAY_IDX(victims, 1, okey_owned_key_t).service_account_id,
                     "svc_1");
    /* A new key that sorts first (clock skew) still stays. */
    victims = okey_keys_beyond_cap(test_pool, owned_keys(3), 1, "svc_0");
    ck_assert_int_eq(victims->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(victims, 0, okey_owned_key_t).service_account_id,
                     "svc_1");
    ck_assert_int_eq(okey_keys_beyond_cap(test_pool, owned_keys(3), 3, "x")->nelts, 0);
    /* In any order given, the oldest go first. */
    {
        apr_array_header_t *shuffled = owned_keys(4);

        APR_ARRAY_IDX(shuffled, 0, okey_owned_key_t).created_at = 500;
        victims = okey_keys_beyond_cap(test_pool, shuffled, 2, "svc_3");
        ck_assert_int_eq(victims->nelts, 2);
        ck_assert_str_eq(APR_ARRAY_IDX(victims, 0, okey_owned_key_t).service_account_id,
                         "svc_1");
        ck_assert_str_eq(APR_ARRAY_IDX(victims, 1, okey_owned_key_t).service_account_id,
                         "svc_2");
    }
    ck_assert_int_eq(okey_keys_beyond_cap(test_pool, owned_keys(3), 0, "x")->nelts, 0);
}
END_TEST

Suite *okey_keys_suite(void)
{
    Suite *suite = suite_create("keys");
    TCase *tc = test_case("naming");

    tcase_add_test(tc, the_cap_takes_the_oldest_and_spares_the_new_key);
    tcase_add_test(tc, names_carry_expiry_and_lower_case_address);
    tcase_add_test(tc, names_parse_back);
    tcase_add_test(tc, garbage_names_do_not_parse);
    suite_add_tcase(suite, tc);
    return suite;
}
