/* The admin console: people by spend, paging, and finding a key's owner. */
#include <apr_strings.h>
#include <string.h>

#include "testutil.h"
#include "../../src/admin.h"

/* 2026-12-05T12:00:00Z, a Saturday. */
#define NOW 1796472000
#define TODAY (NOW - NOW % 86400)
#define LEAKED "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyz"

/* A person of an index who spent usd today in proj_a and holds live keys. */
static okey_person_spend_t *person(const char *email, double usd, int live_keys)
{
    okey_person_spend_t *made = apr_pcalloc(test_pool, sizeof(*made));
    apr_array_header_t *costs = apr_array_make(test_pool, 1, sizeof(okey_day_cost_t));
    okey_day_cost_t today = {TODAY, usd};

    APR_ARRAY_PUSH(costs, okey_day_cost_t) = today;
    made->email = email;
    made->polled_at = NOW - 60;
    made->since = TODAY - 5 * 86400;
    made->days = apr_hash_make(test_pool);
    apr_hash_set(made->days, "proj_a", APR_HASH_KEY_STRING, costs);
    made->live_keys = live_keys;
    return made;
}

static apr_array_header_t *index_of(int n, okey_person_spend_t **people)
{
    apr_array_header_t *index = apr_array_make(test_pool, n, sizeof(okey_person_spend_t *));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(index, okey_person_spend_t *) = people[i];
    }
    return index;
}

static const okey_admin_person_t *shown(const okey_admin_people_t *view, int i)
{
    return &APR_ARRAY_IDX(view->people, i, okey_admin_person_t);
}

START_TEST(people_are_sorted_by_spend_then_address)
{
    okey_person_spend_t *people[] = {person("b@x.org", 1.0, 1), person("c@x.org", 5.0, 2),
                                     person("a@x.org", 1.0, 1), person("idle@x.org", 0, 0)};
    okey_budget_t budget = {1, 2.0, OKEY_PERIOD_MONTH};
    okey_admin_people_t view;

    okey_admin_people(test_pool, index_of(4, people), &budget, NULL, NOW, 1, &view);
    /* Nobody without a live key or spend is listed. */
    ck_assert_int_eq(view.total, 3);
    ck_assert_int_eq(view.people->nelts, 3);
    ck_assert_str_eq(shown(&view, 0)->email, "c@x.org");
    ck_assert_str_eq(shown(&view, 1)->email, "a@x.org");
    ck_assert_str_eq(shown(&view, 2)->email, "b@x.org");
    ck_assert(shown(&view, 0)->over_budget);
    ck_assert(!shown(&view, 1)->over_budget);
    ck_assert_int_eq(shown(&view, 0)->live_keys, 2);
    ck_assert(shown(&view, 0)->spend_usd > 4.99 && shown(&view, 0)->spend_usd < 5.01);
    ck_assert_int_eq(view.next_page, 0);
}
END_TEST

START_TEST(spend_counts_the_budget_period_only)
{
    okey_person_spend_t *old = person("old@x.org", 3.0, 1);
    okey_day_cost_t yesterday = {TODAY - 86400, 7.0};
    okey_budget_t daily = {1, 5.0, OKEY_PERIOD_DAY};
    okey_budget_t none = {0, 0, OKEY_PERIOD_DAY};
    okey_admin_people_t view;

    APR_ARRAY_PUSH((apr_array_header_t *)apr_hash_get(old->days, "proj_a",
                                                      APR_HASH_KEY_STRING),
                   okey_day_cost_t) = yesterday;
    okey_admin_people(test_pool, index_of(1, &old), &daily, NULL, NOW, 1, &view);
    ck_assert_int_eq(view.period, OKEY_PERIOD_DAY);
    ck_assert(shown(&view, 0)->spend_usd > 2.99 && shown(&view, 0)->spend_usd < 3.01);
    ck_assert(!shown(&view, 0)->over_budget);
    okey_admin_people(test_pool, index_of(1, &old), &none, NULL, NOW, 1, &view);
    ck_assert_int_eq(view.period, OKEY_PERIOD_MONTH);
    ck_assert(shown(&view, 0)->spend_usd > 9.99 && shown(&view, 0)->spend_usd < 10.01);
    ck_assert(!shown(&view, 0)->over_budget);
}
END_TEST

START_TEST(people_come_a_hundred_a_page)
{
    okey_person_spend_t *people[250];
    okey_budget_t none = {0, 0, OKEY_PERIOD_MONTH};
    okey_admin_people_t view;
    int i;

    for (i = 0; i < 250; i++) {
        people[i] = person(apr_psprintf(test_pool, "p%03d@x.org", i), i, 1);
    }
    okey_admin_people(test_pool, index_of(250, people), &none, NULL, NOW, 1, &view);
    ck_assert_int_eq(view.people->nelts, 100);
    ck_assert_int_eq(view.next_page, 2);
    ck_assert_str_eq(shown(&view, 0)->email, "p249@x.org");
    okey_admin_people(test_pool, index_of(250, people), &none, NULL, NOW, 3, &view);
    ck_assert_int_eq(view.people->nelts, 50);
    ck_assert_int_eq(view.next_page, 0);
    ck_assert_str_eq(shown(&view, 49)->email, "p000@x.org");
    okey_admin_people(test_pool, index_of(250, people), &none, NULL, NOW, 4, &view);
    ck_assert_int_eq(view.people->nelts, 0);
    ck_assert_int_eq(view.next_page, 0);
    /* Exactly a page: no next one. */
    okey_admin_people(test_pool, index_of(100, people), &none, NULL, NOW, 1, &view);
    ck_assert_int_eq(view.people->nelts, 100);
    ck_assert_int_eq(view.next_page, 0);
    /* No poll yet. */
    okey_admin_people(test_pool, NULL, &none, NULL, NOW, 1, &view);
    ck_assert_int_eq(view.people->nelts, 0);
    ck_assert_int_eq(view.total, 0);
}
END_TEST

START_TEST(page_numbers_are_bounded)
{
    ck_assert_int_eq(okey_admin_page_parse("1"), 1);
    ck_assert_int_eq(okey_admin_page_parse("42"), 42);
    ck_assert_int_eq(okey_admin_page_parse("100000"), 100000);
    ck_assert_int_eq(okey_admin_page_parse("100001"), 0);
    ck_assert_int_eq(okey_admin_page_parse("0"), 0);
    ck_assert_int_eq(okey_admin_page_parse("01"), 0);
    ck_assert_int_eq(okey_admin_page_parse("-1"), 0);
    ck_assert_int_eq(okey_admin_page_parse("1x"), 0);
    ck_assert_int_eq(okey_admin_page_parse(""), 0);
    ck_assert_int_eq(okey_admin_page_parse(NULL), 0);
    ck_assert_int_eq(okey_admin_page_parse("99999999999999999999"), 0);
}
END_TEST

START_TEST(searches_are_read_by_their_shape)
{
    okey_admin_query_t query;

    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "  Ann@X.org ", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_ADDRESS);
    ck_assert_str_eq(query.text, "ann@x.org");
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "X.ORG", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_PART);
    ck_assert_str_eq(query.text, "x.org");
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "svc_acct_abc", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_ACCOUNT);
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "key_abc", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_KEY_ID);
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "sk-proj-abc...wxyz", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_KEY);
    ck_assert_str_eq(query.shown, "sk-proj-abc...wxyz");
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, NULL, &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_NOTHING);
    ck_assert_ptr_null(okey_admin_query_parse(test_pool, "   ", &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_NOTHING);
}
END_TEST

START_TEST(a_pasted_key_is_shown_only_by_its_ends)
{
    okey_admin_query_t query;

    ck_assert_ptr_null(okey_admin_query_parse(test_pool, LEAKED, &query));
    ck_assert_int_eq(query.by, OKEY_ADMIN_BY_KEY);
    ck_assert_str_eq(query.text, LEAKED);
    ck_assert_str_eq(query.shown, "sk-...wxyz");
}
END_TEST

START_TEST(bad_searches_say_why_without_repeating_them)
{
    static const char *const bad[] = {"svc_acct_", "svc_acct_a b", "key_", "key_x/y",
                                      "sk-", "sk-abc def ghi jkl", "sk-a\"<b>...c",
                                      "a@x.org\n", "bad\x01"};
    okey_admin_query_t query;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = okey_admin_query_parse(test_pool, bad[i], &query);

        ck_assert_msg(why != NULL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(query.by, OKEY_ADMIN_BY_NOTHING);
        ck_assert(strstr(why, bad[i]) == NULL);
    }
    ck_assert_ptr_nonnull(okey_admin_query_parse(
        test_pool, apr_pstrcat(test_pool, "sk-", apr_psprintf(test_pool, "%0300d", 1), NULL),
        &query));
}
END_TEST

/* The attributions and documents of two people: ann holds a listed key
 * (key_a1 of svc_acct_a1, LEAKED) and an expired one; bob holds one listed
 * key and one issued since the poll. */
typedef struct {
    apr_hash_t *attributions;
    apr_hash_t *documents;
    apr_array_header_t *index;
} world_t;

static okey_attribution_t *who(const char *account, const char *email, const char *redacted,
                               apr_int64_t created_at, apr_int64_t expires)
{
    okey_attribution_t *made = apr_pcalloc(test_pool, sizeof(*made));

    made->service_account_id = account;
    made->email = email;
    made->project_id = "proj_a";
    made->redacted = redacted;
    made->created_at = created_at;
    made->expires = expires;
    return made;
}

static void add_figures(okey_person_spend_t *owner, const char *id,
                        const okey_attribution_t *attribution, int live, double usd)
{
    okey_key_spend_t key;

    memset(&key, 0, sizeof(key));
    key.api_key_id = id;
    key.who = *attribution;
    key.live = live;
    key.last_used_at = NOW - 300;
    key.requests = key.input_tokens = key.output_tokens = 1;
    key.cost_usd = usd;
    APR_ARRAY_PUSH(owner->keys, okey_key_spend_t) = key;
}

static world_t world(void)
{
    world_t made;
    okey_person_spend_t *ann = person("ann@x.org", 2.0, 1);
    okey_person_spend_t *bob = person("bob@y.org", 1.0, 2);
    okey_attribution_t *a1 = who("svc_acct_a1", "ann@x.org", "sk-proj-abc...wxyz",
                                 NOW - 3600, NOW + 3600);
    okey_attribution_t *a0 = who("svc_acct_a0", "ann@x.org", "sk-proj-old...0000",
                                 NOW - 90000, NOW - 3600);
    okey_attribution_t *b1 = who("svc_acct_b1", "bob@y.org", "sk-proj-bbb...bbbb",
                                 NOW - 7200, NOW + 3600);
    okey_attribution_t *b2 = who("svc_acct_b2", "bob@y.org", NULL, NOW - 30, NOW + 3600);
    okey_person_spend_t *people[] = {ann, bob};

    ann->keys = apr_array_make(test_pool, 2, sizeof(okey_key_spend_t));
    bob->keys = apr_array_make(test_pool, 2, sizeof(okey_key_spend_t));
    add_figures(ann, "key_a1", a1, 1, 2.0);
    add_figures(ann, "key_a0", a0, 0, 0.5);
    add_figures(bob, "key_b1", b1, 1, 1.0);
    made.attributions = apr_hash_make(test_pool);
    apr_hash_set(made.attributions, "key_a1", APR_HASH_KEY_STRING, a1);
    apr_hash_set(made.attributions, "key_a0", APR_HASH_KEY_STRING, a0);
    apr_hash_set(made.attributions, "key_b1", APR_HASH_KEY_STRING, b1);
    apr_hash_set(made.attributions, "key_b2", APR_HASH_KEY_STRING, b2);
    made.documents = apr_hash_make(test_pool);
    apr_hash_set(made.documents, "ann@x.org", APR_HASH_KEY_STRING, ann);
    apr_hash_set(made.documents, "bob@y.org", APR_HASH_KEY_STRING, bob);
    made.index = index_of(2, people);
    return made;
}

/* The keys a search for q finds in the world. */
static apr_array_header_t *search(const world_t *in, const char *q)
{
    okey_admin_query_t query;

    ck_assert_ptr_null(okey_admin_query_parse(test_pool, q, &query));
    return okey_admin_keys(test_pool, &query,
                           okey_admin_owners(test_pool, &query, in->index, in->attributions),
                           in->documents, in->attributions, NOW);
}

static const okey_admin_key_t *found(const apr_array_header_t *keys, int i)
{
    return &APR_ARRAY_IDX(keys, i, okey_admin_key_t);
}

START_TEST(an_address_finds_the_live_keys_of_its_owner)
{
    world_t in = world();
    apr_array_header_t *keys = search(&in, "ANN@x.org");

    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->who.service_account_id, "svc_acct_a1");
    ck_assert_str_eq(found(keys, 0)->api_key_id, "key_a1");
    ck_assert(found(keys, 0)->cost_usd > 1.99);
    ck_assert_int_eq(found(keys, 0)->last_used_at, NOW - 300);
    /* bob's key issued since the poll is live, its figures unknown. */
    keys = search(&in, "bob@y.org");
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(found(keys, 0)->who.service_account_id, "svc_acct_b1");
    ck_assert_str_eq(found(keys, 1)->who.service_account_id, "svc_acct_b2");
    ck_assert_int_eq(found(keys, 1)->last_used_at, -1);
    ck_assert(found(keys, 1)->cost_usd < 0);
}
END_TEST

START_TEST(part_of_an_address_finds_everyone_it_names)
{
    world_t in = world();
    apr_array_header_t *keys = search(&in, ".org");

    ck_assert_int_eq(keys->nelts, 3);
    ck_assert_str_eq(found(keys, 0)->who.email, "ann@x.org");
    ck_assert_str_eq(found(keys, 2)->who.email, "bob@y.org");
    ck_assert_int_eq(search(&in, "y.org")->nelts, 2);
}
END_TEST

START_TEST(ids_find_their_key_only)
{
    world_t in = world();
    apr_array_header_t *keys = search(&in, "svc_acct_b1");

    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->who.email, "bob@y.org");
    keys = search(&in, "key_a1");
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->who.service_account_id, "svc_acct_a1");
    /* Issued since the poll: found by its attribution alone. */
    keys = search(&in, "key_b2");
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->who.service_account_id, "svc_acct_b2");
}
END_TEST

START_TEST(a_leaked_key_finds_its_owner)
{
    world_t in = world();
    apr_array_header_t *keys = search(&in, LEAKED);

    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->who.email, "ann@x.org");
    ck_assert_str_eq(found(keys, 0)->who.service_account_id, "svc_acct_a1");
    keys = search(&in, "sk-proj-abc...wxyz");
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(found(keys, 0)->api_key_id, "key_a1");
}
END_TEST

START_TEST(what_matches_nothing_live_finds_nothing)
{
    world_t in = world();

    ck_assert_int_eq(search(&in, "nobody@x.org")->nelts, 0);
    ck_assert_int_eq(search(&in, "svc_acct_zz")->nelts, 0);
    ck_assert_int_eq(search(&in, "key_zz")->nelts, 0);
    ck_assert_int_eq(search(&in, "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789wxyZ")->nelts, 0);
    /* ann's expired key is not live. */
    ck_assert_int_eq(search(&in, "svc_acct_a0")->nelts, 0);
    ck_assert_int_eq(search(&in, "sk-proj-oldddddddddddddddddd0000")->nelts, 0);
    ck_assert_int_eq(search(&in, "zzz")->nelts, 0);
}
END_TEST

START_TEST(an_account_names_its_attribution)
{
    world_t in = world();
    const okey_attribution_t *b1 = okey_admin_account(in.attributions, "svc_acct_b1");

    ck_assert_ptr_nonnull(b1);
    ck_assert_str_eq(b1->email, "bob@y.org");
    ck_assert_str_eq(b1->project_id, "proj_a");
    ck_assert_ptr_null(okey_admin_account(in.attributions, "svc_acct_zz"));
    ck_assert(okey_admin_id_valid("svc_acct_b1", "svc_acct_"));
    ck_assert(!okey_admin_id_valid("key_b1", "svc_acct_"));
    ck_assert(!okey_admin_id_valid("svc_acct_b 1", "svc_acct_"));
}
END_TEST

static okey_state_key_t *state_key(void)
{
    unsigned char bytes[OKEY_STATE_KEY_BYTES];
    okey_state_key_t *key = NULL;

    memset(bytes, 7, sizeof(bytes));
    ck_assert_ptr_null(okey_state_key_from_bytes(test_pool, bytes, &key));
    return key;
}

START_TEST(the_form_token_is_the_administrators_own)
{
    okey_state_key_t *key = state_key();
    const char *token = okey_admin_token(test_pool, key, "root", NOW);

    ck_assert(okey_admin_token_ok(test_pool, key, "root", token, NOW + 60));
    ck_assert(!okey_admin_token_ok(test_pool, key, "alice", token, NOW + 60));
    ck_assert(!okey_admin_token_ok(test_pool, key, "root", token,
                                   NOW + OKEY_ADMIN_TOKEN_LIFETIME + 1));
    ck_assert(!okey_admin_token_ok(test_pool, key, "root", NULL, NOW));
    ck_assert(!okey_admin_token_ok(test_pool, key, "root", "", NOW));
    ck_assert(!okey_admin_token_ok(test_pool, key, "root",
                                   apr_pstrcat(test_pool, token, "x", NULL), NOW));
}
END_TEST

Suite *okey_admin_suite(void)
{
    Suite *suite = suite_create("admin");
    TCase *tc = test_case("admin");

    tcase_add_test(tc, people_are_sorted_by_spend_then_address);
    tcase_add_test(tc, spend_counts_the_budget_period_only);
    tcase_add_test(tc, people_come_a_hundred_a_page);
    tcase_add_test(tc, page_numbers_are_bounded);
    tcase_add_test(tc, searches_are_read_by_their_shape);
    tcase_add_test(tc, a_pasted_key_is_shown_only_by_its_ends);
    tcase_add_test(tc, bad_searches_say_why_without_repeating_them);
    tcase_add_test(tc, an_address_finds_the_live_keys_of_its_owner);
    tcase_add_test(tc, part_of_an_address_finds_everyone_it_names);
    tcase_add_test(tc, ids_find_their_key_only);
    tcase_add_test(tc, a_leaked_key_finds_its_owner);
    tcase_add_test(tc, what_matches_nothing_live_finds_nothing);
    tcase_add_test(tc, an_account_names_its_attribution);
    tcase_add_test(tc, the_form_token_is_the_administrators_own);
    suite_add_tcase(suite, tc);
    return suite;
}
