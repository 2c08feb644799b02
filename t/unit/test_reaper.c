/* The reap decision. */
#include "testutil.h"

#include "reaper.h"

#define NOW 1800000000
#define DAY 86400

static okey_reap_verdict_e decide(const char *name, apr_int64_t created_at, int legacy)
{
    apr_int64_t expires;
    const char *email;

    return okey_reap_decide(test_pool, name, created_at, NOW, DAY, legacy, &expires,
                            &email);
}

START_TEST(ours_are_reaped_from_their_expiry_on)
{
    ck_assert_int_eq(decide("okey-1800000000-a@b.example", NOW - 10, 0), OKEY_REAP_EXPIRED);
    ck_assert_int_eq(decide("okey-1799999999-a@b.example", NOW - 10, 0), OKEY_REAP_EXPIRED);
    ck_assert_int_eq(decide("okey-1800000001-a@b.example", NOW - 10, 0), OKEY_REAP_KEEP);
}
END_TEST

START_TEST(ours_are_reaped_when_created_longer_ago_than_the_expiration)
{
    /* An expiry far ahead does not outlive the configured lifetime. */
    ck_assert_int_eq(decide("okey-1900000000-a@b.example", NOW - DAY, 0), OKEY_REAP_EXPIRED);
    ck_assert_int_eq(decide("okey-1900000000-a@b.example", NOW - DAY + 1, 0), OKEY_REAP_KEEP);
    /* created_at in the future proves nothing. */
    ck_assert_int_eq(decide("okey-1900000000-a@b.example", NOW + 10 * DAY, 0), OKEY_REAP_KEEP);
    ck_assert_int_eq(decide("okey-1900000000-a@b.example", 0, 0), OKEY_REAP_KEEP);
}
END_TEST

START_TEST(foreign_and_garbage_names_are_kept)
{
    static const char *const names[] = {
        "production-bot", "okey-", "okey-abc-a@b.example", "okey-123", "", "OKEY-1-ab.c",
        "okey-1800000000-", "my okey-1-a@b.example",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ck_assert_msg(decide(names[i], NOW - 10 * DAY, 1) == OKEY_REAP_KEEP, "reaped '%s'",
                      names[i]);
    }
}
END_TEST

START_TEST(bare_addresses_are_reaped_only_with_legacy_on_and_when_old)
{
    apr_int64_t expires = 1;
    const char *email = NULL;

    ck_assert_int_eq(decide("alice@example.com", NOW - DAY, 0), OKEY_REAP_KEEP);
    ck_assert_int_eq(okey_reap_decide(test_pool, "alice@example.com", NOW - DAY, NOW, DAY,
                                      1, &expires, &email), OKEY_REAP_LEGACY);
    ck_assert_str_eq(email, "alice@example.com");
    ck_assert_int_eq(expires, 0);
    ck_assert_int_eq(decide("alice@example.com", NOW - DAY + 1, 1), OKEY_REAP_KEEP);
    ck_assert_int_eq(decide("alice@example.com", NOW + DAY, 1), OKEY_REAP_KEEP);
    ck_assert_int_eq(decide("not an address@x", NOW - DAY, 1), OKEY_REAP_KEEP);
    ck_assert_int_eq(decide("a@b@c", NOW - DAY, 1), OKEY_REAP_KEEP);
    ck_assert_int_eq(decide("@example.com", NOW - DAY, 1), OKEY_REAP_KEEP);
}
END_TEST

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

    tcase_add_test(tc, ours_are_reaped_from_their_expiry_on);
    tcase_add_test(tc, ours_are_reaped_when_created_longer_ago_than_the_expiration);
    tcase_add_test(tc, foreign_and_garbage_names_are_kept);
    tcase_add_test(tc, bare_addresses_are_reaped_only_with_legacy_on_and_when_old);
    tcase_add_test(tc, deletes_are_retried_only_when_it_can_help);
    tcase_add_test(tc, backoff_doubles_and_honours_retry_after_within_a_bound);
    suite_add_tcase(suite, tc);
    return suite;
}
