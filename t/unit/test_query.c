/* Query strings, and scrubbing credentials out of upstream text. */
#include "testutil.h"

#include <apr_strings.h>
#include <string.h>

#include "query.h"

static apr_array_header_t *parse(const char *query, const char **why)
{
    return okey_query_parse(test_pool, query, why);
}

START_TEST(parameters_decode_in_order)
{
    const char *why = NULL;
    apr_array_header_t *params = parse("code=a%2Fb+c&state=S&flag&&x=", &why);
    int count = 0;

    ck_assert_ptr_nonnull(params);
    ck_assert_int_eq(params->nelts, 4);
    ck_assert_str_eq(okey_query_get(params, "code", &count), "a/b c");
    ck_assert_int_eq(count, 1);
    ck_assert_str_eq(okey_query_get(params, "flag", &count), "");
    ck_assert_ptr_null(okey_query_get(params, "missing", &count));
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(parse(NULL, &why)->nelts, 0);
}
END_TEST

START_TEST(repeated_names_are_all_counted)
{
    const char *why = NULL;
    int count = 0;

    okey_query_get(parse("code=X&state=S&code=REAL", &why), "code", &count);
    ck_assert_int_eq(count, 2);
    okey_query_get(parse("c%6Fde=X&code=Y", &why), "code", &count);
    ck_assert_int_eq(count, 2);
}
END_TEST

START_TEST(malformed_queries_are_refused)
{
    static const char *const bad[] = {"code=%", "code=%4", "code=%zz", "code=a%00b",
                                      "%00=x"};
    const char *many = "";
    const char *why = NULL;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(parse(bad[i], &why) == NULL, "accepted %s", bad[i]);
        ck_assert_ptr_nonnull(why);
    }
    for (i = 0; i <= OKEY_QUERY_MAX_PARAMS; i++) {
        many = apr_psprintf(test_pool, "%sp%d=1&", many, (int)i);
    }
    ck_assert_ptr_null(parse(many, &why));
    ck_assert_str_eq(why, "too many parameters");
}
END_TEST

START_TEST(scrub_removes_keys_tokens_and_jwts)
{
    ck_assert_str_eq(okey_scrub(test_pool, "key sk-proj-abcdefgh1234 is bad"),
                     "key [redacted] is bad");
    ck_assert_str_eq(okey_scrub(test_pool, "Authorization: Bearer abc.def-ghi"),
                     "Authorization: [redacted]");
    ck_assert_str_eq(okey_scrub(test_pool, "token eyJhbGciOiJSUzI1NiJ9.e30.sig here"),
                     "token [redacted] here");
    ck_assert_str_eq(okey_scrub(test_pool, "opaque 0123456789abcdef0123456789abcdef!"),
                     "opaque [redacted]!");
    ck_assert_str_eq(okey_scrub(test_pool, "No such project proj_abc (archived)"),
                     "No such project proj_abc (archived)");
    ck_assert_str_eq(okey_scrub(test_pool, "task-12345678"), "task-12345678");
    ck_assert_ptr_null(okey_scrub(test_pool, NULL));
}
END_TEST

Suite *okey_query_suite(void)
{
    Suite *suite = suite_create("query");
    TCase *tc = test_case("parse");

    tcase_add_test(tc, parameters_decode_in_order);
    tcase_add_test(tc, repeated_names_are_all_counted);
    tcase_add_test(tc, malformed_queries_are_refused);
    tcase_add_test(tc, scrub_removes_keys_tokens_and_jwts);
    suite_add_tcase(suite, tc);
    return suite;
}
