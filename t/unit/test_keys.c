/* The service-account naming scheme. */
#include "testutil.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

#include "keys.h"

START_TEST(names_carry_expiry_tag_and_lower_case_address)
{
    const char *name = okey_keys_name(test_pool, 1795705143, "k3x9q", "Alice@Example.COM");
    apr_int64_t expires = 0;
    const char *email = NULL;

    ck_assert_int_eq(strncmp(name, "okey-1795705143-k3x9q", 21), 0);
    ck_assert_int_eq(strspn(name + 21, "abcdefghijklmnopqrstuvwxyz0123456789"), 3);
    ck_assert_str_eq(name + 24, "-alice@example.com");
    ck_assert(okey_keys_parse_name(test_pool, name, &expires, &email));
    ck_assert_int_eq(expires, 1795705143);
    ck_assert_str_eq(email, "alice@example.com");
}
END_TEST

START_TEST(two_issues_in_one_second_get_two_names)
{
    apr_hash_t *seen = apr_hash_make(test_pool);
    const char *name = NULL;
    int i;

    for (i = 0; i < 200; i++) {
        ck_assert_ptr_null(okey_keys_new_name(test_pool, 1795705143, "a@b.example", &name));
        ck_assert_ptr_null(apr_hash_get(seen, name, APR_HASH_KEY_STRING));
        apr_hash_set(seen, name, APR_HASH_KEY_STRING, name);
    }
}
END_TEST

START_TEST(names_parse_back)
{
    apr_int64_t expires = 0;
    const char *email = NULL;

    /* Untagged names of releases 1 and 2 are still ours. */
    ck_assert(okey_keys_parse_name(test_pool, "okey-1795705143-alice@example.com",
                                   &expires, &email));
    ck_assert_int_eq(expires, 1795705143);
    ck_assert_str_eq(email, "alice@example.com");
    ck_assert(okey_keys_parse_name(test_pool, "okey-0-a-b@c", &expires, &email));
    ck_assert_str_eq(email, "a-b@c");
    /* An old address that begins like a tag keeps its whole local part:
     * the tag's check characters do not fit it. */
    ck_assert(okey_keys_parse_name(test_pool, "okey-1795705143-abcdefgh-x@example.com",
                                   &expires, &email));
    ck_assert_str_eq(email, "abcdefgh-x@example.com");
}
END_TEST

START_TEST(old_names_are_rarely_read_as_tagged)
{
    /* Release-2 names whose address begins with eight tag characters and a
     * hyphen: the check characters misread about one in 46 656. */
    apr_uint32_t seed = 12345;
    int misread = 0;
    int i, j;

    for (i = 0; i < 5000; i++) {
        char local[9];
        apr_int64_t expires = 0;
        const char *email = NULL;

        for (j = 0; j < 8; j++) {
            seed = seed * 1103515245 + 12345;
            local[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[(seed >> 16) % 36];
        }
        local[8] = '\0';
        ck_assert(okey_keys_parse_name(test_pool, apr_psprintf(test_pool,
                                       "okey-1795705143-%s-x@example.com", local),
                                       &expires, &email));
        misread += strcmp(email, apr_pstrcat(test_pool, local, "-x@example.com", NULL)) != 0;
    }
    ck_assert_int_le(misread, 2);
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

Suite *okey_keys_suite(void)
{
    Suite *suite = suite_create("keys");
    TCase *tc = test_case("naming");

    tcase_add_test(tc, names_carry_expiry_tag_and_lower_case_address);
    tcase_add_test(tc, two_issues_in_one_second_get_two_names);
    tcase_add_test(tc, names_parse_back);
    tcase_add_test(tc, old_names_are_rarely_read_as_tagged);
    tcase_add_test(tc, garbage_names_do_not_parse);
    suite_add_tcase(suite, tc);
    return suite;
}
