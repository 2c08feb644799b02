/* Budgets, their periods and the spend documents. */
#include <string.h>

#include "testutil.h"
#include "../../src/spend.h"

/* 2026-12-05T12:00:00Z, a Saturday. */
#define SATURDAY 1796472000

START_TEST(budgets_read_amount_and_period)
{
    okey_budget_t budget;

    ck_assert_ptr_null(okey_budget_parse(test_pool, "1.20 month", &budget));
    ck_assert(budget.set && budget.period == OKEY_PERIOD_MONTH);
    ck_assert(budget.amount > 1.199 && budget.amount < 1.201);
    ck_assert_ptr_null(okey_budget_parse(test_pool, "50 Week", &budget));
    ck_assert_int_eq(budget.period, OKEY_PERIOD_WEEK);
    ck_assert_ptr_null(okey_budget_parse(test_pool, "3 day", &budget));
    ck_assert_int_eq(budget.period, OKEY_PERIOD_DAY);
}
END_TEST

START_TEST(bad_budgets_say_why)
{
    static const char *const bad[] = {"", "month", "0 month", "-1 month", "1.234 month",
                                      "1. month", ".5 month", "1 fortnight", "1 month extra",
                                      "1e3 month", "2000000 month", "0x10 day", "1,5 day"};
    okey_budget_t budget;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = okey_budget_parse(test_pool, bad[i], &budget);

        ck_assert_msg(why != NULL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(budget.set, 0);
    }
}
END_TEST

START_TEST(periods_are_utc_days_weeks_from_monday_and_months)
{
    ck_assert_int_eq(okey_period_start(OKEY_PERIOD_DAY, SATURDAY), 1796428800);
    /* Monday 2026-11-30, in the month before. */
    ck_assert_int_eq(okey_period_start(OKEY_PERIOD_WEEK, SATURDAY), 1796428800 - 5 * 86400);
    ck_assert_int_eq(okey_period_start(OKEY_PERIOD_MONTH, SATURDAY), 1796428800 - 4 * 86400);
    ck_assert_int_eq(okey_period_next(OKEY_PERIOD_DAY, SATURDAY), 1796428800 + 86400);
    ck_assert_int_eq(okey_period_next(OKEY_PERIOD_WEEK, SATURDAY), 1796428800 + 2 * 86400);
    /* 2027-01-01T00:00:00Z */
    ck_assert_int_eq(okey_period_next(OKEY_PERIOD_MONTH, SATURDAY), 1798761600);
    /* February of a leap year ends on the 29th: 2028-02-10 -> 2028-03-01. */
    ck_assert_int_eq(okey_period_next(OKEY_PERIOD_MONTH, 1833796800), 1835481600);
    /* A Monday's week starts that day; the first second of a month is in it. */
    ck_assert_int_eq(okey_period_start(OKEY_PERIOD_WEEK, 1796428800 - 5 * 86400),
                     1796428800 - 5 * 86400);
    ck_assert_int_eq(okey_period_start(OKEY_PERIOD_MONTH, 1798761600), 1798761600);
    ck_assert_int_eq(okey_spend_since(SATURDAY), 1796428800 - 5 * 86400);
}
END_TEST

static okey_person_spend_t *spender(apr_int64_t week_start)
{
    okey_person_spend_t *person = apr_pcalloc(test_pool, sizeof(*person));
    apr_array_header_t *days = apr_array_make(test_pool, 3, sizeof(okey_day_cost_t));
    apr_array_header_t *other = apr_array_make(test_pool, 1, sizeof(okey_day_cost_t));
    okey_key_spend_t key = {"key_a", {"svc_a", "a@x", "proj_1", "sk-abc...wxyz", 10, 20}, 1,
                            -1, 3, 100, -1, 0.5};
    okey_day_cost_t before = {week_start, 0.70};           /* Monday, November */
    okey_day_cost_t month = {week_start + 4 * 86400, 0.30}; /* December 4th */
    okey_day_cost_t today = {week_start + 5 * 86400, 0.20};
    okey_day_cost_t elsewhere = {week_start + 5 * 86400, 9};

    person->email = "a@x";
    person->polled_at = SATURDAY;
    person->since = week_start;
    person->keys = apr_array_make(test_pool, 1, sizeof(okey_key_spend_t));
    APR_ARRAY_PUSH(person->keys, okey_key_spend_t) = key;
    APR_ARRAY_PUSH(days, okey_day_cost_t) = before;
    APR_ARRAY_PUSH(days, okey_day_cost_t) = month;
    APR_ARRAY_PUSH(days, okey_day_cost_t) = today;
    APR_ARRAY_PUSH(other, okey_day_cost_t) = elsewhere;
    person->days = apr_hash_make(test_pool);
    apr_hash_set(person->days, "proj_1", APR_HASH_KEY_STRING, days);
    apr_hash_set(person->days, "proj_2", APR_HASH_KEY_STRING, other);
    return person;
}

static int near(double a, double b)
{
    return a - b < 0.000001 && b - a < 0.000001;
}

START_TEST(spend_counts_the_period_and_the_project_only)
{
    okey_person_spend_t *person = spender(okey_period_start(OKEY_PERIOD_WEEK, SATURDAY));
    okey_budget_t budget = {1, 1.20, OKEY_PERIOD_WEEK};

    ck_assert(near(okey_spend_in_period(person, "proj_1", OKEY_PERIOD_WEEK, SATURDAY), 1.2));
    ck_assert(near(okey_spend_in_period(person, "proj_1", OKEY_PERIOD_MONTH, SATURDAY), 0.5));
    ck_assert(near(okey_spend_in_period(person, "proj_1", OKEY_PERIOD_DAY, SATURDAY), 0.2));
    ck_assert(near(okey_spend_in_period(person, NULL, OKEY_PERIOD_DAY, SATURDAY), 9.2));
    ck_assert(near(okey_spend_in_period(person, "proj_3", OKEY_PERIOD_MONTH, SATURDAY), 0));
    ck_assert(near(okey_spend_in_period(NULL, "proj_1", OKEY_PERIOD_MONTH, SATURDAY), 0));
    /* At the budget is over it; a cent below is not. */
    ck_assert(okey_spend_over(person, "proj_1", &budget, SATURDAY));
    budget.amount = 1.21;
    ck_assert(!okey_spend_over(person, "proj_1", &budget, SATURDAY));
    budget.set = 0;
    budget.amount = 0.01;
    ck_assert(!okey_spend_over(person, "proj_1", &budget, SATURDAY));
    /* A new period starts from nothing. */
    budget.set = 1;
    budget.period = OKEY_PERIOD_DAY;
    ck_assert(!okey_spend_over(person, "proj_1", &budget, SATURDAY + 86400));
}
END_TEST

START_TEST(documents_read_back_as_written)
{
    okey_person_spend_t *person = spender(okey_period_start(OKEY_PERIOD_WEEK, SATURDAY));
    const char *text = okey_person_spend_text(test_pool, person);
    okey_person_spend_t *back = okey_person_spend_parse(test_pool, text);
    const okey_key_spend_t *key;

    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->email, "a@x");
    ck_assert_int_eq(back->polled_at, SATURDAY);
    key = okey_spend_key(back, "svc_a");
    ck_assert_ptr_nonnull(key);
    ck_assert_str_eq(key->api_key_id, "key_a");
    ck_assert_str_eq(key->who.redacted, "sk-abc...wxyz");
    /* Unknown stays unknown. */
    ck_assert_int_eq(key->last_used_at, -1);
    ck_assert_int_eq(key->output_tokens, -1);
    ck_assert_int_eq(key->requests, 3);
    ck_assert(near(key->cost_usd, 0.5));
    ck_assert_ptr_null(okey_spend_key(back, "svc_b"));
    ck_assert(near(okey_spend_in_period(back, NULL, OKEY_PERIOD_WEEK, SATURDAY), 10.2));
    ck_assert_ptr_null(okey_person_spend_parse(test_pool, "{\"v\":2,\"email\":\"a@x\"}"));
    ck_assert_ptr_null(okey_person_spend_parse(test_pool, "not json"));
    ck_assert_ptr_null(okey_person_spend_parse(test_pool, NULL));
}
END_TEST

START_TEST(an_index_holds_totals_without_keys)
{
    apr_array_header_t *people = apr_array_make(test_pool, 1, sizeof(okey_person_spend_t *));
    apr_array_header_t *back;
    apr_int64_t polled_at = 0;

    APR_ARRAY_PUSH(people, okey_person_spend_t *) =
        spender(okey_period_start(OKEY_PERIOD_WEEK, SATURDAY));
    back = okey_spend_index_parse(test_pool,
                                  okey_spend_index_text(test_pool, SATURDAY, people),
                                  &polled_at);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(back->nelts, 1);
    ck_assert_int_eq(polled_at, SATURDAY);
    ck_assert_int_eq(APR_ARRAY_IDX(back, 0, okey_person_spend_t *)->keys->nelts, 0);
    ck_assert(near(okey_spend_in_period(APR_ARRAY_IDX(back, 0, okey_person_spend_t *), "proj_2",
                                        OKEY_PERIOD_DAY, SATURDAY), 9));
}
END_TEST

START_TEST(attributions_need_every_part)
{
    okey_attribution_t who = {"svc_a", "a@x", "proj_1", NULL, 10, 20};
    okey_attribution_t *back =
        okey_attribution_parse(test_pool, okey_attribution_text(test_pool, &who));

    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->email, "a@x");
    ck_assert_ptr_null(back->redacted);
    ck_assert_int_eq(back->expires, 20);
    ck_assert_ptr_null(okey_attribution_parse(test_pool, "{\"sa\":\"svc_a\",\"email\":\"a@x\"}"));
    ck_assert_ptr_null(okey_attribution_parse(test_pool, "[]"));
}
END_TEST

START_TEST(a_leaked_key_matches_its_redacted_form_by_its_ends)
{
    ck_assert(okey_spend_key_matches("sk-test-abc...wxyz", "sk-test-abcdefghijklmnopqrstuvwxyz"));
    ck_assert(okey_spend_key_matches("sk-test-abc...wxyz", "sk-test-abc...wxyz"));
    ck_assert(!okey_spend_key_matches("sk-test-abc...wxyz", "sk-test-abcdefghijklmnopqrstuvwxy"));
    ck_assert(!okey_spend_key_matches("sk-test-abc...wxyz", "sk-test-abdxyzwxyz"));
    /* Too short to be a key: the ends alone prove nothing. */
    ck_assert(!okey_spend_key_matches("sk-test-abc...wxyz", "sk-test-abcwxyz"));
    ck_assert(!okey_spend_key_matches("sk...z", "sk-aaaaaaaaaaaaaaaaz"));
    ck_assert(!okey_spend_key_matches(NULL, "sk-test-abcdefghijklmnopqrstuvwxyz"));
    ck_assert(!okey_spend_key_matches("no dots", "no dots"));
}
END_TEST

START_TEST(amounts_read_as_dollars)
{
    ck_assert_str_eq(okey_usd(test_pool, 1.2), "$1.20");
    ck_assert_str_eq(okey_usd(test_pool, 0), "$0.00");
    ck_assert_str_eq(okey_usd(test_pool, 0.0042), "$0.0042");
}
END_TEST

Suite *okey_spend_suite(void)
{
    Suite *suite = suite_create("spend");
    TCase *tc = test_case("spend");

    tcase_add_test(tc, budgets_read_amount_and_period);
    tcase_add_test(tc, bad_budgets_say_why);
    tcase_add_test(tc, periods_are_utc_days_weeks_from_monday_and_months);
    tcase_add_test(tc, spend_counts_the_period_and_the_project_only);
    tcase_add_test(tc, documents_read_back_as_written);
    tcase_add_test(tc, an_index_holds_totals_without_keys);
    tcase_add_test(tc, attributions_need_every_part);
    tcase_add_test(tc, a_leaked_key_matches_its_redacted_form_by_its_ends);
    tcase_add_test(tc, amounts_read_as_dollars);
    suite_add_tcase(suite, tc);
    return suite;
}
