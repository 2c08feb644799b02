/* The pages a person sees. */
#include "testutil.h"

#include <string.h>

#include "page.h"

START_TEST(escaping_covers_markup_and_quotes)
{
    ck_assert_str_eq(okey_html_escape(test_pool, "<a href=\"x\">'&'</a>"),
                     "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}
END_TEST

START_TEST(key_page_shows_everything_escaped)
{
    okey_issued_t issued = {"svc_acct_1", "okey-1-x", "sk-<b>key</b>",
                            "eve\"<script>@example.com", "per<sonal", "proj_1",
                            1795705143, 28800};
    okey_page_links_t links = {"/keys", "t\"ok"};
    okey_page_t page = okey_page_key(test_pool, &issued, NULL, &links, "n0nce");

    ck_assert_ptr_nonnull(strstr(page.html, "sk-&lt;b&gt;key&lt;/b&gt;"));
    ck_assert_ptr_nonnull(strstr(page.html, "export OPENAI_API_KEY=sk-&lt;b&gt;"));
    ck_assert_ptr_nonnull(strstr(page.html, "per&lt;sonal"));
    ck_assert_ptr_nonnull(strstr(page.html, "2026-11-26T14:59:03Z"));
    ck_assert_ptr_null(strstr(page.html, "<script>@"));
    ck_assert_ptr_null(strstr(page.html, "<b>"));
    ck_assert_ptr_nonnull(strstr(page.csp, "script-src 'nonce-n0nce'"));
    ck_assert_ptr_nonnull(strstr(page.html, "<script nonce=\"n0nce\">"));
    ck_assert_ptr_null(strstr(page.html, "http"));
    ck_assert_ptr_nonnull(strstr(page.html, "in 8 hours"));
    ck_assert_ptr_nonnull(strstr(page.html, "name=\"csrf\" value=\"t&quot;ok\""));
    ck_assert_ptr_nonnull(strstr(page.html, "Revoke this key now"));
    ck_assert_ptr_nonnull(strstr(page.html, "href=\"/keys\">My keys</a>"));
    ck_assert_ptr_null(strstr(page.html, "revoked your"));
}
END_TEST

START_TEST(key_page_without_a_session_offers_no_forms)
{
    okey_issued_t issued = {"svc_acct_1", "okey-1-x", "sk-1", "a@x", "p", "proj_1",
                            1795705143, 60};
    okey_page_links_t links = {NULL, NULL};
    apr_array_header_t *revoked = apr_array_make(test_pool, 1, sizeof(okey_owned_key_t));
    okey_owned_key_t old = {"svc_acct_<0>", "okey-5-a@x", "proj_1", 1795700000, 5};
    okey_page_t page;

    APR_ARRAY_PUSH(revoked, okey_owned_key_t) = old;
    page = okey_page_key(test_pool, &issued, revoked, &links, "n");
    ck_assert_ptr_null(strstr(page.html, "<form"));
    ck_assert_ptr_null(strstr(page.html, "My keys"));
    ck_assert_ptr_nonnull(strstr(page.html, "in 1 minute"));
    ck_assert_ptr_nonnull(strstr(page.html, "revoked your oldest keys"));
    ck_assert_ptr_nonnull(strstr(page.html, "svc_acct_&lt;0&gt;"));
}
END_TEST

START_TEST(my_keys_page_lists_keys_with_forms)
{
    apr_array_header_t *owned = apr_array_make(test_pool, 2, sizeof(okey_owned_key_t));
    okey_owned_key_t live = {"svc_1", "okey-2000-a@x", "proj_1", 1000, 2000};
    okey_owned_key_t dead = {"svc_2", "okey-1500-a@x", "proj_1", 900, 1500};
    okey_page_links_t links = {"/keys", "tok"};
    okey_lifetimes_t lifetimes = {3600, 86400};
    okey_page_t page;

    okey_person_spend_t person = {"a@x", 1500, 0, NULL, apr_hash_make(test_pool), 1};
    okey_key_spend_t figures = {"key_1", {"svc_1", "a@x", "proj_1", NULL, 1000, 2000}, 1,
                                1400, 7, 1200, 340, 0.126};
    okey_budget_t budget = {1, 5, OKEY_PERIOD_MONTH};
    okey_spend_view_t spend = {&person, OKEY_PERIOD_MONTH, 1.5, &budget, 2678400};
    okey_spend_view_t unknown = {NULL, OKEY_PERIOD_MONTH, 0, &budget, 2678400};

    person.keys = apr_array_make(test_pool, 1, sizeof(okey_key_spend_t));
    APR_ARRAY_PUSH(person.keys, okey_key_spend_t) = figures;
    APR_ARRAY_PUSH(owned, okey_owned_key_t) = dead;
    APR_ARRAY_PUSH(owned, okey_owned_key_t) = live;
    page = okey_page_my_keys(test_pool, "a<@x", "p", owned, 1600, "Revoked 1 key.",
                             &links, &lifetimes, "n", &spend);
    /* The reported key's figures; the other's unknown, never 0. */
    ck_assert_ptr_nonnull(strstr(page.html, "<td class=\"n\">7</td><td class=\"n\">1200 / "
                                 "340</td><td class=\"n\">$0.13</td>"));
    ck_assert_ptr_nonnull(strstr(page.html, "<td><span class=\"unknown\">unknown</span></td>"));
    ck_assert_ptr_nonnull(strstr(page.html, "Spent this month: <strong>$1.50</strong> of "
                                 "your <strong>$5.00</strong> budget"));
    ck_assert_ptr_nonnull(strstr(page.html, "ends at 1970-02-01T00:00:00Z"));
    ck_assert_ptr_nonnull(strstr(page.html, "a&lt;@x"));
    ck_assert_ptr_nonnull(strstr(page.html, "expired; being deleted"));
    ck_assert_ptr_nonnull(strstr(page.html, "in 6 minutes 40 seconds"));
    ck_assert_ptr_nonnull(strstr(page.html, "value=\"svc_1\""));
    ck_assert_ptr_nonnull(strstr(page.html, "value=\"all\""));
    ck_assert_ptr_nonnull(strstr(page.html, "Revoked 1 key."));
    ck_assert_ptr_nonnull(strstr(page.csp, "form-action 'self'"));
    page = okey_page_my_keys(test_pool, "a@x", "p",
                             apr_array_make(test_pool, 1, sizeof(okey_owned_key_t)), 1600,
                             NULL, &links, &lifetimes, "n", &unknown);
    ck_assert_ptr_nonnull(strstr(page.html, "You have no keys."));
    ck_assert_ptr_null(strstr(page.html, "method=\"post\""));
    /* The default lifetime first and chosen, then the common ones allowed. */
    ck_assert_ptr_nonnull(strstr(page.html, "<option value=\"3600\" selected>1 hour</option>"
                                 "<option value=\"900\">15 minutes</option>"
                                 "<option value=\"28800\">8 hours</option>"
                                 "<option value=\"86400\">1 day</option></select>"));
}
END_TEST

START_TEST(admin_page_lists_people_and_found_keys_with_forms)
{
    okey_admin_people_t people = {apr_array_make(test_pool, 2, sizeof(okey_admin_person_t)),
                                  2, 3, 250, OKEY_PERIOD_WEEK};
    okey_admin_person_t over = {"big<@x.org", 2, 7.5, 1};
    okey_admin_key_t reported = {"key_1", {"svc_1", "a@x.org", "proj_1", "sk-abc...wxyz", 1000,
                                           2000}, 1400, 0.126};
    okey_admin_key_t fresh = {"key_2", {"svc_2", "a@x.org", "proj_1", NULL, 1500, 2500}, -1,
                              -1};
    apr_array_header_t *keys = apr_array_make(test_pool, 2, sizeof(okey_admin_key_t));
    okey_budget_t budget = {1, 5, OKEY_PERIOD_WEEK};
    okey_admin_query_t query;
    okey_page_admin_t admin = {"root", "/admin", "tok", &people, &budget, 1600, &query, keys,
                               "Revoked 2 keys of a@x.org."};
    okey_page_t page;

    APR_ARRAY_PUSH(people.people, okey_admin_person_t) = over;
    APR_ARRAY_PUSH(keys, okey_admin_key_t) = reported;
    APR_ARRAY_PUSH(keys, okey_admin_key_t) = fresh;
    ck_assert_ptr_null(okey_admin_query_parse(
        test_pool, "sk-abcdefghijklmnopqrstuvwxyz0123456789wxyz", &query));
    page = okey_page_admin(test_pool, &admin, "n");
    ck_assert_ptr_nonnull(strstr(page.html, "big&lt;@x.org"));
    /* An over-budget person's row stands out. */
    ck_assert_ptr_nonnull(strstr(page.html, "<tr class=\"over\"><td><a href=\"?q=big"));
    ck_assert_ptr_nonnull(strstr(page.html, "<td class=\"n\">$7.50</td><td class=\"n\">$5.00"
                                 "</td><td><strong>over</strong></td>"));
    ck_assert_ptr_nonnull(strstr(page.html, "href=\"?page=1\">Previous"));
    ck_assert_ptr_nonnull(strstr(page.html, "href=\"?page=3\">Next"));
    ck_assert_ptr_nonnull(strstr(page.html, "Page 2 of 3 (250 people)"));
    /* The pasted key only by its ends, and never back in the search box. */
    ck_assert_ptr_null(strstr(page.html, "abcdefghijklmnop"));
    ck_assert_ptr_nonnull(strstr(page.html, "<code>sk-...wxyz</code>"));
    ck_assert_ptr_nonnull(strstr(page.html, "name=\"q\" size=\"48\" autocomplete=\"off\" "
                                 "value=\"\""));
    ck_assert_ptr_nonnull(strstr(page.html, "<form id=\"search\" method=\"post\""));
    ck_assert_ptr_nonnull(strstr(page.html, "name=\"revoke\" value=\"svc_1\""));
    ck_assert_ptr_nonnull(strstr(page.html, "name=\"revoke\" value=\"svc_2\""));
    ck_assert_ptr_nonnull(strstr(page.html, "name=\"revoke_person\" value=\"a@x.org\""));
    /* One revoke-all form per person. */
    ck_assert_ptr_null(strstr(strstr(page.html, "name=\"revoke_person\"") + 1,
                              "name=\"revoke_person\""));
    ck_assert_ptr_nonnull(strstr(page.html, "<td class=\"n\">$0.13</td>"));
    ck_assert_ptr_nonnull(strstr(page.html, "<td><span class=\"unknown\">unknown</span></td>"
                                 "<td class=\"n\"><span class=\"unknown\">unknown</span>"));
    ck_assert_ptr_nonnull(strstr(page.html, "Revoked 2 keys of a@x.org."));
    ck_assert_ptr_nonnull(strstr(page.csp, "form-action 'self'"));
    /* Before any poll, spend is unknown, not 0. */
    admin.polled_at = 0;
    admin.keys = apr_array_make(test_pool, 1, sizeof(okey_admin_key_t));
    page = okey_page_admin(test_pool, &admin, "n");
    ck_assert_ptr_nonnull(strstr(page.html, "No usage poll has reported yet"));
    ck_assert_ptr_nonnull(strstr(page.html, "No live key matches <code>sk-...wxyz</code>"));
    ck_assert_ptr_null(strstr(page.html, "$0.00"));
}
END_TEST

START_TEST(error_page_escapes_its_message)
{
    okey_page_t page = okey_page_error(test_pool, 400, "Sign-in failed", "x <img src=y>");

    ck_assert_ptr_nonnull(strstr(page.html, "<title>400 Sign-in failed</title>"));
    ck_assert_ptr_nonnull(strstr(page.html, "x &lt;img src=y&gt;"));
}
END_TEST

Suite *okey_page_suite(void)
{
    Suite *suite = suite_create("page");
    TCase *tc = test_case("render");

    tcase_add_test(tc, escaping_covers_markup_and_quotes);
    tcase_add_test(tc, key_page_shows_everything_escaped);
    tcase_add_test(tc, error_page_escapes_its_message);
    tcase_add_test(tc, key_page_without_a_session_offers_no_forms);
    tcase_add_test(tc, my_keys_page_lists_keys_with_forms);
    tcase_add_test(tc, admin_page_lists_people_and_found_keys_with_forms);
    suite_add_tcase(suite, tc);
    return suite;
}
