/* The command-line helper's protocol: cli_key as any request may send it
 * (raw, and base64url-encoded so that its JSON is explored too), a result
 * as anything on this machine may send it to the listener, and a server
 * address as a person or a cache may give it. */
#include "fuzz.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* One key pair for the process: making one per input would drown the run. */
static okey_cli_keypair_t *fuzz_pair;

/* Whether curl's reading of a host is this machine. */
static int loopback(const char *host)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    char rest = 0;

    return !strcasecmp(host, "localhost") || !strcmp(host, "[::1]") ||
           (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &rest) == 4 && a == 127 &&
            b < 256 && c < 256 && d < 256);
}

/* The property the helper relies on: an address its check takes, curl (which
 * sends the request) reads with no user information and, when it is plain
 * http, with a host on this machine. */
static void check_server_url(apr_pool_t *pool, const char *text)
{
    CURLU *url = curl_url();
    char *host = NULL;
    char *user = NULL;
    char *password = NULL;

    if (!okey_cli_url_problem(pool, text)) {
        if (curl_url_set(url, CURLUPART_URL, text, 0) != CURLUE_OK ||
            curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
            abort();
        }
        curl_url_get(url, CURLUPART_USER, &user, 0);
        curl_url_get(url, CURLUPART_PASSWORD, &password, 0);
        if (user || password || (strncasecmp(text, "https:", 6) && !loopback(host))) {
            abort();
        }
    }
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *text = fuzz_text(pool, data, size);
    okey_cli_key_t *key = NULL;
    const char *jwe = NULL;
    int port = 0;

    if (!fuzz_pair) {
        okey_cli_keypair_new(fuzz_root, 2048, &fuzz_pair);
    }
    okey_cli_port_parse(pool, text, &port);
    okey_cli_key_parse(pool, text, &key);
    if (!okey_cli_key_parse(pool, okey_b64url_encode(pool, data, size), &key)) {
        okey_cli_seal(pool, key, "{}", &jwe);
    }
    okey_cli_open(pool, fuzz_pair, text);
    check_server_url(pool, text);
    apr_pool_destroy(pool);
    return 0;
}
