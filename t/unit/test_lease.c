/* Leases that lapse by time, whoever holds them. */
#include "testutil.h"

#include "lease.h"

#define NOW apr_time_from_sec(1800000000)
#define LENGTH apr_time_from_sec(9)

START_TEST(a_lease_is_held_until_its_expiry_and_free_from_then_on)
{
    ck_assert(!okey_lease_free(NOW + 1, NOW, LENGTH));
    ck_assert(!okey_lease_free(NOW + LENGTH, NOW, LENGTH));
    ck_assert(okey_lease_free(NOW, NOW, LENGTH));
    ck_assert(okey_lease_free(NOW - 1, NOW, LENGTH));
}
END_TEST

START_TEST(a_lease_never_taken_is_free)
{
    ck_assert(okey_lease_free(0, NOW, LENGTH));
}
END_TEST

START_TEST(a_holder_that_stops_renewing_loses_the_lease_within_its_length)
{
    /* Whatever process holds it, or whether any still runs: only time. */
    apr_time_t taken = NOW;
    apr_time_t expires = taken + LENGTH;

    ck_assert(!okey_lease_free(expires, taken + LENGTH - 1, LENGTH));
    ck_assert(okey_lease_free(expires, taken + LENGTH, LENGTH));
}
END_TEST

START_TEST(a_lease_from_a_clock_set_back_is_free)
{
    ck_assert(okey_lease_free(NOW + LENGTH + OKEY_LEASE_SKEW + 1, NOW, LENGTH));
    ck_assert(okey_lease_free(NOW + apr_time_from_sec(86400), NOW, LENGTH));
}
END_TEST

START_TEST(a_claimant_that_read_the_clock_a_moment_earlier_sees_it_held)
{
    ck_assert(!okey_lease_free(NOW + LENGTH, NOW - 1000, LENGTH));
    ck_assert(!okey_lease_free(NOW + LENGTH, NOW - OKEY_LEASE_SKEW, LENGTH));
}
END_TEST

START_TEST(the_length_follows_the_timeout_within_bounds)
{
    ck_assert_int_eq(okey_lease_length(2), apr_time_from_sec(9));
    ck_assert_int_eq(okey_lease_length(10), apr_time_from_sec(25));
    ck_assert_int_eq(okey_lease_length(0), OKEY_LEASE_MIN);
    ck_assert_int_eq(okey_lease_length(-3), OKEY_LEASE_MIN);
    ck_assert_int_eq(okey_lease_length(300), OKEY_LEASE_MAX);
    /* Renewed several times per length, never less than once. */
    ck_assert_int_lt(okey_lease_renew_every(okey_lease_length(2)), okey_lease_length(2));
    ck_assert_int_gt(okey_lease_renew_every(OKEY_LEASE_MIN), 0);
}
END_TEST

Suite *okey_lease_suite(void)
{
    Suite *suite = suite_create("lease");
    TCase *tc = test_case("lapse");

    tcase_add_test(tc, a_lease_is_held_until_its_expiry_and_free_from_then_on);
    tcase_add_test(tc, a_lease_never_taken_is_free);
    tcase_add_test(tc, a_holder_that_stops_renewing_loses_the_lease_within_its_length);
    tcase_add_test(tc, a_lease_from_a_clock_set_back_is_free);
    tcase_add_test(tc, a_claimant_that_read_the_clock_a_moment_earlier_sees_it_held);
    tcase_add_test(tc, the_length_follows_the_timeout_within_bounds);
    suite_add_tcase(suite, tc);
    return suite;
}
