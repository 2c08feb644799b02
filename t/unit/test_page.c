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
                            1795705143};
    okey_page_t page = okey_page_key(test_pool, &issued, "n0nce");

    ck_assert_ptr_nonnull(strstr(page.html, "sk-&lt;b&gt;key&lt;/b&gt;"));
    ck_assert_ptr_nonnull(strstr(page.html, "export OPENAI_API_KEY=sk-&lt;b&gt;"));
    ck_assert_ptr_nonnull(strstr(page.html, "per&lt;sonal"));
    ck_assert_ptr_nonnull(strstr(page.html, "2026-11-26T14:59:03Z"));
    ck_assert_ptr_null(strstr(page.html, "<script>@"));
    ck_assert_ptr_null(strstr(page.html, "<b>"));
    ck_assert_ptr_nonnull(strstr(page.csp, "script-src 'nonce-n0nce'"));
    ck_assert_ptr_nonnull(strstr(page.html, "<script nonce=\"n0nce\">"));
    ck_assert_ptr_null(strstr(page.html, "http"));
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
    suite_add_tcase(suite, tc);
    return suite;
}
