/* The JSON reader: jansson's json_loadb (JSON_REJECT_DUPLICATES) is the
 * oracle for what is accepted and what it means. */
#include "testutil.h"

#include <apr_strings.h>
#include <jansson.h>
#include <string.h>

#include "okey.h"

/* Whether ours and jansson agree on text: both refuse it, or both accept
 * it with equal values. */
static int agrees(const char *text, apr_size_t len)
{
    json_error_t error;
    json_t *theirs = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    json_t *ours = okey_json_parse(test_pool, text, len, NULL);
    int same = (!theirs && !ours) || (theirs && ours && json_equal(theirs, ours));

    json_decref(theirs);
    return same;
}

static const char *const ACCEPTED[] = {
    "{}", "[]", " \t\r\n{ } \n", "[1,-1,0,-0,1.5,-2.5e3,1E+2,1e-2,0.0]",
    "{\"a\":{\"b\":[true,false,null]},\"c\":\"\"}",
    "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", "[\"\\u00e9\\u20AC\\ud83d\\ude00\"]",
    "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"]",
    "[9223372036854775807,-9223372036854775808]", "[1e-400]",
    "{\"id_token\":\"eyJ.eyJ.sig\",\"expires_in\":3599}",
};

static const char *const REFUSED[] = {
    "", " ", "1", "\"s\"", "true", "null", "{", "[", "[1,]", "{\"a\":1,}", "{\"a\"}",
    "{\"a\" 1}", "{a:1}", "[01]", "[-]", "[1.]", "[.5]", "[1e]", "[+1]", "[0x10]",
    "[tru]", "[truex]", "[nul]", "[1 2]", "{}{}", "{} x", "[\"\\x\"]", "[\"\\u12\"]",
    "[\"\\u0000\"]", "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]",
    "[\"\x01\"]", "[\"a\nb\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]",
    "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]", "[\"\x80\"]", "[\"\xff\"]", "[\"abc",
    "{\"a\":1,\"a\":2}", "{\"\\u0061\":1,\"a\":2}", "[9223372036854775808]",
    "[-9223372036854775809]", "[1e400]", "[-1e400]", "\xef\xbb\xbf{}", "[NaN]",
    "[Infinity]", "['a']",
};

START_TEST(accepts_what_jansson_accepts_with_equal_values)
{
    apr_size_t i;

    for (i = 0; i < sizeof(ACCEPTED) / sizeof(ACCEPTED[0]); i++) {
        ck_assert_msg(okey_json_parse(test_pool, ACCEPTED[i], strlen(ACCEPTED[i]), NULL),
                      "refused %s", ACCEPTED[i]);
        ck_assert_msg(agrees(ACCEPTED[i], strlen(ACCEPTED[i])), "differs on %s",
                      ACCEPTED[i]);
    }
}
END_TEST

START_TEST(refuses_what_jansson_refuses_and_says_where)
{
    apr_size_t i;

    for (i = 0; i < sizeof(REFUSED) / sizeof(REFUSED[0]); i++) {
        const char *error = NULL;

        ck_assert_msg(!okey_json_parse(test_pool, REFUSED[i], strlen(REFUSED[i]), &error),
                      "accepted %s", REFUSED[i]);
        ck_assert_msg(error && strstr(error, " at byte "), "no error for %s", REFUSED[i]);
        ck_assert_msg(agrees(REFUSED[i], strlen(REFUSED[i])), "jansson takes %s",
                      REFUSED[i]);
    }
}
END_TEST

START_TEST(reads_only_the_length_given)
{
    static const char text[] = "{\"a\":\"b\"}garbage";
    static const char nul[] = "{\"a\":1}\0";
    json_t *doc = okey_json_parse(test_pool, text, 9, NULL);

    ck_assert_str_eq(okey_json_str(doc, "a"), "b");
    ck_assert_ptr_null(okey_json_parse(test_pool, text, 8, NULL));
    ck_assert_ptr_null(okey_json_parse(test_pool, nul, sizeof(nul) - 1, NULL));
    /* jansson skips a NUL after a number or a literal; RFC 8259 has none. */
    ck_assert_ptr_null(okey_json_parse(test_pool, "[0\0]", 4, NULL));
    ck_assert_ptr_null(okey_json_parse(test_pool, "[true\0]", 7, NULL));
    ck_assert_ptr_null(okey_json_parse(test_pool, NULL, 0, NULL));
}
END_TEST

START_TEST(names_and_strings_with_escapes_keep_their_own_text)
{
    static const char text[] = "{\"k\\u0065y\":\"v\\u00e9\",\"n\\t\":[\"\\\"x\\\"\"]}";
    json_t *doc = okey_json_parse(test_pool, text, strlen(text), NULL);

    ck_assert_str_eq(okey_json_str(doc, "key"), "v\xc3\xa9");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(doc, "n\t"), 0)),
                     "\"x\"");
    ck_assert_int_eq(json_object_size(doc), 2);
}
END_TEST

START_TEST(nesting_is_bounded)
{
    char deep[2 * (OKEY_JSON_MAX_DEPTH + 1) + 1];
    const char *error = NULL;
    int i;

    for (i = 0; i < OKEY_JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * OKEY_JSON_MAX_DEPTH - 1 - i] = ']';
    }
    ck_assert_ptr_nonnull(okey_json_parse(test_pool, deep, 2 * OKEY_JSON_MAX_DEPTH, NULL));
    memmove(deep + 1, deep, 2 * OKEY_JSON_MAX_DEPTH);
    deep[0] = '[';
    deep[2 * OKEY_JSON_MAX_DEPTH + 1] = ']';
    ck_assert_ptr_null(okey_json_parse(test_pool, deep, sizeof(deep) - 1, &error));
    ck_assert_ptr_nonnull(strstr(error, "nesting too deep"));
}
END_TEST

START_TEST(quoted_strings_read_back_as_themselves)
{
    static const char *const texts[] = {"", "plain", "a\"b\\c", "tab\tnew\nline\x01\x1f",
                                        "caf\xc3\xa9 \xf0\x9f\x98\x80", "</script>"};
    apr_size_t i;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        const char *doc = apr_pstrcat(test_pool, "[", okey_json_quote(test_pool, texts[i]),
                                      "]", NULL);
        json_t *read = okey_json_parse(test_pool, doc, strlen(doc), NULL);

        ck_assert_msg(read != NULL, "unreadable %s", doc);
        ck_assert_str_eq(json_string_value(json_array_get(read, 0)), texts[i]);
        ck_assert_msg(agrees(doc, strlen(doc)), "jansson differs on %s", doc);
    }
    ck_assert_ptr_null(okey_json_quote(test_pool, "bad \xc3("));
    ck_assert_ptr_null(okey_json_quote(test_pool, "\xed\xa0\x80"));
    ck_assert_ptr_null(okey_json_quote(test_pool, "\xff"));
}
END_TEST

Suite *okey_json_suite(void)
{
    Suite *suite = suite_create("json");
    TCase *tc = test_case("parse");

    tcase_add_test(tc, accepts_what_jansson_accepts_with_equal_values);
    tcase_add_test(tc, refuses_what_jansson_refuses_and_says_where);
    tcase_add_test(tc, reads_only_the_length_given);
    tcase_add_test(tc, names_and_strings_with_escapes_keep_their_own_text);
    tcase_add_test(tc, nesting_is_bounded);
    tcase_add_test(tc, quoted_strings_read_back_as_themselves);
    suite_add_tcase(suite, tc);
    return suite;
}
