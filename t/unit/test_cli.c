/* The command-line helper's protocol: what a login URL may carry, and
 * results only the helper's key opens. */
#include "testutil.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "state.h"

static const char *b64(const char *text)
{
    return okey_b64url_encode(test_pool, (const unsigned char *)text, strlen(text));
}

static okey_cli_keypair_t *pair_of(int bits)
{
    okey_cli_keypair_t *pair = NULL;

    ck_assert_ptr_null(okey_cli_keypair_new(test_pool, bits, &pair));
    return pair;
}

/* The public JWK of pair as JSON, with extra members spliced in front. */
static const char *public_json(const okey_cli_keypair_t *pair, const char *extra)
{
    apr_size_t len = 0;
    const char *json = (const char *)okey_b64url_decode(
        test_pool, okey_cli_keypair_public(test_pool, pair), &len);

    return apr_pstrcat(test_pool, "{", extra, json + 1, NULL);
}

static okey_err_t *parse_key(const char *text)
{
    okey_cli_key_t *key = NULL;
    okey_err_t *err = okey_cli_key_parse(test_pool, text, &key);

    ck_assert(err ? key == NULL : key != NULL);
    return err;
}

START_TEST(ports_are_digits_from_1024_to_65535)
{
    static const char *const bad[] = {"80", "0", "70000", "abc", "", "1023", "65536",
                                      "+2000", "-2000", " 2000", "2000 ", "2e3", "100000"};
    apr_size_t i;
    int port = -1;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        okey_err_t *err = okey_cli_port_parse(test_pool, bad[i], &port);

        ck_assert_msg(err && err->status == 400, "accepted port '%s'", bad[i]);
        ck_assert_int_eq(port, 0);
        ck_assert_ptr_nonnull(strstr(err->user_msg, "1024 to 65535"));
    }
    ck_assert_ptr_null(okey_cli_port_parse(test_pool, "1024", &port));
    ck_assert_int_eq(port, 1024);
    ck_assert_ptr_null(okey_cli_port_parse(test_pool, "65535", &port));
    ck_assert_int_eq(port, 65535);
    ck_assert_ptr_nonnull(okey_cli_port_parse(test_pool, NULL, &port));
}
END_TEST

START_TEST(keys_other_than_public_rsa_are_refused)
{
    okey_cli_keypair_t *pair = pair_of(2048);
    okey_cli_keypair_t *small = pair_of(1024);
    char *huge = apr_palloc(test_pool, 100 * 1024 + 1);
    okey_err_t *err = NULL;

    memset(huge, 'A', 100 * 1024);
    huge[100 * 1024] = '\0';
    ck_assert_str_eq(parse_key("not a key")->user_msg,
                     "The sign-in link from the command-line helper is not valid: "
                     "cli_key must be a JSON Web Key, base64url-encoded.");
    ck_assert_ptr_nonnull(parse_key(b64("[1,2]")));
    ck_assert_ptr_nonnull(parse_key(""));
    err = parse_key(b64("{\"kty\":\"oct\",\"k\":\"c2VjcmV0c2VjcmV0c2VjcmV0\"}"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "kty RSA"));
    err = parse_key(b64(public_json(small, "")));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "2048 to 4096 bits"));
    err = parse_key(huge);
    ck_assert_ptr_nonnull(strstr(err->log_msg, "too long"));
    err = parse_key(b64(public_json(pair, "\"d\":\"AQAB\",")));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "only a public key"));
    err = parse_key(b64(public_json(pair, "\"alg\":\"RS256\",")));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "RSA-OAEP"));
    err = parse_key(b64(public_json(pair, "\"use\":\"sig\",")));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "RSA-OAEP"));
    err = parse_key(b64("{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "2048 to 4096 bits"));
    err = parse_key(b64("{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AA\"}"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "modulus and exponent"));
    err = parse_key(b64("{\"kty\":\"RSA\",\"n\":\"not base64!\",\"e\":\"AQAB\"}"));
    ck_assert_ptr_nonnull(strstr(err->log_msg, "modulus and exponent"));
    /* Padded or standard base64 is not base64url. */
    ck_assert_ptr_nonnull(parse_key(apr_pstrcat(test_pool, b64(public_json(pair, "")), "=",
                                                NULL)));
}
END_TEST

START_TEST(public_rsa_keys_are_taken_and_results_open_only_with_their_pair)
{
    okey_cli_keypair_t *pair = pair_of(2048);
    okey_cli_keypair_t *other = pair_of(2048);
    okey_cli_key_t *key = NULL;
    const char *jwe = NULL;
    const char *tampered = NULL;
    char *cut = NULL;

    ck_assert_ptr_null(okey_cli_key_parse(
        test_pool, b64(public_json(pair, "\"alg\":\"RSA-OAEP\",\"use\":\"enc\",")), &key));
    ck_assert_ptr_null(okey_cli_key_parse(test_pool, okey_cli_keypair_public(test_pool, pair),
                                          &key));
    ck_assert_ptr_null(okey_cli_seal(test_pool, key, "{\"api_key\":\"sk-1\"}", &jwe));
    ck_assert_ptr_null(strstr(jwe, "sk-1"));
    ck_assert_str_eq(okey_cli_open(test_pool, pair, jwe), "{\"api_key\":\"sk-1\"}");
    ck_assert_ptr_null(okey_cli_open(test_pool, other, jwe));
    /* One character of the ciphertext changed, still base64url: the tag no
     * longer fits. */
    cut = apr_pstrdup(test_pool, jwe);
    cut[strrchr(cut, '.') - cut - 2] = cut[strrchr(cut, '.') - cut - 2] == 'A' ? 'B' : 'A';
    tampered = cut;
    ck_assert_ptr_null(okey_cli_open(test_pool, pair, tampered));
    ck_assert_ptr_null(okey_cli_open(test_pool, pair, "a.b.c.d.e"));
    ck_assert_ptr_null(okey_cli_open(test_pool, pair, ""));
    ck_assert_str_eq(okey_cli_result_url(test_pool, 4321, "J.W.E"),
                     "http://127.0.0.1:4321/?result=J.W.E");
}
END_TEST

START_TEST(keys_of_4096_bits_are_taken)
{
    okey_cli_keypair_t *pair = pair_of(4096);
    okey_cli_key_t *key = NULL;
    const char *jwe = NULL;

    ck_assert_ptr_null(okey_cli_key_parse(test_pool, okey_cli_keypair_public(test_pool, pair),
                                          &key));
    ck_assert_ptr_null(okey_cli_seal(test_pool, key, "{}", &jwe));
    ck_assert_str_eq(okey_cli_open(test_pool, pair, jwe), "{}");
}
END_TEST

START_TEST(the_state_cookie_carries_the_helper)
{
    unsigned char raw[OKEY_STATE_KEY_BYTES] = {7};
    okey_state_key_t *key = NULL;
    okey_state_t *state = NULL;
    okey_state_t *opened = NULL;
    const char *sealed = NULL;
    apr_time_t now = apr_time_now();

    ck_assert_ptr_null(okey_state_key_from_bytes(test_pool, raw, &key));
    ck_assert_ptr_null(okey_state_new(test_pool, now, &state));
    state->cli_port = 40000;
    ck_assert_ptr_null(okey_cli_key_parse(test_pool,
                                          okey_cli_keypair_public(test_pool, pair_of(2048)),
                                          &state->cli_key));
    state->profile = "/team";
    ck_assert_ptr_null(okey_state_seal(test_pool, key, state, &sealed));
    ck_assert_ptr_null(okey_state_open(test_pool, key, sealed, now, &opened));
    ck_assert_int_eq(opened->cli_port, 40000);
    ck_assert_str_eq(opened->cli_key->n, state->cli_key->n);
    ck_assert_str_eq(opened->cli_key->e, "AQAB");
    ck_assert_str_eq(opened->profile, "/team");
    state->cli_key = NULL;
    state->cli_port = 0;
    ck_assert_ptr_null(okey_state_seal(test_pool, key, state, &sealed));
    ck_assert_ptr_null(okey_state_open(test_pool, key, sealed, now, &opened));
    ck_assert_int_eq(opened->cli_port, 0);
    ck_assert_ptr_null(opened->cli_key);
}
END_TEST

START_TEST(base64url_decodes_strictly)
{
    apr_size_t len = 0;
    const unsigned char *bytes = okey_b64url_decode(test_pool, "_-8", &len);

    ck_assert_int_eq(len, 2);
    ck_assert_int_eq(bytes[0], 0xff);
    ck_assert_int_eq(bytes[1], 0xef);
    ck_assert_str_eq((const char *)okey_b64url_decode(test_pool, b64("hello"), &len), "hello");
    ck_assert_ptr_null(okey_b64url_decode(test_pool, "aGVsbG8=", &len));
    ck_assert_ptr_null(okey_b64url_decode(test_pool, "a+b/", &len));
    ck_assert_ptr_null(okey_b64url_decode(test_pool, "abcde", &len));
    ck_assert_int_eq(*okey_b64url_decode(test_pool, "", &len), '\0');
    ck_assert_int_eq(len, 0);
}
END_TEST

/* Where the helper may send a password, a Negotiate token or a sign-in:
 * https anywhere; plain http only to this machine, named exactly. */
static const struct {
    const char *url;
    const char *problem; /* a part of the refusal, or NULL when taken */
} server_urls[] = {
    /* plain http to this machine */
    {"http://127.0.0.1:8080/", NULL},
    {"http://127.0.0.1", NULL},
    {"http://127.255.255.254/issue?x=1#top", NULL},
    {"http://[::1]/", NULL},
    {"http://[::1]:8443/issue", NULL},
    {"http://localhost:8080/", NULL},
    {"http://LOCALHOST/", NULL},        /* host names have no case */
    {"HTTP://127.0.0.1/", NULL},        /* nor do schemes */
    {"http://127.0.0.1/a@b", NULL},     /* an @ in the path names no user */
    {"http://127.0.0.1/?next=@evil", NULL},
    /* https to anywhere */
    {"https://keys.example.com/", NULL},
    {"https://keys.example.com:8443/issue", NULL},
    {"https://192.0.2.1/", NULL},
    {"https://[2001:db8::1]:443/", NULL},
    /* names that only begin like this machine's */
    {"http://localhost.evil.tld/", "plain http"},
    {"http://127.0.0.1.evil.tld/", "plain http"},
    {"http://a.localhost/", "plain http"},
    {"http://localhost./", "plain http"}, /* resolved through DNS, not hosts */
    {"http://127.0.0.1./", "plain http"},
    {"http://keys.example.com/", "plain http"},
    {"http://128.0.0.1/", "plain http"},
    {"http://127.0.0.256/", "plain http"},
    /* this machine's address in a part that is not the host */
    {"http://localhost@other-host/", "user"},
    {"http://127.0.0.1@evil/", "user"},
    {"http://127.0.0.1:8080@evil/", "user"},
    {"http://evil\\@127.0.0.1/", "user"},  /* curl reads 127.0.0.1, a browser evil */
    {"http://127.0.0.1\\@evil/", "user"},
    {"https://alice@keys.example.com/", "user"},
    {"https://alice:secret@keys.example.com/", "user"},
    {"http://evil#@127.0.0.1/", "plain http"},
    {"http://evil?@127.0.0.1/", "plain http"},
    /* other spellings of a loopback address: parsers disagree on them */
    {"http://127.1/", "plain http"},
    {"http://0x7f000001/", "plain http"},
    {"http://2130706433/", "plain http"},
    {"http://0177.0.0.1/", "plain http"},
    {"http://127.0.0.01/", "plain http"},
    {"http://[0:0:0:0:0:0:0:1]/", "plain http"},
    {"http://[::ffff:127.0.0.1]/", "plain http"},
    {"http://[::1%25lo]/", "host"},
    {"http://%6cocalhost/", "host"},
    {"http://[::1/", "host"},
    {"https://[:2]:85/", "host"},
    {"https://[1::2::3]/", "host"},
    {"https://[::ffff:1.2.3]/", "host"},
    {"https:///keys.example.com/", "host"},
    {"https://", "host"},
    /* ports */
    {"http://127.0.0.1:99999/", "port"},
    {"http://127.0.0.1:0/", "port"},
    {"http://127.0.0.1:/", "port"},
    {"http://127.0.0.1:+80/", "port"},
    {"http://127.0.0.1:80a/", "port"},
    {"http://127.0.0.1:8080:80/", "port"},
    {"http://127.0.0.1:000080/", "port"},
    /* not an http(s) URL */
    {"ftp://127.0.0.1/", "http or https"},
    {"127.0.0.1/", "http or https"},
    {"http:127.0.0.1/", "http or https"},
    {"http:/127.0.0.1/", "http or https"},
    {"", "http or https"},
    {"http://127.0.0.1 /", "space"},
    {"http://local\thost/", "space"},
    {"http://127.0.0.1/\n", "space"},
};

/* What curl, which sends the request, reads as url's host, port and user
 * information; 0 when it does not take url. */
static int curl_reads(const char *url, char **host, char **port, int *has_userinfo)
{
    CURLU *parsed = curl_url();
    char *user = NULL;
    char *password = NULL;
    int read = parsed && curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK &&
               curl_url_get(parsed, CURLUPART_HOST, host, 0) == CURLUE_OK;

    if (read) {
        curl_url_get(parsed, CURLUPART_PORT, port, CURLU_DEFAULT_PORT);
        curl_url_get(parsed, CURLUPART_USER, &user, 0);
        curl_url_get(parsed, CURLUPART_PASSWORD, &password, 0);
    }
    *has_userinfo = user || password;
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(parsed);
    return read;
}

/* Whether curl's host is this machine: its own reading, not ours. */
static int curl_host_is_loopback(const char *host)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    char rest = 0;

    return !strcasecmp(host, "localhost") || !strcmp(host, "[::1]") ||
           (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &rest) == 4 && a == 127 &&
            b < 256 && c < 256 && d < 256);
}

START_TEST(plain_http_goes_only_to_this_machine_named_exactly)
{
    apr_size_t i;

    for (i = 0; i < sizeof(server_urls) / sizeof(server_urls[0]); i++) {
        const char *url = server_urls[i].url;
        const char *want = server_urls[i].problem;
        const char *problem = okey_cli_url_problem(test_pool, url);

        ck_assert_msg(want ? problem != NULL : problem == NULL, "'%s': %s", url,
                      problem ? problem : "taken");
        ck_assert_msg(!want || strstr(problem, want), "'%s': '%s' says nothing of %s", url,
                      problem, want);
        ck_assert_msg(!problem || !strstr(problem, url) || !*url,
                      "'%s': the refusal repeats the address", url);
    }
}
END_TEST

/* Every address taken is read by curl the same way: no user information,
 * and a plain http one reaches this machine. */
START_TEST(curl_reads_every_taken_address_as_the_check_does)
{
    apr_size_t i;

    for (i = 0; i < sizeof(server_urls) / sizeof(server_urls[0]); i++) {
        const char *url = server_urls[i].url;
        char *host = NULL;
        char *port = NULL;
        int has_userinfo = 0;

        if (!okey_cli_url_problem(test_pool, url)) {
            ck_assert_msg(curl_reads(url, &host, &port, &has_userinfo), "'%s'", url);
            ck_assert_msg(!has_userinfo, "'%s': curl reads a user", url);
            ck_assert_msg(!strncasecmp(url, "https:", 6) || curl_host_is_loopback(host),
                          "'%s': curl reaches %s", url, host);
        }
        curl_free(host);
        curl_free(port);
    }
}
END_TEST

Suite *okey_cli_suite(void)
{
    Suite *suite = suite_create("cli");
    TCase *tc = test_case("cli");

    tcase_add_test(tc, ports_are_digits_from_1024_to_65535);
    tcase_add_test(tc, keys_other_than_public_rsa_are_refused);
    tcase_add_test(tc, public_rsa_keys_are_taken_and_results_open_only_with_their_pair);
    tcase_add_test(tc, keys_of_4096_bits_are_taken);
    tcase_add_test(tc, the_state_cookie_carries_the_helper);
    tcase_add_test(tc, base64url_decodes_strictly);
    tcase_add_test(tc, plain_http_goes_only_to_this_machine_named_exactly);
    tcase_add_test(tc, curl_reads_every_taken_address_as_the_check_does);
    suite_add_tcase(suite, tc);
    return suite;
}
