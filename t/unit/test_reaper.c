/* The reap decision. */
#include "testutil.h"

#include "reaper.h"

START_TEST(deletes_are_retried_only_when_it_can_help)
{
    ck_assert_int_eq(okey_reap_classify(204, 1), OKEY_DELETE_DONE);
    ck_assert_int_eq(okey_reap_classify(404, 1), OKEY_DELETE_DONE);
    ck_assert_int_eq(okey_reap_classify(0, 1), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(429, 1), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(503, OKEY_REAP_ATTEMPTS - 1), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(503, OKEY_REAP_ATTEMPTS), OKEY_DELETE_FAILED);
    ck_assert_int_eq(okey_reap_classify(401, 1), OKEY_DELETE_FAILED);
    ck_assert_int_eq(okey_reap_classify(400, 1), OKEY_DELETE_FAILED);
}
END_TEST

START_TEST(backoff_doubles_and_honours_retry_after_within_a_bound)
{
    apr_interval_time_t second = apr_time_from_sec(1);

    ck_assert_int_eq(okey_reap_backoff(second, 1, -1), second);
    ck_assert_int_eq(okey_reap_backoff(second, 3, -1), 4 * second);
    ck_assert_int_eq(okey_reap_backoff(second, 1, 7), 7 * second);
    ck_assert_int_eq(okey_reap_backoff(second, 3, 2), 4 * second);
    ck_assert_int_eq(okey_reap_backoff(second, 1, 100000),
                     apr_time_from_sec(OKEY_REAP_RETRY_AFTER_MAX));
    ck_assert_int_le(okey_reap_backoff(second, 50, -1),
                     2 * apr_time_from_sec(OKEY_REAP_RETRY_AFTER_MAX));
}
END_TEST

Suite *okey_reaper_suite(void)
{
    Suite *suite = suite_create("reaper");
    TCase *tc = test_case("decide");

    tcase_add_test(tc, deletes_are_retried_only_when_it_can_help);
    tcase_add_test(tc, backoff_doubles_and_honours_retry_after_within_a_bound);
    suite_add_tcase(suite, tc);
    return suite;
}
