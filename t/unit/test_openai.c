/* Parsing the OpenAI Admin API's answers. */
#include "testutil.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

#include "openai.h"

static okey_err_t *parse_page(const char *text, okey_openai_page_t *page)
{
    return okey_openai_page_parse(test_pool, text, strlen(text), page);
}

/* The ids of the active projects named name in a page, oldest first, joined
 * with spaces; "" when there is none. */
static const char *projects_named(const okey_openai_page_t *page, const char *name)
{
    apr_array_header_t *found = apr_array_make(test_pool, 2, sizeof(okey_openai_project_t));
    const json_t *project;
    size_t i;

    json_array_foreach(page->data, i, project) {
        okey_openai_note_project(test_pool, project, name, found);
    }
    return apr_array_pstrcat(test_pool, okey_openai_oldest_first(test_pool, found), ' ');
}

START_TEST(pages_parse_with_cursor)
{
    okey_openai_page_t page;

    ck_assert_ptr_null(parse_page(
        "{\"object\":\"list\",\"data\":[{\"id\":\"proj_1\",\"name\":\"personal\","
        "\"status\":\"active\",\"archived_at\":null}],\"first_id\":\"proj_1\","
        "\"last_id\":\"proj_1\",\"has_more\":true}", &page));
    ck_assert_int_eq(page.has_more, 1);
    ck_assert_str_eq(page.last_id, "proj_1");
    ck_assert_str_eq(projects_named(&page, "personal"), "proj_1");
    ck_assert_str_eq(projects_named(&page, "Personal"), "");

    ck_assert_ptr_null(parse_page("{\"object\":\"list\",\"data\":[],\"first_id\":null,"
                                  "\"last_id\":null,\"has_more\":false}", &page));
    ck_assert_int_eq(page.has_more, 0);
    ck_assert_ptr_null(page.last_id);
}
END_TEST

START_TEST(only_active_projects_are_found)
{
    okey_openai_page_t page;

    ck_assert_ptr_null(parse_page(
        "{\"data\":[{\"id\":\"proj_old\",\"name\":\"p\",\"status\":\"archived\","
        "\"archived_at\":1711471600},{\"id\":\"proj_gone\",\"name\":\"p\","
        "\"archived_at\":1711471600},{\"id\":\"proj_new\",\"name\":\"p\"}],"
        "\"has_more\":false}", &page));
    ck_assert_str_eq(projects_named(&page, "p"), "proj_new");
}
END_TEST

START_TEST(malformed_pages_are_errors)
{
    okey_openai_page_t page;

    ck_assert_int_eq(parse_page("{\"data\": [", &page)->status, 502);
    ck_assert_int_eq(parse_page("{\"data\": {}}", &page)->status, 502);
    ck_assert_int_eq(parse_page("[]", &page)->status, 502);
    ck_assert_int_eq(parse_page("", &page)->status, 502);
}
END_TEST

START_TEST(created_service_account_is_flat_with_its_key)
{
    const char *text =
        "{\"object\":\"organization.project.service_account\",\"id\":\"svc_acct_abc\","
        "\"name\":\"okey-1-a@b\",\"role\":\"member\",\"created_at\":1711471533,"
        "\"api_key\":{\"object\":\"organization.project.service_account.api_key\","
        "\"value\":\"sk-abcdefghijklmnop123\",\"name\":\"Secret Key\","
        "\"created_at\":1711471533,\"id\":\"key_abc\"}}";
    okey_service_account_t *account = NULL;

    ck_assert_ptr_null(okey_openai_service_account_parse(test_pool, text, strlen(text), &account));
    ck_assert_str_eq(account->id, "svc_acct_abc");
    ck_assert_str_eq(account->api_key, "sk-abcdefghijklmnop123");
    ck_assert_int_eq(account->created_at, 1711471533);
}
END_TEST

START_TEST(service_account_without_key_or_id)
{
    const char *no_key = "{\"id\":\"svc_acct_abc\",\"name\":\"n\",\"api_key\":null}";
    okey_service_account_t *account = NULL;

    ck_assert_ptr_null(okey_openai_service_account_parse(test_pool, no_key, strlen(no_key), &account));
    ck_assert_ptr_null(account->api_key);
    ck_assert_int_eq(okey_openai_service_account_parse(test_pool, "{\"name\":\"n\"}", 12,
                                                       &account)->status, 502);
    ck_assert_ptr_null(account);
}
END_TEST

START_TEST(error_answers_name_status_and_message)
{
    okey_http_response_t resp = {0};
    okey_err_t *err;

    resp.status = 401;
    resp.body = "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":\"x\"}}";
    resp.body_len = strlen(resp.body);
    err = okey_openai_status_error(test_pool, "project list", OKEY_ENDPOINT_PROJECTS,
                                   &resp);
    ck_assert_int_eq(err->status, 502);
    ck_assert_int_eq(err->upstream_status, 401);
    ck_assert_int_eq(err->endpoint, OKEY_ENDPOINT_PROJECTS);
    ck_assert_str_eq(err->log_msg, "OpenAI project list answered 401: Incorrect API key "
                                   "provided (check OpenAIKeyManagementKey)");
}
END_TEST

START_TEST(error_answers_lose_what_looks_like_a_credential)
{
    okey_http_response_t resp = {0};
    okey_err_t *err;

    resp.status = 401;
    resp.body = "{\"error\":{\"message\":\"Incorrect API key provided: sk-admin-AbCdEf123456"
                "7890. Header was Bearer sk-admin-AbCdEf1234567890\"}}";
    resp.body_len = strlen(resp.body);
    err = okey_openai_status_error(test_pool, "delete", OKEY_ENDPOINT_SERVICE_ACCOUNTS,
                                   &resp);
    ck_assert_ptr_null(strstr(err->log_msg, "AbCdEf"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "Incorrect API key provided: [redacted]"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "Header was [redacted]"));
}
END_TEST

/* A page as a list endpoint would answer it. */
static okey_openai_page_t page_of(const char *text)
{
    okey_openai_page_t page;

    ck_assert_ptr_null(parse_page(text, &page));
    return page;
}

START_TEST(paging_stops_on_broken_cursors)
{
    apr_hash_t *seen = apr_hash_make(test_pool);
    okey_openai_page_t page;
    const char *why = NULL;

    page = page_of("{\"data\":[{\"id\":\"a\"}],\"last_id\":\"a\",\"has_more\":false}");
    ck_assert(!okey_openai_page_loops(&page, 1, seen, &why));
    page = page_of("{\"data\":[{\"id\":\"a\"}],\"last_id\":\"a\",\"has_more\":true}");
    ck_assert(!okey_openai_page_loops(&page, 1, seen, &why));
    apr_hash_set(seen, "a", APR_HASH_KEY_STRING, "");
    ck_assert(okey_openai_page_loops(&page, 2, seen, &why));
    ck_assert_str_eq(why, "the same last_id twice");
    page = page_of("{\"data\":[{\"id\":\"b\"}],\"has_more\":true}");
    ck_assert(okey_openai_page_loops(&page, 2, seen, &why));
    ck_assert_str_eq(why, "has_more without a last_id");
    page = page_of("{\"data\":[],\"last_id\":\"c\",\"has_more\":true}");
    ck_assert(okey_openai_page_loops(&page, 2, seen, &why));
    ck_assert_str_eq(why, "an empty page with has_more");
    page = page_of("{\"data\":[{\"id\":\"d\"}],\"last_id\":\"d\",\"has_more\":true}");
    ck_assert(okey_openai_page_loops(&page, OKEY_OPENAI_PAGE_MAX, seen, &why));
    ck_assert_str_eq(why, "more pages than the limit");
}
END_TEST

START_TEST(the_oldest_project_of_a_name_wins)
{
    okey_openai_page_t page = page_of(
        "{\"data\":[{\"id\":\"proj_b\",\"name\":\"p\",\"created_at\":200},"
        "{\"id\":\"proj_a\",\"name\":\"p\",\"created_at\":100},"
        "{\"id\":\"proj_0\",\"name\":\"p\",\"created_at\":50,\"status\":\"archived\"},"
        "{\"id\":\"proj_c\",\"name\":\"p\",\"created_at\":100}],\"has_more\":false}");

    ck_assert_str_eq(projects_named(&page, "p"), "proj_a proj_c proj_b");
}
END_TEST

/* A name JSON cannot carry is refused before anything is sent: the client
 * has no HTTP here, and asking it would crash. */
START_TEST(names_that_are_not_utf8_are_not_sent)
{
    okey_openai_t api;
    okey_service_account_t *account = (okey_service_account_t *)&api;
    const char *project_id = "x";
    okey_err_t *err;

    memset(&api, 0, sizeof(api));
    err = okey_openai_create_service_account(&api, test_pool, "proj", "okey-1-a\xff@x",
                                             &account);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(err->status, 500);
    ck_assert_ptr_nonnull(strstr(err->log_msg, "not UTF-8"));
    ck_assert_ptr_null(account);
    err = okey_openai_create_project(&api, test_pool, "bad\xc3(", &project_id);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(project_id);
}
END_TEST

/* What the client makes of an answer to a service-account creation. */
static okey_err_t *creation_answer(int status, const char *body)
{
    okey_http_response_t resp = {0};
    okey_service_account_t *account = NULL;

    resp.status = status;
    resp.body = body;
    resp.body_len = strlen(body);
    return status >= 200 && status < 300
           ? okey_openai_service_account_answer(test_pool, &resp, &account)
           : okey_openai_status_error(test_pool, "service account creation",
                                      OKEY_ENDPOINT_SERVICE_ACCOUNTS, &resp);
}

START_TEST(creations_without_a_clear_answer_may_have_made_the_account)
{
    okey_err_t *timed_out = okey_err_make(test_pool, 504, NULL, "timed out");
    okey_service_account_t *account = NULL;
    okey_openai_t api;

    timed_out->no_answer = 1;
    ck_assert(okey_openai_creation_unclear(timed_out));
    ck_assert(okey_openai_creation_unclear(creation_answer(500, "")));
    ck_assert(okey_openai_creation_unclear(creation_answer(503, "{}")));
    ck_assert(okey_openai_creation_unclear(creation_answer(200, "{\"id\": ")));
    ck_assert(okey_openai_creation_unclear(
        creation_answer(200, "{\"id\":\"svc_acct_1\",\"name\":\"n\"}")));
    ck_assert(okey_openai_creation_unclear(creation_answer(201, "")));
    ck_assert(okey_openai_creation_unclear(creation_answer(302, "")));
    ck_assert(okey_openai_creation_unclear(creation_answer(408, "")));
    ck_assert(okey_openai_creation_unclear(creation_answer(409, "")));
    /* Refused: nothing was made. */
    ck_assert(!okey_openai_creation_unclear(creation_answer(400, "")));
    ck_assert(!okey_openai_creation_unclear(creation_answer(401, "")));
    ck_assert(!okey_openai_creation_unclear(creation_answer(404, "")));
    ck_assert(!okey_openai_creation_unclear(creation_answer(429, "")));
    /* Never sent. */
    memset(&api, 0, sizeof(api));
    ck_assert(!okey_openai_creation_unclear(okey_openai_create_service_account(
        &api, test_pool, "proj", "okey-1-a\xff@x", &account)));
}
END_TEST

START_TEST(admin_keys_are_told_by_their_redaction)
{
    const char *key = "sk-admin-abcdefghijklmnopqrstuvwxyz0123";

    ck_assert(okey_openai_redaction_matches("sk-admin-ab...0123", key));
    ck_assert(okey_openai_redaction_matches("sk-admin...123", key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-ab...0124", key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-xb...0123", key));
    /* Both ends must be there, and they may not overlap. */
    ck_assert(!okey_openai_redaction_matches("...0123", key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-ab...", key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-abcdefghijklmnopqrstuvwxyz...z0123", key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-ab0123", key));
    ck_assert(!okey_openai_redaction_matches(NULL, key));
    ck_assert(!okey_openai_redaction_matches("sk-admin-ab...0123", NULL));
}
END_TEST

static json_t *json_of(const char *text)
{
    return okey_json_parse(test_pool, text, strlen(text), NULL);
}

START_TEST(admin_keys_parse_as_listed_and_created)
{
    json_t *listed = json_of("{\"object\":\"organization.admin_api_key\","
        "\"id\":\"key_abc\",\"name\":\"ops\",\"redacted_value\":\"sk-admin...def\","
        "\"created_at\":1711471533,\"expires_at\":1719247533,\"last_used_at\":null}");
    json_t *created = json_of("{\"id\":\"key_new\",\"expires_at\":null,\"value\":\"sk-admin-xyz\"}");
    json_t *without_id = json_of("{\"id\":\"\",\"value\":\"v\"}");
    okey_openai_admin_key_t *key = okey_openai_admin_key_parse(test_pool, listed);

    ck_assert_ptr_nonnull(key);
    ck_assert_str_eq(key->id, "key_abc");
    ck_assert_str_eq(key->redacted_value, "sk-admin...def");
    ck_assert_ptr_null(key->value);
    ck_assert_int_eq(key->expires_at, 1719247533);
    key = okey_openai_admin_key_parse(test_pool, created);
    ck_assert_str_eq(key->value, "sk-admin-xyz");
    ck_assert_int_eq(key->expires_at, 0);
    ck_assert_ptr_null(okey_openai_admin_key_parse(test_pool, without_id));
    ck_assert_ptr_null(okey_openai_admin_key_parse(test_pool, NULL));
}
END_TEST

Suite *okey_openai_suite(void)
{
    Suite *suite = suite_create("openai");
    TCase *tc = test_case("parsing");

    tcase_add_test(tc, pages_parse_with_cursor);
    tcase_add_test(tc, only_active_projects_are_found);
    tcase_add_test(tc, malformed_pages_are_errors);
    tcase_add_test(tc, created_service_account_is_flat_with_its_key);
    tcase_add_test(tc, service_account_without_key_or_id);
    tcase_add_test(tc, error_answers_name_status_and_message);
    tcase_add_test(tc, error_answers_lose_what_looks_like_a_credential);
    tcase_add_test(tc, paging_stops_on_broken_cursors);
    tcase_add_test(tc, the_oldest_project_of_a_name_wins);
    tcase_add_test(tc, names_that_are_not_utf8_are_not_sent);
    tcase_add_test(tc, creations_without_a_clear_answer_may_have_made_the_account);
    tcase_add_test(tc, admin_keys_are_told_by_their_redaction);
    tcase_add_test(tc, admin_keys_parse_as_listed_and_created);
    suite_add_tcase(suite, tc);
    return suite;
}
