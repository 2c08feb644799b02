/* HTTP client on libcurl: one easy handle per thread at a time, reused. */
#include "http.h"

#include <apr_strings.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RESPONSE_MAX (4 * 1024 * 1024)
#define USER_AGENT "mod_openaikey/" OKEY_VERSION

/* Idle handles kept for keep-alive; beyond this many they are closed. */
#define IDLE_MAX 64
/* Idle multi handles, each with the connections of its last batch. */
#define IDLE_MULTI_MAX 4

/* Request threads share it: after creation nothing here allocates from a
 * pool, since the pool it lives in belongs to no single thread. A batch's
 * connections stay open in its multi handle for the next batch: a reap
 * deletes a page at a time and reads pages one by one, and would otherwise
 * connect anew for each. */
struct okey_http_t {
    okey_idle_t *handles;   /* of CURL * */
    okey_idle_t *multis;    /* of CURLM * */
    okey_http_options_t opts;
};

typedef struct {
    apr_pool_t *pool;
    char *data;
    apr_size_t len;
    apr_size_t cap;
    int too_large;
    apr_int64_t retry_after;
    apr_int64_t max_age;
} sink_t;

void okey_http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_handle(void *curl)
{
    curl_easy_cleanup(curl);
}

static void free_multi(void *multi)
{
    curl_multi_cleanup(multi);
}

okey_http_t *okey_http_create(apr_pool_t *pool, const okey_http_options_t *opts)
{
    okey_http_t *http = apr_pcalloc(pool, sizeof(*http));

    http->handles = okey_idle_create(pool, IDLE_MAX, free_handle);
    http->multis = okey_idle_create(pool, IDLE_MULTI_MAX, free_multi);
    http->opts = *opts;
    http->opts.ca_file = opts->ca_file ? apr_pstrdup(pool, opts->ca_file) : NULL;
    return http;
}

static CURL *take_handle(okey_http_t *http)
{
    CURL *curl = okey_idle_take(http->handles);

    return curl ? curl : curl_easy_init();
}

static void give_back_handle(okey_http_t *http, CURL *curl)
{
    curl_easy_reset(curl);
    okey_idle_give_back(http->handles, curl);
}

static size_t on_body(char *chunk, size_t size, size_t count, void *data)
{
    sink_t *sink = data;
    apr_size_t len = size * count;

    if (sink->len + len > RESPONSE_MAX) {
        sink->too_large = 1;
        return 0;
    }
    if (sink->len + len + 1 > sink->cap) {
        apr_size_t cap = (sink->cap ? sink->cap * 2 : 4096);
        char *grown;

        while (cap < sink->len + len + 1) {
            cap *= 2;
        }
        grown = apr_palloc(sink->pool, cap);
        if (sink->len) {
            memcpy(grown, sink->data, sink->len);
        }
        sink->data = grown;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->len, chunk, len);
    sink->len += len;
    sink->data[sink->len] = '\0';
    return len;
}

/* Seconds after "name" in a header line (Retry-After: N, Cache-Control:
 * ...max-age=N...), or -1. */
static apr_int64_t header_seconds(apr_pool_t *pool, const char *line, apr_size_t len,
                                  const char *header, const char *name)
{
    apr_size_t header_len = strlen(header);
    char *value = len > header_len && !strncasecmp(line, header, header_len)
                  ? apr_pstrndup(pool, line + header_len, len - header_len) : NULL;
    char *at = value && name ? strstr(value, name) : value;
    char *end = NULL;
    long long seconds = at ? strtoll(at + (name ? strlen(name) : 0), &end, 10) : -1;

    return (at && end != at && seconds >= 0) ? (apr_int64_t)seconds : -1;
}

static size_t on_header(char *line, size_t size, size_t count, void *data)
{
    sink_t *sink = data;
    apr_size_t len = size * count;
    apr_int64_t seconds = header_seconds(sink->pool, line, len, "retry-after:", NULL);

    sink->retry_after = seconds >= 0 ? seconds : sink->retry_after;
    seconds = header_seconds(sink->pool, line, len, "cache-control:", "max-age=");
    sink->max_age = seconds >= 0 ? seconds : sink->max_age;
    return len;
}

static struct curl_slist *build_headers(const okey_http_request_t *req,
                                        apr_pool_t *pool)
{
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");

    if (req->authorization) {
        headers = curl_slist_append(
            headers, apr_pstrcat(pool, "Authorization: ", req->authorization, NULL));
    }
    if (req->content_type) {
        headers = curl_slist_append(
            headers, apr_pstrcat(pool, "Content-Type: ", req->content_type, NULL));
    }
    /* An empty Expect stops curl from waiting a second for 100-continue. */
    return curl_slist_append(headers, "Expect:");
}

static void set_options(CURL *curl, const okey_http_t *http,
                        const okey_http_request_t *req, sink_t *sink,
                        struct curl_slist *headers)
{
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, http->opts.timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, sink);
    if (http->opts.ca_file) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, http->opts.ca_file);
    }
    /* Plain http is only ever for this machine: a proxy from the
     * environment would read the Authorization header in the clear. */
    if (!strncmp(req->url, "http://", 7)) {
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    }
    if (req->body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
    /* libcurl sends a request again, unasked, when a kept-alive connection
     * it reused closes before any answer: a creation the server carried out
     * would then be made twice. A request on a new connection is never sent
     * again, so a POST pays for a handshake rather than risk that; its
     * connection is kept afterwards for the GETs and DELETEs that follow. */
    if (!strcmp(req->method, "POST")) {
        curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
    }
}

/* Only the scheme, host and path: query strings never reach a log. */
static const char *url_for_log(apr_pool_t *pool, const char *url)
{
    return apr_pstrndup(pool, url, strcspn(url, "?"));
}

static okey_err_t *perform_one(okey_http_t *http, apr_pool_t *pool,
                               const okey_http_request_t *req,
                               okey_http_response_t *resp);

static okey_err_t *outcome(okey_http_t *http, apr_pool_t *pool,
                           const okey_http_request_t *req, CURL *curl,
                           CURLcode rc, const sink_t *sink,
                           okey_http_response_t *resp)
{
    okey_err_t *err = NULL;
    long status = 0;

    memset(resp, 0, sizeof(*resp));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &resp->seconds);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        err = okey_err_make(pool, 504, "A service this server depends on did "
                            "not answer in time. Please try again later.",
                            "%s %s timed out after %ld s", req->method,
                            url_for_log(pool, req->url),
                            http->opts.timeout_seconds);
        err->no_answer = 1;
    }
    else if (rc != CURLE_OK) {
        err = okey_err_make(pool, 502, "A service this server depends on could "
                            "not be reached. Please try again later.",
                            "%s %s failed: %s%s", req->method,
                            url_for_log(pool, req->url),
                            rc == CURLE_ABORTED_BY_CALLBACK ? "cancelled"
                                                           : curl_easy_strerror(rc),
                            sink->too_large ? " (response too large)" : "");
        err->no_answer = 1;
    }
    else {
        resp->status = (int)status;
        resp->body = sink->data ? sink->data : "";
        resp->body_len = sink->len;
        resp->retry_after = sink->retry_after;
        resp->max_age = sink->max_age;
    }
    return err;
}

okey_err_t *okey_http_perform(okey_http_t *http, apr_pool_t *pool,
                              const okey_http_request_t *req,
                              okey_http_response_t *resp)
{
    okey_err_t *err = NULL;

    /* A cancellable request goes through the batch loop, which watches
     * the cancel flag between polls. */
    if (http->opts.cancel) {
        okey_http_perform_many(http, pool, req, 1, 1, resp, &err);
    }
    else {
        err = perform_one(http, pool, req, resp);
    }
    return err;
}

static okey_err_t *perform_one(okey_http_t *http, apr_pool_t *pool,
                               const okey_http_request_t *req,
                               okey_http_response_t *resp)
{
    sink_t sink = {pool, NULL, 0, 0, 0, -1, -1};
    struct curl_slist *headers = build_headers(req, pool);
    CURL *curl = take_handle(http);
    okey_err_t *err;
    CURLcode rc;

    set_options(curl, http, req, &sink, headers);
    rc = curl_easy_perform(curl);
    err = outcome(http, pool, req, curl, rc, &sink, resp);
    give_back_handle(http, curl);
    curl_slist_free_all(headers);
    return err;
}

/* One transfer of a batch. */
typedef struct {
    CURL *curl;
    struct curl_slist *headers;
    sink_t sink;
    int index;
} transfer_t;

static void start_transfer(okey_http_t *http, apr_pool_t *pool, CURLM *multi,
                           transfer_t *t, const okey_http_request_t *req,
                           int index)
{
    t->sink = (sink_t){pool, NULL, 0, 0, 0, -1, -1};
    t->headers = build_headers(req, pool);
    t->curl = take_handle(http);
    t->index = index;
    set_options(t->curl, http, req, &t->sink, t->headers);
    curl_easy_setopt(t->curl, CURLOPT_PRIVATE, t);
    curl_multi_add_handle(multi, t->curl);
}

static void finish_transfer(okey_http_t *http, apr_pool_t *pool, CURLM *multi,
                            transfer_t *t, CURLcode rc,
                            const okey_http_request_t *reqs,
                            okey_http_response_t *resps, okey_err_t **errs)
{
    errs[t->index] = outcome(http, pool, &reqs[t->index], t->curl, rc, &t->sink,
                             &resps[t->index]);
    curl_multi_remove_handle(multi, t->curl);
    give_back_handle(http, t->curl);
    curl_slist_free_all(t->headers);
    t->curl = NULL;
}

static CURLM *take_multi(okey_http_t *http)
{
    CURLM *multi = okey_idle_take(http->multis);

    return multi ? multi : curl_multi_init();
}

void okey_http_perform_many(okey_http_t *http, apr_pool_t *pool,
                            const okey_http_request_t *reqs, int n, int parallel,
                            okey_http_response_t *resps, okey_err_t **errs)
{
    CURLM *multi = take_multi(http);
    transfer_t *slots = apr_pcalloc(pool, sizeof(*slots) * (apr_size_t)parallel);
    int next = 0;
    int running = 0;
    int done = 0;
    int i;

    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)parallel);
    for (i = 0; i < parallel && next < n; i++) {
        start_transfer(http, pool, multi, &slots[i], &reqs[next], next);
        next++;
    }
    while (done < n) {
        CURLMsg *msg;
        int queued;

        /* Every cancellable request runs here: checked each poll. */
        for (i = 0; i < parallel && http->opts.cancel && *http->opts.cancel; i++) {
            if (slots[i].curl) {
                finish_transfer(http, pool, multi, &slots[i], CURLE_ABORTED_BY_CALLBACK,
                                reqs, resps, errs);
                done++;
            }
        }
        for (; next < n && http->opts.cancel && *http->opts.cancel; next++, done++) {
            errs[next] = okey_err_make(pool, 502, NULL, "%s %s failed: cancelled",
                                       reqs[next].method, url_for_log(pool, reqs[next].url));
        }
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &queued))) {
            transfer_t *t = NULL;

            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            finish_transfer(http, pool, multi, t, msg->data.result, reqs, resps, errs);
            done++;
            if (next < n) {
                start_transfer(http, pool, multi, t, &reqs[next], next);
                next++;
            }
        }
        if (done < n) {
            curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
    }
    okey_idle_give_back(http->multis, multi);
}
