/* Query strings, scrubbing credentials out of upstream text, and the JOSE
 * shapes checked before cjose sees them. */
#include "testutil.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <string.h>

#include "query.h"

static apr_array_header_t *parse(const char *query, const char **why)
{
    return okey_query_parse(test_pool, query, why);
}

START_TEST(parameters_decode_in_order)
{
    const char *why = NULL;
    apr_array_header_t *params = parse("code=a%2Fb+c&state=S&flag&&x=", &why);
    int count = 0;

    ck_assert_ptr_nonnull(params);
    ck_assert_int_eq(params->nelts, 4);
    ck_assert_str_eq(okey_query_get(params, "code", &count), "a/b c");
    ck_assert_int_eq(count, 1);
    ck_assert_str_eq(okey_query_get(params, "flag", &count), "");
    ck_assert_ptr_null(okey_query_get(params, "missing", &count));
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(parse(NULL, &why)->nelts, 0);
}
END_TEST

START_TEST(repeated_names_are_all_counted)
{
    const char *why = NULL;
    int count = 0;

    okey_query_get(parse("code=X&state=S&code=REAL", &why), "code", &count);
    ck_assert_int_eq(count, 2);
    okey_query_get(parse("c%6Fde=X&code=Y", &why), "code", &count);
    ck_assert_int_eq(count, 2);
}
END_TEST

START_TEST(malformed_queries_are_refused)
{
    static const char *const bad[] = {"code=%", "code=%4", "code=%zz", "code=a%00b",
                                      "%00=x"};
    const char *many = "";
    const char *why = NULL;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(parse(bad[i], &why) == NULL, "accepted %s", bad[i]);
        ck_assert_ptr_nonnull(why);
    }
    for (i = 0; i <= OKEY_QUERY_MAX_PARAMS; i++) {
        many = apr_psprintf(test_pool, "%sp%d=1&", many, (int)i);
    }
    ck_assert_ptr_null(parse(many, &why));
    ck_assert_str_eq(why, "too many parameters");
}
END_TEST

START_TEST(scrub_removes_keys_tokens_and_jwts)
{
    ck_assert_str_eq(okey_scrub(test_pool, "key sk-proj-abcdefgh1234 is bad"),
                     "key [redacted] is bad");
    ck_assert_str_eq(okey_scrub(test_pool, "Authorization: Bearer abc.def-ghi"),
                     "Authorization: [redacted]");
    ck_assert_str_eq(okey_scrub(test_pool, "token eyJhbGciOiJSUzI1NiJ9.e30.sig here"),
                     "token [redacted] here");
    ck_assert_str_eq(okey_scrub(test_pool, "opaque 0123456789abcdef0123456789abcdef!"),
                     "opaque [redacted]!");
    ck_assert_str_eq(okey_scrub(test_pool, "No such project proj_abc (archived)"),
                     "No such project proj_abc (archived)");
    ck_assert_str_eq(okey_scrub(test_pool, "task-12345678"), "task-12345678");
    ck_assert_ptr_null(okey_scrub(test_pool, NULL));
}
END_TEST

START_TEST(jose_shapes_cjose_cannot_decode_are_refused)
{
    apr_size_t lens[5];
    json_t *good = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", "AQAB", "e", "AQAB");
    json_t *bad = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", "AQABA", "e", "AQAB");
    json_t *odd = json_pack("{s:s, s:i}", "kty", "RSA", "n", 5);

    ck_assert(okey_jose_compact_ok("eyJh.eyJi.c2ln", 3, NULL));
    ck_assert(okey_jose_compact_ok("eyJh..AAAAAAAAAAAAAAAA.QkJC.CCCCCCCCCCCCCCCCCCCCCC", 5, lens));
    ck_assert_int_eq(lens[1], 0);
    ck_assert_int_eq(lens[2], 16);
    ck_assert_int_eq(lens[4], 22);
    ck_assert(!okey_jose_compact_ok("eyJhA.eyJi.c2ln", 3, NULL));   /* 4n+1 */
    ck_assert(!okey_jose_compact_ok("eyJh.eyJi.c2ln.x", 3, NULL));  /* too many */
    ck_assert(!okey_jose_compact_ok("eyJh.eyJi", 3, NULL));         /* too few */
    ck_assert(!okey_jose_compact_ok("eyJh.ey+i.c2ln", 3, NULL));     /* not base64url */
    ck_assert(!okey_jose_compact_ok("eyJh.eyJi.c2ln=", 3, NULL));
    ck_assert(!okey_jose_compact_ok(NULL, 3, NULL));
    ck_assert(okey_jwk_decodable(good));
    ck_assert(!okey_jwk_decodable(bad));
    ck_assert(!okey_jwk_decodable(odd));
    json_decref(good);
    json_decref(bad);
    json_decref(odd);
}
END_TEST

START_TEST(b64url_encodes_without_padding)
{
    static const unsigned char high[] = {0xfb, 0xff, 0xbf};

    ck_assert_str_eq(okey_b64url_encode(test_pool, (const unsigned char *)"", 0), "");
    ck_assert_str_eq(okey_b64url_encode(test_pool, (const unsigned char *)"f", 1), "Zg");
    ck_assert_str_eq(okey_b64url_encode(test_pool, (const unsigned char *)"fo", 2), "Zm8");
    ck_assert_str_eq(okey_b64url_encode(test_pool, (const unsigned char *)"foo", 3), "Zm9v");
    ck_assert_str_eq(okey_b64url_encode(test_pool, (const unsigned char *)"foob", 4),
                     "Zm9vYg");
    ck_assert_str_eq(okey_b64url_encode(test_pool, high, 3), "-_-_");
    ck_assert_str_eq(okey_b64url_encode(test_pool, high, 2), "-_8");
}
END_TEST

/* Every length and every byte value, against APR's base64 with the URL
 * alphabet swapped in and the padding dropped, and back. */
START_TEST(b64url_agrees_with_apr_base64)
{
    unsigned char bytes[300];
    apr_size_t len;

    for (len = 0; len < sizeof(bytes); len++) {
        bytes[len] = (unsigned char)(len * 97 + 13);
    }
    for (len = 0; len <= sizeof(bytes); len++) {
        char *expected = apr_palloc(test_pool, (apr_size_t)apr_base64_encode_len((int)len));
        const char *encoded = okey_b64url_encode(test_pool, bytes, len);
        apr_size_t decoded_len = 0;
        unsigned char *decoded;
        char *c;

        apr_base64_encode_binary(expected, bytes, (int)len);
        for (c = expected; *c; c++) {
            *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
        }
        expected[strcspn(expected, "=")] = '\0';
        ck_assert_str_eq(encoded, expected);
        decoded = okey_b64url_decode(test_pool, encoded, &decoded_len);
        ck_assert_int_eq(decoded_len, len);
        ck_assert_int_eq(memcmp(decoded, bytes, len), 0);
    }
}
END_TEST

Suite *okey_query_suite(void)
{
    Suite *suite = suite_create("query");
    TCase *tc = test_case("parse");

    tcase_add_test(tc, parameters_decode_in_order);
    tcase_add_test(tc, b64url_encodes_without_padding);
    tcase_add_test(tc, b64url_agrees_with_apr_base64);
    tcase_add_test(tc, repeated_names_are_all_counted);
    tcase_add_test(tc, malformed_queries_are_refused);
    tcase_add_test(tc, scrub_removes_keys_tokens_and_jwts);
    tcase_add_test(tc, jose_shapes_cjose_cannot_decode_are_refused);
    suite_add_tcase(suite, tc);
    return suite;
}
