/* The token bucket that bounds how often one person has My keys list. */
#include "testutil.h"

#include "okey.h"

#define SEC(n) apr_time_from_sec(n)

START_TEST(a_burst_then_one_per_refill)
{
    okey_rate_t rate = {0, 0};
    apr_int64_t wait = -1;
    apr_time_t now = SEC(1000);
    int i;

    for (i = 0; i < 5; i++) {
        ck_assert(okey_rate_take(&rate, now, 5, SEC(3), &wait));
        ck_assert_int_eq(wait, 0);
    }
    ck_assert(!okey_rate_take(&rate, now, 5, SEC(3), &wait));
    ck_assert_int_eq(wait, 3);
    /* Waiting earns them back, one per refill. */
    ck_assert(!okey_rate_take(&rate, now + SEC(2), 5, SEC(3), &wait));
    ck_assert_int_eq(wait, 1);
    ck_assert(okey_rate_take(&rate, now + SEC(3), 5, SEC(3), &wait));
    ck_assert(!okey_rate_take(&rate, now + SEC(3), 5, SEC(3), &wait));
    /* Idle long enough, the whole burst is back, and no more. */
    for (i = 0; i < 5; i++) {
        ck_assert(okey_rate_take(&rate, now + SEC(3600), 5, SEC(3), &wait));
    }
    ck_assert(!okey_rate_take(&rate, now + SEC(3600), 5, SEC(3), &wait));
    /* A clock that steps back gives nothing. */
    ck_assert(!okey_rate_take(&rate, now, 5, SEC(3), &wait));
}
END_TEST

Suite *okey_rate_suite(void)
{
    Suite *suite = suite_create("rate");
    TCase *tc = test_case("rate");

    tcase_add_test(tc, a_burst_then_one_per_refill);
    suite_add_tcase(suite, tc);
    return suite;
}
