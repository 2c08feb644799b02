/* A key's terms: its lifetime, its owner, whether it may live, the cap. */
#include "testutil.h"

#include <apr_hash.h>
#include <apr_strings.h>

#include "keys.h"
#include "terms.h"

#define NOW 1800000000
#define DAY 86400

static okey_config_t *config(const char *project, apr_int64_t expiration,
                             apr_int64_t max_expiration, apr_int64_t cap, const char *users,
                             const char *domains, const char *groups)
{
    okey_config_t *cfg = apr_pcalloc(test_pool, sizeof(*cfg));

    cfg->project = project;
    cfg->expiration = expiration;
    cfg->max_expiration = max_expiration;
    cfg->max_keys_per_user = cap;
    cfg->allowed_users = okey_config_split_list(test_pool, users);
    cfg->allowed_domains = okey_config_split_list(test_pool, domains);
    cfg->allowed_groups = okey_config_split_list(test_pool, groups);
    return cfg;
}

/* The terms of project "personal" from a server that allows a day by
 * default and a week at most. */
static const okey_terms_t *week_terms(int reap_legacy, int revoke_disallowed)
{
    apr_array_header_t *terms = apr_array_make(test_pool, 2, sizeof(okey_terms_t *));
    apr_array_header_t *problems = apr_array_make(test_pool, 2, sizeof(const char *));
    okey_config_t *server = config("personal", DAY, 7 * DAY, 0, "", "example.com", "");

    server->reap_legacy = reap_legacy;
    server->revoke_disallowed = revoke_disallowed;
    ck_assert_int_eq(okey_terms_add(test_pool, terms, server, "main server", problems), 0);
    return okey_terms_of(terms, "personal");
}

static okey_key_state_e judge(const char *name, apr_int64_t created_at)
{
    return okey_terms_judge(test_pool, week_terms(1, 0), name, created_at, NOW).state;
}

START_TEST(ours_live_until_the_expiry_in_their_name)
{
    const char *tagged = okey_keys_name(test_pool, NOW + 1, "abc12", "a@b.example");

    ck_assert_int_eq(judge("okey-1800000000-a@b.example", NOW - 10), OKEY_KEY_EXPIRED);
    ck_assert_int_eq(judge("okey-1799999999-a@b.example", NOW - 10), OKEY_KEY_EXPIRED);
    ck_assert_int_eq(judge("okey-1800000001-a@b.example", NOW - 10), OKEY_KEY_LIVE);
    ck_assert_int_eq(judge(tagged, NOW - 10), OKEY_KEY_LIVE);
    ck_assert_int_eq(judge(okey_keys_name(test_pool, NOW, "abc12", "a@b.example"), NOW - 10),
                     OKEY_KEY_EXPIRED);
}
END_TEST

START_TEST(a_key_asked_for_longer_than_the_default_lives_its_lifetime)
{
    /* Issued six days ago for a week: the default of a day is no clock. */
    const char *name = okey_keys_name(test_pool, NOW + DAY, "k0k0k", "a@b.example");
    okey_judgement_t verdict = okey_terms_judge(test_pool, week_terms(0, 0), name,
                                                NOW - 6 * DAY, NOW);

    ck_assert_int_eq(verdict.state, OKEY_KEY_LIVE);
    ck_assert_int_eq(verdict.expires, NOW + DAY);
    ck_assert_str_eq(verdict.email, "a@b.example");
    ck_assert_int_eq(judge("okey-1800086400-a@b.example", NOW - 6 * DAY), OKEY_KEY_LIVE);
}
END_TEST

START_TEST(an_expiry_beyond_the_longest_lifetime_is_cut_to_it)
{
    /* Named for a year, created eight days ago under a week at most. */
    ck_assert_int_eq(judge("okey-1831536000-a@b.example", NOW - 8 * DAY), OKEY_KEY_EXPIRED);
    ck_assert_int_eq(judge("okey-1831536000-a@b.example", NOW - 6 * DAY), OKEY_KEY_LIVE);
    /* A little clock skew between here and upstream is no reason. */
    ck_assert_int_eq(judge("okey-1800000100-a@b.example", NOW - 7 * DAY + 50),
                     OKEY_KEY_LIVE);
    /* created_at in the future, or unknown, proves nothing. */
    ck_assert_int_eq(judge("okey-1900000000-a@b.example", NOW + 10 * DAY), OKEY_KEY_LIVE);
    ck_assert_int_eq(judge("okey-1900000000-a@b.example", 0), OKEY_KEY_LIVE);
}
END_TEST

START_TEST(foreign_and_garbage_names_are_not_ours)
{
    static const char *const names[] = {
        "production-bot", "okey-", "okey-abc-a@b.example", "okey-123", "", "OKEY-1-ab.c",
        "okey-1800000000-", "my okey-1-a@b.example",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ck_assert_msg(judge(names[i], NOW - 10 * DAY) == OKEY_KEY_FOREIGN, "took '%s'",
                      names[i]);
    }
}
END_TEST

START_TEST(bare_addresses_are_old_only_with_legacy_on)
{
    okey_judgement_t verdict = okey_terms_judge(test_pool, week_terms(1, 0),
                                                "Alice@example.com", NOW - DAY, NOW);

    ck_assert_int_eq(verdict.state, OKEY_KEY_LEGACY_OLD);
    ck_assert_str_eq(verdict.email, "alice@example.com");
    ck_assert_int_eq(okey_terms_judge(test_pool, week_terms(0, 0), "alice@example.com",
                                      NOW - DAY, NOW).state, OKEY_KEY_FOREIGN);
    ck_assert_int_eq(judge("alice@example.com", NOW - DAY + 1), OKEY_KEY_FOREIGN);
    ck_assert_int_eq(judge("alice@example.com", NOW + DAY), OKEY_KEY_FOREIGN);
    ck_assert_int_eq(judge("not an address@x", NOW - DAY), OKEY_KEY_FOREIGN);
    ck_assert_int_eq(judge("a@b@c", NOW - DAY), OKEY_KEY_FOREIGN);
    ck_assert_int_eq(judge("@example.com", NOW - DAY), OKEY_KEY_FOREIGN);
}
END_TEST

/* A server for example.com and a contractor profile for one address, both
 * issuing into "contractors"; and a group profile into "research". */
static apr_array_header_t *profile_terms(apr_array_header_t *problems)
{
    apr_array_header_t *terms = apr_array_make(test_pool, 2, sizeof(okey_terms_t *));
    okey_config_t *server = config("personal", DAY, DAY, 1, "", "example.com", "");
    okey_config_t *contractor = config("contractors", DAY, 2 * DAY, 5,
                                       "ann@contract.example", "", "");
    okey_config_t *research = config("research", DAY, DAY, 0, "", "", "ml-team");

    server->revoke_disallowed = contractor->revoke_disallowed = 1;
    research->revoke_disallowed = 1;
    okey_terms_add(test_pool, terms, server, "main server", problems);
    okey_terms_add(test_pool, terms, contractor, "<Location /contractors>", problems);
    okey_terms_add(test_pool, terms, research, "<Location /research>", problems);
    return terms;
}

START_TEST(a_profiles_keys_are_judged_by_the_profile)
{
    apr_array_header_t *problems = apr_array_make(test_pool, 2, sizeof(const char *));
    apr_array_header_t *terms = profile_terms(problems);
    const okey_terms_t *contractors = okey_terms_of(terms, "contractors");
    const char *ann = okey_keys_name(test_pool, NOW + DAY, "aaaaa", "ann@contract.example");

    ck_assert_int_eq(problems->nelts, 0);
    ck_assert_int_eq(contractors->cap, 5);
    ck_assert_int_eq(okey_terms_of(terms, "personal")->cap, 1);
    /* The contractor's key lives under the contractor profile's rules... */
    ck_assert_int_eq(okey_terms_judge(test_pool, contractors, ann, NOW - 10, NOW).state,
                     OKEY_KEY_LIVE);
    /* ...and under the server's rules it would not. */
    ck_assert_int_eq(okey_terms_judge(test_pool, okey_terms_of(terms, "personal"), ann,
                                      NOW - 10, NOW).state, OKEY_KEY_DISALLOWED);
    /* A group profile keeps its members' keys: nothing can re-check them. */
    ck_assert_int_eq(okey_terms_judge(test_pool, okey_terms_of(terms, "research"), ann,
                                      NOW - 10, NOW).state, OKEY_KEY_LIVE);
    ck_assert_ptr_null(okey_terms_of(terms, "elsewhere"));
}
END_TEST

START_TEST(profiles_sharing_a_project_must_agree)
{
    apr_array_header_t *problems = apr_array_make(test_pool, 2, sizeof(const char *));
    apr_array_header_t *terms = profile_terms(problems);
    okey_config_t *other = config("contractors", DAY, 2 * DAY, 2, "bo@contract.example", "",
                                  "");
    okey_config_t *longer = config("contractors", DAY, 3 * DAY, 5, "", "", "");
    okey_config_t *agreeing = config("contractors", 3600, 2 * DAY, 5, "", "x.example", "");
    const char *line;

    ck_assert_int_eq(okey_terms_add(test_pool, terms, other, "<Location /other>", problems),
                     1);
    line = APR_ARRAY_IDX(problems, 0, const char *);
    ck_assert_ptr_nonnull(strstr(line, "<Location /contractors>"));
    ck_assert_ptr_nonnull(strstr(line, "<Location /other>"));
    ck_assert_ptr_nonnull(strstr(line, "OpenAIKeyMaxKeysPerUser"));
    ck_assert_int_eq(okey_terms_add(test_pool, terms, longer, "<Location /longer>", problems),
                     1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 1, const char *),
                                 "OpenAIKeyMaxExpiration"));
    /* A shorter default lifetime and other allow rules are fine, and add. */
    ck_assert_int_eq(okey_terms_add(test_pool, terms, agreeing, "<Location /a>", problems), 0);
    ck_assert(okey_terms_admits(okey_terms_of(terms, "contractors"), "zed@x.example"));
    ck_assert(!okey_terms_admits(okey_terms_of(terms, "contractors"), "zed@y.example"));
}
END_TEST

START_TEST(profiles_sharing_a_project_agree_on_its_budget)
{
    apr_array_header_t *problems = apr_array_make(test_pool, 2, sizeof(const char *));
    apr_array_header_t *terms = profile_terms(problems);
    okey_config_t *budgeted = config("contractors", DAY, 2 * DAY, 5, "", "", "");
    okey_config_t *revoking = config("contractors", DAY, 2 * DAY, 5, "", "", "");
    okey_config_t *own = config("own", DAY, 2 * DAY, 5, "", "", "");
    okey_config_t *same = config("own", DAY, 2 * DAY, 5, "", "", "");

    okey_budget_parse(test_pool, "20 month", &budgeted->budget);
    ck_assert_int_eq(okey_terms_add(test_pool, terms, budgeted, "<Location /b>", problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 0, const char *),
                                 "OpenAIKeyBudget (none and 20.00 month)"));
    revoking->revoke_over_budget = 1;
    ck_assert_int_eq(okey_terms_add(test_pool, terms, revoking, "<Location /r>", problems), 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(problems, 1, const char *),
                                 "OpenAIKeyRevokeOverBudget (Off and On)"));
    /* Equal budgets agree, and the project's terms carry them. */
    okey_budget_parse(test_pool, "5 week", &own->budget);
    okey_budget_parse(test_pool, "5.00 week", &same->budget);
    ck_assert_int_eq(okey_terms_add(test_pool, terms, own, "<Location /o>", problems), 0);
    ck_assert_int_eq(okey_terms_add(test_pool, terms, same, "<Location /s>", problems), 0);
    ck_assert_int_eq(okey_terms_of(terms, "own")->budget.period, OKEY_PERIOD_WEEK);
    ck_assert(okey_terms_known(terms, same));
    same->budget.amount = 6;
    ck_assert(!okey_terms_known(terms, same));
}
END_TEST

static apr_array_header_t *keys_in_order(int n)
{
    apr_array_header_t *owned = apr_array_make(test_pool, n, sizeof(okey_owned_key_t));
    int i;

    for (i = 0; i < n; i++) {
        okey_owned_key_t *key = apr_array_push(owned);

        key->service_account_id = apr_psprintf(test_pool, "svc_%d", i);
        key->created_at = 100 + i;
        key->rank = okey_terms_rank(0, key->created_at);
    }
    return owned;
}

static const char *victim(const apr_array_header_t *victims, int i)
{
    return APR_ARRAY_IDX(victims, i, okey_owned_key_t).service_account_id;
}

START_TEST(the_cap_takes_the_oldest_beyond_the_newest_n)
{
    apr_array_header_t *victims = okey_terms_over_cap(test_pool, 3, keys_in_order(5),
                                                      "svc_4");
    apr_array_header_t *shuffled = keys_in_order(4);

    ck_assert_int_eq(victims->nelts, 2);
    ck_assert_str_eq(victim(victims, 0), "svc_0");
    ck_assert_str_eq(victim(victims, 1), "svc_1");
    ck_assert_int_eq(okey_terms_over_cap(test_pool, 3, keys_in_order(3), "x")->nelts, 0);
    ck_assert_int_eq(okey_terms_over_cap(test_pool, 0, keys_in_order(3), "x")->nelts, 0);
    /* The reaper keeps no key in particular. */
    ck_assert_int_eq(okey_terms_over_cap(test_pool, 1, keys_in_order(3), NULL)->nelts, 2);
    /* In any order given, the oldest go first. */
    APR_ARRAY_IDX(shuffled, 0, okey_owned_key_t).rank = okey_terms_rank(0, 500);
    victims = okey_terms_over_cap(test_pool, 2, shuffled, NULL);
    ck_assert_int_eq(victims->nelts, 2);
    ck_assert_str_eq(victim(victims, 0), "svc_1");
    ck_assert_str_eq(victim(victims, 1), "svc_2");
}
END_TEST

START_TEST(concurrent_issues_converge_on_the_newest_n_never_fewer)
{
    /* Cap 1: two issues at once see both keys. The first issued takes
     * nothing newer than itself; the second takes the first. One stays. */
    apr_array_header_t *both = keys_in_order(2);
    apr_array_header_t *first = okey_terms_over_cap(test_pool, 1, both, "svc_0");
    apr_array_header_t *second = okey_terms_over_cap(test_pool, 1, both, "svc_1");

    ck_assert_int_eq(first->nelts, 0);
    ck_assert_int_eq(second->nelts, 1);
    ck_assert_str_eq(victim(second, 0), "svc_0");
    /* Ranked alike, the id decides, the same way for everyone. */
    APR_ARRAY_IDX(both, 1, okey_owned_key_t).rank = APR_ARRAY_IDX(both, 0, okey_owned_key_t).rank;
    ck_assert_int_eq(okey_terms_over_cap(test_pool, 1, both, "svc_0")->nelts, 0);
    ck_assert_str_eq(victim(okey_terms_over_cap(test_pool, 1, both, NULL), 0), "svc_0");
}
END_TEST

START_TEST(a_recorded_key_ranks_by_when_it_was_recorded_not_created)
{
    /* svc_1 was created a second after svc_0 but recorded before it: the
     * last recorded is the newest, so the sign-in recording it keeps it. */
    apr_array_header_t *both = keys_in_order(2);
    apr_array_header_t *victims;

    APR_ARRAY_IDX(both, 1, okey_owned_key_t).rank = okey_terms_rank(apr_time_from_sec(101) + 5, 101);
    APR_ARRAY_IDX(both, 0, okey_owned_key_t).rank = okey_terms_rank(apr_time_from_sec(101) + 9, 100);
    victims = okey_terms_over_cap(test_pool, 1, both, "svc_0");
    ck_assert_int_eq(victims->nelts, 1);
    ck_assert_str_eq(victim(victims, 0), "svc_1");
    ck_assert_int_eq(okey_terms_over_cap(test_pool, 1, both, "svc_1")->nelts, 0);
    /* Unrecorded, a key ranks by its creation; unusable, as unknown. */
    ck_assert_int_eq(okey_terms_rank(0, 100), apr_time_from_sec(100));
    ck_assert_int_eq(okey_terms_rank(0, 0), 0);
    ck_assert_int_eq(okey_terms_rank(0, APR_INT64_MAX), 0);
}
END_TEST

START_TEST(a_listed_key_not_recorded_ranks_newest_while_it_may_be_in_flight)
{
    apr_int64_t window = OKEY_TERMS_CLOCK_SKEW + 2 * 10;

    /* Created within two timeouts (and the clock skew): its record, on its
     * way, will rank it after every other key; a sign-in leaves it be. */
    ck_assert_int_eq(okey_terms_rank_listed(NOW - window + 1, NOW, 10), APR_INT64_MAX);
    ck_assert_int_eq(okey_terms_rank_listed(NOW + 60, NOW, 10), APR_INT64_MAX);
    ck_assert_int_eq(okey_terms_rank_listed(NOW - window, NOW, 10),
                     apr_time_from_sec(NOW - window));
    ck_assert_int_eq(okey_terms_rank_listed(NOW - window, NOW, 20), APR_INT64_MAX);
    ck_assert_int_eq(okey_terms_rank_listed(0, NOW, 10), 0);
}

START_TEST(no_order_of_partial_views_leaves_fewer_than_n)
{
    /* Cap 2, four keys; every issuer sees some of them, the reaper all.
     * Whatever each takes, the newest two survive. */
    apr_array_header_t *all = keys_in_order(4);
    apr_hash_t *taken = apr_hash_make(test_pool);
    int view, i;

    for (view = 1; view < 16; view++) {
        apr_array_header_t *seen = apr_array_make(test_pool, 4, sizeof(okey_owned_key_t));
        const char *keep = NULL;
        apr_array_header_t *victims;

        for (i = 0; i < 4; i++) {
            if (view & (1 << i)) {
                APR_ARRAY_PUSH(seen, okey_owned_key_t) = APR_ARRAY_IDX(all, i, okey_owned_key_t);
                keep = APR_ARRAY_IDX(all, i, okey_owned_key_t).service_account_id;
            }
        }
        victims = okey_terms_over_cap(test_pool, 2, seen, view % 2 ? keep : NULL);
        for (i = 0; i < victims->nelts; i++) {
            apr_hash_set(taken, victim(victims, i), APR_HASH_KEY_STRING, "");
        }
    }
    ck_assert_ptr_null(apr_hash_get(taken, "svc_3", APR_HASH_KEY_STRING));
    ck_assert_ptr_null(apr_hash_get(taken, "svc_2", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(taken, "svc_0", APR_HASH_KEY_STRING));
}
END_TEST

START_TEST(a_created_at_far_ahead_is_unknown)
{
    ck_assert_int_eq(okey_terms_created(NOW + 10, NOW), NOW + 10);
    ck_assert_int_eq(okey_terms_created(NOW + OKEY_TERMS_CLOCK_SKEW + 1, NOW), 0);
    ck_assert_int_eq(okey_terms_created(APR_INT64_MAX, NOW), 0);
    ck_assert_int_eq(okey_terms_created(-5, NOW), 0);
    /* An absurd created_at neither overflows nor cuts a key short. */
    ck_assert_int_eq(okey_terms_judge(test_pool, week_terms(0, 0), "okey-1800000100-a@b.example",
                                      APR_INT64_MAX, NOW).state, OKEY_KEY_LIVE);
}
END_TEST

Suite *okey_terms_suite(void)
{
    Suite *suite = suite_create("terms");
    TCase *tc = test_case("terms");

    tcase_add_test(tc, ours_live_until_the_expiry_in_their_name);
    tcase_add_test(tc, a_key_asked_for_longer_than_the_default_lives_its_lifetime);
    tcase_add_test(tc, an_expiry_beyond_the_longest_lifetime_is_cut_to_it);
    tcase_add_test(tc, foreign_and_garbage_names_are_not_ours);
    tcase_add_test(tc, bare_addresses_are_old_only_with_legacy_on);
    tcase_add_test(tc, a_profiles_keys_are_judged_by_the_profile);
    tcase_add_test(tc, profiles_sharing_a_project_must_agree);
    tcase_add_test(tc, profiles_sharing_a_project_agree_on_its_budget);
    tcase_add_test(tc, the_cap_takes_the_oldest_beyond_the_newest_n);
    tcase_add_test(tc, concurrent_issues_converge_on_the_newest_n_never_fewer);
    tcase_add_test(tc, no_order_of_partial_views_leaves_fewer_than_n);
    tcase_add_test(tc, a_created_at_far_ahead_is_unknown);
    tcase_add_test(tc, a_recorded_key_ranks_by_when_it_was_recorded_not_created);
    tcase_add_test(tc, a_listed_key_not_recorded_ranks_newest_while_it_may_be_in_flight);
    suite_add_tcase(suite, tc);
    return suite;
}
