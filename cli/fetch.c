/* Requests to the key server: the check before a browser sign-in, and
 * openaikey-issue. Redirects are not followed; bodies are bounded. */
#include "openaikey.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <string.h>

#define BODY_MAX 65536
#define FETCH_SECONDS 30L

typedef struct {
    char *data;
    apr_size_t len;
    int too_long;
} body_t;

static size_t take_body(char *data, size_t size, size_t count, void *baton)
{
    body_t *body = baton;
    size_t len = size * count;

    if (body->len + len > BODY_MAX) {
        body->too_long = 1;
        len = 0; /* makes curl stop */
    }
    else {
        memcpy(body->data + body->len, data, len);
        body->len += len;
        body->data[body->len] = '\0';
    }
    return len;
}

const char *openaikey_fetch(apr_pool_t *pool, const openaikey_fetch_t *req,
                            int *status, const char **body_text)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    body_t body = {apr_palloc(pool, BODY_MAX + 1), 0, 0};
    char error[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_FAILED_INIT;
    long code = 0;
    const char *why = NULL;

    body.data[0] = '\0';
    headers = curl_slist_append(headers, "Accept: application/json");
    if (req->body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    if (curl && headers) {
        curl_easy_setopt(curl, CURLOPT_URL, req->url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, FETCH_SECONDS);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, take_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "openaikey/" OKEY_VERSION);
        if (req->body) {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        }
        if (req->user) {
            curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(curl, CURLOPT_USERNAME, req->user);
            curl_easy_setopt(curl, CURLOPT_PASSWORD, req->password ? req->password : "");
        }
        else if (req->negotiate) {
            curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_NEGOTIATE);
            curl_easy_setopt(curl, CURLOPT_USERPWD, ":");
        }
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    }
    if (body.too_long) {
        why = "the server's answer is too long";
    }
    else if (rc != CURLE_OK) {
        why = apr_pstrdup(pool, *error ? error : curl_easy_strerror(rc));
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    *status = why ? 0 : (int)code;
    *body_text = body.data;
    return why;
}
