/* The reap decision. */
#include "testutil.h"

#include "reaper.h"

START_TEST(deletes_are_retried_only_when_it_can_help)
{
    ck_assert_int_eq(okey_reap_classify(204, 1, 0), OKEY_DELETE_DONE);
    ck_assert_int_eq(okey_reap_classify(0, 1, 0), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(429, 1, 0), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(503, OKEY_REAP_ATTEMPTS - 1, 0), OKEY_DELETE_RETRY);
    ck_assert_int_eq(okey_reap_classify(503, OKEY_REAP_ATTEMPTS, 0), OKEY_DELETE_FAILED);
    ck_assert_int_eq(okey_reap_classify(401, 1, 0), OKEY_DELETE_FAILED);
    ck_assert_int_eq(okey_reap_classify(400, 1, 0), OKEY_DELETE_FAILED);
}
END_TEST

START_TEST(a_key_is_counted_once_whoever_deleted_it)
{
    /* A 404 first: someone else deleted it, so this delete is not counted. */
    ck_assert_int_eq(okey_reap_classify(404, 1, 0), OKEY_DELETE_GONE);
    ck_assert_int_eq(okey_reap_classify(404, OKEY_REAP_ATTEMPTS, 0), OKEY_DELETE_GONE);
    /* A 404 after a delete that timed out or answered 5xx: that one did it. */
    ck_assert(okey_reap_delete_unclear(0));
    ck_assert(okey_reap_delete_unclear(502));
    ck_assert(!okey_reap_delete_unclear(429));
    ck_assert_int_eq(okey_reap_classify(404, 2, 1), OKEY_DELETE_DONE);
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
    tcase_add_test(tc, a_key_is_counted_once_whoever_deleted_it);
    tcase_add_test(tc, backoff_doubles_and_honours_retry_after_within_a_bound);
    suite_add_tcase(suite, tc);
    return suite;
}
