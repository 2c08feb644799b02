/* OpenAI Admin API client. */
#include "openai.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

static const char KEY_FAILED[] =
    "The key could not be created. Please try again later.";

static okey_err_t *malformed(apr_pool_t *pool, okey_endpoint_e endpoint,
                             const char *what)
{
    okey_err_t *err = okey_err_make(pool, 502, KEY_FAILED,
                                    "OpenAI answered a malformed %s", what);

    err->endpoint = endpoint;
    return err;
}

okey_err_t *okey_openai_page_parse(apr_pool_t *pool, const char *text,
                                   apr_size_t len, okey_openai_page_t *page)
{
    json_t *doc = okey_json_parse(pool, text, len, NULL);
    const json_t *data = json_object_get(doc, "data");

    memset(page, 0, sizeof(*page));
    page->data = data;
    page->last_id = okey_json_str(doc, "last_id");
    page->has_more = json_is_true(json_object_get(doc, "has_more"));
    return json_is_array(data) ? NULL
                               : malformed(pool, OKEY_ENDPOINT_NONE, "list");
}

static int project_active(const json_t *project)
{
    const char *status = okey_json_str(project, "status");
    const json_t *archived = json_object_get(project, "archived_at");

    return (!status || !strcmp(status, "active")) &&
           (!archived || json_is_null(archived));
}

static apr_int64_t created_at(const json_t *object)
{
    const json_t *created = json_object_get(object, "created_at");

    return json_is_integer(created) ? (apr_int64_t)json_integer_value(created) : 0;
}

static int older(const okey_openai_project_t *a, const okey_openai_project_t *b)
{
    return a->created_at != b->created_at ? a->created_at < b->created_at
                                          : strcmp(a->id, b->id) < 0;
}

void okey_openai_note_project(apr_pool_t *pool, const json_t *project,
                              const char *name, apr_array_header_t *found)
{
    const char *project_name = okey_json_str(project, "name");
    const char *id = okey_json_str(project, "id");

    if (id && project_name && !strcmp(project_name, name) && project_active(project)) {
        okey_openai_project_t *noted = apr_array_push(found);

        noted->id = apr_pstrdup(pool, id);
        noted->created_at = created_at(project);
    }
}

static int compare_projects(const void *a, const void *b)
{
    return older(a, b) ? -1 : (older(b, a) ? 1 : 0);
}

apr_array_header_t *okey_openai_oldest_first(apr_pool_t *pool,
                                             apr_array_header_t *found)
{
    apr_array_header_t *ids = apr_array_make(pool, found->nelts, sizeof(const char *));
    int i;

    qsort(found->elts, (size_t)found->nelts, sizeof(okey_openai_project_t),
          compare_projects);
    for (i = 0; i < found->nelts; i++) {
        APR_ARRAY_PUSH(ids, const char *) = APR_ARRAY_IDX(found, i, okey_openai_project_t).id;
    }
    return ids;
}

okey_err_t *okey_openai_service_account_parse(apr_pool_t *pool, const char *text,
                                              apr_size_t len,
                                              okey_service_account_t **account)
{
    json_t *doc = okey_json_parse(pool, text, len, NULL);
    okey_service_account_t *made = apr_pcalloc(pool, sizeof(*made));

    made->id = okey_json_str(doc, "id");
    made->name = okey_json_str(doc, "name");
    made->created_at = created_at(doc);
    made->api_key = okey_json_str(json_object_get(doc, "api_key"), "value");
    made->api_key_id = okey_json_str(json_object_get(doc, "api_key"), "id");
    *account = made->id ? made : NULL;
    return made->id ? NULL
                    : malformed(pool, OKEY_ENDPOINT_SERVICE_ACCOUNTS, "service account");
}

okey_err_t *okey_openai_status_error(apr_pool_t *pool, const char *what,
                                     okey_endpoint_e endpoint,
                                     const okey_http_response_t *resp)
{
    json_t *doc = okey_json_parse(pool, resp->body, resp->body_len, NULL);
    const char *message = okey_json_str(json_object_get(doc, "error"), "message");
    okey_err_t *err;

    /* An upstream message may echo a key or a token: only its scrubbed,
     * bounded form goes on. */
    message = message ? okey_scrub(pool, apr_pstrndup(pool, message, 200)) : NULL;
    err = okey_err_make(pool, 502, KEY_FAILED, "OpenAI %s answered %d%s%s%s",
                        what, resp->status, message ? ": " : "",
                        message ? message : "",
                        resp->status == 401 ? " (check OpenAIKeyManagementKey)" : "");
    err->endpoint = endpoint;
    err->upstream_status = resp->status;
    if (resp->status == 429) {
        /* Busy, not broken: the person is told when to come back. */
        err->retry_after = resp->retry_after > 0
                           ? (resp->retry_after > OKEY_OPENAI_RETRY_AFTER_MAX
                              ? OKEY_OPENAI_RETRY_AFTER_MAX : resp->retry_after)
                           : 60;
        err->status = 503;
        err->user_msg = apr_psprintf(pool, "OpenAI is busy at the moment and asked us "
                                     "to wait. Please try again in %" APR_INT64_T_FMT
                                     " seconds.", err->retry_after);
    }
    return err;
}

static void prepare(const okey_openai_t *api, apr_pool_t *pool, const char *method,
                    const char *path, const char *body, okey_http_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->url = apr_pstrcat(pool, api->api_base, path, NULL);
    req->authorization = apr_pstrcat(pool, "Bearer ", api->management_key, NULL);
    if (body) {
        req->content_type = "application/json";
        req->body = body;
        req->body_len = strlen(body);
    }
}

/* Whether an answer is a 429 short enough to wait out within a request. */
static int short_rate_limit(const okey_http_response_t *resp)
{
    return resp->status == 429 && resp->retry_after >= 0 &&
           resp->retry_after <= OKEY_OPENAI_SHORT_RETRY;
}

/* body is JSON text, or NULL for none. */
static okey_err_t *call(const okey_openai_t *api, apr_pool_t *pool,
                        const char *method, const char *path, const char *body,
                        okey_endpoint_e endpoint, const char *what,
                        okey_http_response_t *resp)
{
    okey_http_request_t req;
    okey_err_t *err;

    prepare(api, pool, method, path, body, &req);
    err = okey_http_perform(api->http, pool, &req, resp);
    /* A 429 means nothing was done: asking once more is safe. */
    if (!err && short_rate_limit(resp) && !(api->cancel && *api->cancel)) {
        apr_sleep(apr_time_from_sec(resp->retry_after));
        err = okey_http_perform(api->http, pool, &req, resp);
    }
    if (err) {
        err->endpoint = endpoint;
    }
    else if (resp->status < 200 || resp->status > 299) {
        err = okey_openai_status_error(pool, what, endpoint, resp);
    }
    return err;
}

/* A POST of {"name": name} to path; refused before anything is sent when
 * name is not UTF-8, which JSON cannot carry. */
static okey_err_t *create(const okey_openai_t *api, apr_pool_t *pool, const char *path,
                          const char *name, okey_endpoint_e endpoint, const char *what,
                          okey_http_response_t *resp)
{
    const char *quoted = okey_json_quote(pool, name);
    okey_err_t *err = NULL;

    if (quoted) {
        err = call(api, pool, "POST", path, apr_pstrcat(pool, "{\"name\":", quoted, "}", NULL),
                   endpoint, what, resp);
    }
    else {
        err = okey_err_make(pool, 500, KEY_FAILED, "OpenAI %s: the name is not UTF-8", what);
        err->endpoint = endpoint;
    }
    return err;
}

/* --- paging --------------------------------------------------------------- */

struct okey_openai_pager_t {
    const okey_openai_t *api;
    apr_pool_t *pool;       /* the walk's: cursors seen */
    apr_pool_t *page_pool;  /* the current page's */
    const char *path;
    okey_endpoint_e endpoint;
    const char *what;
    const char *after;      /* in pool */
    apr_hash_t *seen;       /* cursors already followed */
    int pages;
    int done;
    okey_openai_page_t page;
};

okey_openai_pager_t *okey_openai_pager(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *path, okey_endpoint_e endpoint,
                                       const char *what)
{
    okey_openai_pager_t *pager = apr_pcalloc(pool, sizeof(*pager));

    pager->api = api;
    pager->pool = pool;
    apr_pool_create(&pager->page_pool, pool);
    pager->path = path;
    pager->endpoint = endpoint;
    pager->what = what;
    pager->seen = apr_hash_make(pool);
    return pager;
}

int okey_openai_page_loops(const okey_openai_page_t *page, int pages,
                           apr_hash_t *seen_cursors, const char **why)
{
    *why = !page->has_more ? NULL
           : (!page->last_id || !*page->last_id) ? "has_more without a last_id"
           : json_array_size(page->data) == 0 ? "an empty page with has_more"
           : apr_hash_get(seen_cursors, page->last_id, APR_HASH_KEY_STRING)
             ? "the same last_id twice"
           : pages >= OKEY_OPENAI_PAGE_MAX ? "more pages than the limit" : NULL;
    return *why != NULL;
}

static okey_err_t *paging_error(okey_openai_pager_t *pager, const char *why)
{
    okey_err_t *err = okey_err_make(pager->pool, 502, KEY_FAILED,
                                    "OpenAI %s: stopped paging after %d pages: %s",
                                    pager->what, pager->pages, why);

    err->endpoint = pager->endpoint;
    return err;
}

/* Fetches and checks the page after pager->after into pager->page. */
static okey_err_t *fetch_page(okey_openai_pager_t *pager)
{
    apr_pool_t *pool = pager->page_pool;
    okey_http_response_t resp;
    okey_err_t *err = NULL;
    const char *why = NULL;

    if (pager->api->cancel && *pager->api->cancel) {
        err = paging_error(pager, "cancelled");
    }
    if (!err) {
        const char *path = apr_psprintf(
            pool, "%s%slimit=%d%s%s", pager->path, strchr(pager->path, '?') ? "&" : "?",
            OKEY_OPENAI_PAGE_LIMIT, pager->after ? "&after=" : "",
            pager->after ? okey_form_escape(pool, pager->after) : "");

        err = call(pager->api, pool, "GET", path, NULL, pager->endpoint, pager->what,
                   &resp);
    }
    if (!err) {
        err = okey_openai_page_parse(pool, resp.body, resp.body_len, &pager->page);
        if (err) {
            err->endpoint = pager->endpoint;
        }
    }
    if (!err) {
        pager->pages++;
        if (okey_openai_page_loops(&pager->page, pager->pages, pager->seen, &why)) {
            err = paging_error(pager, why);
        }
    }
    return err;
}

okey_err_t *okey_openai_pager_next(okey_openai_pager_t *pager,
                                   const okey_openai_page_t **page)
{
    okey_err_t *err = NULL;

    *page = NULL;
    apr_pool_clear(pager->page_pool);
    if (!pager->done) {
        err = fetch_page(pager);
        pager->done = err || !pager->page.has_more;
        pager->after = pager->done ? NULL : apr_pstrdup(pager->pool, pager->page.last_id);
        if (pager->after) {
            apr_hash_set(pager->seen, pager->after, APR_HASH_KEY_STRING, "");
        }
        *page = err ? NULL : &pager->page;
    }
    return err;
}

/* --- buckets of usage and costs ------------------------------------------- */

typedef struct {
    const okey_openai_t *api;
    apr_pool_t *page_pool;
    const char *path;
    const char *what;
    apr_hash_t *seen;   /* next_page cursors had */
    int pages;
} bucket_walk_t;

/* Visits every result of one page; sets *next to its cursor, or NULL. */
static okey_err_t *visit_buckets(bucket_walk_t *walk, const json_t *doc,
                                 okey_openai_bucket_fn *visit, void *baton,
                                 const char **next)
{
    const json_t *data = json_object_get(doc, "data");
    const json_t *bucket;
    const char *why = NULL;
    size_t i;

    *next = json_is_true(json_object_get(doc, "has_more")) ? okey_json_str(doc, "next_page")
                                                          : NULL;
    why = !json_is_array(data) ? "no data"
          : json_is_true(json_object_get(doc, "has_more")) && (!*next || !**next)
            ? "has_more without a next_page"
          : *next && apr_hash_get(walk->seen, *next, APR_HASH_KEY_STRING)
            ? "the same next_page twice"
          : *next && walk->pages >= OKEY_OPENAI_PAGE_MAX ? "more pages than the limit" : NULL;
    json_array_foreach(why ? NULL : data, i, bucket) {
        const json_t *results = json_object_get(bucket, "results");
        const json_t *start = json_object_get(bucket, "start_time");
        const json_t *result;
        size_t j;

        json_array_foreach(json_is_integer(start) ? results : NULL, j, result) {
            if (json_is_object(result)) {
                visit(baton, json_integer_value(start), result);
            }
        }
    }
    if (*next) {
        *next = apr_pstrdup(apr_hash_pool_get(walk->seen), *next);
        apr_hash_set(walk->seen, *next, APR_HASH_KEY_STRING, "");
    }
    return why ? okey_err_make(walk->page_pool, 502, KEY_FAILED, "OpenAI %s: stopped after "
                               "%d pages: %s", walk->what, walk->pages, why)
               : NULL;
}

okey_err_t *okey_openai_buckets(const okey_openai_t *api, apr_pool_t *pool, const char *path,
                                const char *what, okey_openai_bucket_fn *visit, void *baton)
{
    bucket_walk_t walk = {api, NULL, path, what, apr_hash_make(pool), 0};
    const char *next = NULL;
    okey_err_t *err = NULL;

    apr_pool_create(&walk.page_pool, pool);
    do {
        okey_http_response_t resp;
        json_t *doc = NULL;

        apr_pool_clear(walk.page_pool);
        err = api->cancel && *api->cancel
              ? okey_err_make(pool, 502, KEY_FAILED, "OpenAI %s: cancelled", what) : NULL;
        if (!err) {
            err = call(api, walk.page_pool, "GET",
                       next ? apr_pstrcat(walk.page_pool, path, "&page=",
                                          okey_form_escape(walk.page_pool, next), NULL)
                            : path, NULL, OKEY_ENDPOINT_USAGE, what, &resp);
        }
        if (!err) {
            walk.pages++;
            doc = okey_json_parse(walk.page_pool, resp.body, resp.body_len, NULL);
            err = json_is_object(doc) ? visit_buckets(&walk, doc, visit, baton, &next)
                                      : malformed(pool, OKEY_ENDPOINT_USAGE, what);
        }
        if (err) {
            /* Out of the page's pool, which goes with the walk. */
            err = apr_pmemdup(pool, err, sizeof(*err));
            err->user_msg = apr_pstrdup(pool, err->user_msg);
            err->log_msg = apr_pstrdup(pool, err->log_msg);
            err->endpoint = OKEY_ENDPOINT_USAGE;
            next = NULL;
        }
    } while (next);
    apr_pool_destroy(walk.page_pool);
    return err;
}

/* --- projects --------------------------------------------------------------- */

okey_err_t *okey_openai_each(const okey_openai_t *api, apr_pool_t *pool,
                             const char *path, okey_endpoint_e endpoint,
                             const char *what, okey_openai_visit_fn *visit,
                             void *baton)
{
    okey_openai_pager_t *pager = okey_openai_pager(api, pool, path, endpoint, what);
    const okey_openai_page_t *page = NULL;
    okey_err_t *err;

    do {
        const json_t *item;
        size_t i;

        err = okey_openai_pager_next(pager, &page);
        json_array_foreach(page ? page->data : NULL, i, item) {
            visit(baton, item);
        }
    } while (!err && page);
    return err;
}

typedef struct {
    apr_pool_t *pool;
    const char *name;
    apr_array_header_t *found; /* of okey_openai_project_t */
} project_search_t;

static void collect_project(void *baton, const json_t *project)
{
    project_search_t *search = baton;

    okey_openai_note_project(search->pool, project, search->name, search->found);
}

okey_err_t *okey_openai_find_projects(const okey_openai_t *api, apr_pool_t *pool,
                                      const char *name,
                                      apr_array_header_t **project_ids)
{
    project_search_t search = {pool, name,
                               apr_array_make(pool, 2, sizeof(okey_openai_project_t))};
    okey_err_t *err = okey_openai_each(api, pool, "/organization/projects",
                                       OKEY_ENDPOINT_PROJECTS, "project list",
                                       collect_project, &search);

    *project_ids = err ? apr_array_make(pool, 1, sizeof(const char *))
                       : okey_openai_oldest_first(pool, search.found);
    return err;
}

okey_err_t *okey_openai_create_project(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *name, const char **project_id)
{
    okey_http_response_t resp;
    json_t *doc = NULL;
    okey_err_t *err = create(api, pool, "/organization/projects", name,
                             OKEY_ENDPOINT_PROJECTS, "project creation", &resp);

    *project_id = NULL;
    if (!err) {
        doc = okey_json_parse(pool, resp.body, resp.body_len, NULL);
        *project_id = okey_json_str(doc, "id");
        err = *project_id ? NULL : malformed(pool, OKEY_ENDPOINT_PROJECTS, "project");
    }
    return err;
}

/* --- service accounts -------------------------------------------------------- */

const char *okey_openai_accounts_path(apr_pool_t *pool, const char *project_id)
{
    return apr_pstrcat(pool, "/organization/projects/",
                       okey_form_escape(pool, project_id), "/service_accounts", NULL);
}

okey_err_t *okey_openai_create_service_account(const okey_openai_t *api,
                                               apr_pool_t *pool,
                                               const char *project_id,
                                               const char *name,
                                               okey_service_account_t **account)
{
    okey_http_response_t resp;
    okey_err_t *err = create(api, pool, okey_openai_accounts_path(pool, project_id), name,
                             OKEY_ENDPOINT_SERVICE_ACCOUNTS, "service account creation",
                             &resp);

    *account = NULL;
    if (!err) {
        err = okey_openai_service_account_answer(pool, &resp, account);
    }
    return err;
}

okey_err_t *okey_openai_service_account_answer(apr_pool_t *pool,
                                               const okey_http_response_t *resp,
                                               okey_service_account_t **account)
{
    okey_err_t *err = okey_openai_service_account_parse(pool, resp->body, resp->body_len,
                                                        account);

    if (!err && !(*account)->api_key) {
        err = malformed(pool, OKEY_ENDPOINT_SERVICE_ACCOUNTS,
                        "service account without api_key");
        *account = NULL;
    }
    /* An answer that cannot be read is an answer all the same: the account
     * may have been made. */
    if (err) {
        err->upstream_status = resp->status;
    }
    return err;
}

int okey_openai_creation_unclear(const okey_err_t *err)
{
    int status = err->upstream_status;
    /* A 4xx refuses the request before anything is made, but for a timeout
     * waiting for it (408) and a conflict (409), which may be with what an
     * earlier attempt made. */
    int refused = status >= 400 && status < 500 && status != 408 && status != 409;

    return err->no_answer || (status && !refused);
}

void okey_openai_delete_accounts(const okey_openai_t *api, apr_pool_t *pool,
                                 const char *project_id, const char *const *ids,
                                 int n, int parallel, okey_openai_deleted_t *results)
{
    okey_http_request_t *reqs = apr_pcalloc(pool, sizeof(*reqs) * (apr_size_t)(n + 1));
    okey_http_response_t *resps = apr_pcalloc(pool, sizeof(*resps) * (apr_size_t)(n + 1));
    okey_err_t **errs = apr_pcalloc(pool, sizeof(*errs) * (apr_size_t)(n + 1));
    const char *base = okey_openai_accounts_path(pool, project_id);
    int i;

    for (i = 0; i < n; i++) {
        prepare(api, pool, "DELETE",
                apr_pstrcat(pool, base, "/", okey_form_escape(pool, ids[i]), NULL),
                NULL, &reqs[i]);
    }
    okey_http_perform_many(api->http, pool, reqs, n, parallel, resps, errs);
    for (i = 0; i < n; i++) {
        results[i].status = errs[i] ? 0 : resps[i].status;
        results[i].retry_after = errs[i] ? -1 : resps[i].retry_after;
        results[i].error =
            errs[i] ? errs[i]->log_msg
            : ((resps[i].status >= 200 && resps[i].status < 300)
                   ? NULL
                   : okey_openai_status_error(pool, "delete",
                                              OKEY_ENDPOINT_SERVICE_ACCOUNTS,
                                              &resps[i])->log_msg);
    }
}

/* --- Admin API keys -------------------------------------------------------- */

#define ADMIN_KEYS_PATH "/organization/admin_api_keys"
#define REDACTION_MARK "..."

int okey_openai_redaction_matches(const char *redacted_value, const char *value)
{
    const char *mark = redacted_value ? strstr(redacted_value, REDACTION_MARK) : NULL;
    apr_size_t head = mark ? (apr_size_t)(mark - redacted_value) : 0;
    const char *tail = mark ? mark + strlen(REDACTION_MARK) : NULL;
    apr_size_t tail_len = tail ? strlen(tail) : 0;
    apr_size_t len = value ? strlen(value) : 0;

    return mark && head > 0 && tail_len > 0 && head + tail_len < len &&
           !strncmp(value, redacted_value, head) && !strcmp(value + len - tail_len, tail);
}

/* A copy in pool of the string member name of object, or NULL. */
static const char *str_copy(apr_pool_t *pool, const json_t *object, const char *name)
{
    const char *text = okey_json_str(object, name);

    return text ? apr_pstrdup(pool, text) : NULL;
}

okey_openai_admin_key_t *okey_openai_admin_key_parse(apr_pool_t *pool, const json_t *object)
{
    const json_t *expires = json_object_get(object, "expires_at");
    okey_openai_admin_key_t *key = apr_pcalloc(pool, sizeof(*key));

    key->id = str_copy(pool, object, "id");
    key->name = str_copy(pool, object, "name");
    key->redacted_value = str_copy(pool, object, "redacted_value");
    key->value = str_copy(pool, object, "value");
    key->created_at = created_at(object);
    key->expires_at = json_is_integer(expires) ? (apr_int64_t)json_integer_value(expires) : 0;
    return key->id && *key->id ? key : NULL;
}

typedef struct {
    apr_pool_t *pool;
    apr_array_header_t *keys; /* of okey_openai_admin_key_t */
} admin_key_list_t;

static void collect_admin_key(void *baton, const json_t *object)
{
    admin_key_list_t *list = baton;
    okey_openai_admin_key_t *key = okey_openai_admin_key_parse(list->pool, object);

    if (key) {
        APR_ARRAY_PUSH(list->keys, okey_openai_admin_key_t) = *key;
    }
}

okey_err_t *okey_openai_admin_keys(const okey_openai_t *api, apr_pool_t *pool,
                                   apr_array_header_t **keys)
{
    admin_key_list_t list = {pool, apr_array_make(pool, 4, sizeof(okey_openai_admin_key_t))};
    okey_err_t *err = okey_openai_each(api, pool, ADMIN_KEYS_PATH, OKEY_ENDPOINT_NONE,
                                       "Admin key list", collect_admin_key, &list);

    *keys = list.keys;
    return err;
}

/* The Admin key a 2xx answer describes; what must be in it, else an error. */
static okey_err_t *admin_key_answer(apr_pool_t *pool, const okey_http_response_t *resp,
                                    int with_value, okey_openai_admin_key_t **key)
{
    json_t *doc = okey_json_parse(pool, resp->body, resp->body_len, NULL);

    *key = okey_openai_admin_key_parse(pool, doc);
    if (*key && with_value && !((*key)->value && *(*key)->value)) {
        *key = NULL;
    }
    return *key ? NULL : malformed(pool, OKEY_ENDPOINT_NONE, "Admin key");
}

okey_err_t *okey_openai_create_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                         const char *name, apr_int64_t expires_in,
                                         okey_openai_admin_key_t **key)
{
    json_t *body = okey_json_own(pool, json_object());
    okey_http_response_t resp;
    okey_err_t *err = NULL;

    *key = NULL;
    json_object_set_new(body, "name", json_string(name));
    if (expires_in > 0) {
        json_object_set_new(body, "expires_in_seconds", json_integer(expires_in));
    }
    if (!json_is_string(json_object_get(body, "name"))) {
        err = okey_err_make(pool, 500, KEY_FAILED, "OpenAI Admin key creation: the name "
                            "is not UTF-8");
    }
    if (!err) {
        err = call(api, pool, "POST", ADMIN_KEYS_PATH, okey_json_dump(pool, body),
                   OKEY_ENDPOINT_NONE, "Admin key creation", &resp);
    }
    return err ? err : admin_key_answer(pool, &resp, 1, key);
}

static const char *admin_key_path(apr_pool_t *pool, const char *id)
{
    return apr_pstrcat(pool, ADMIN_KEYS_PATH "/", okey_form_escape(pool, id), NULL);
}

okey_err_t *okey_openai_read_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *id, okey_openai_admin_key_t **key)
{
    okey_http_response_t resp;
    okey_err_t *err = call(api, pool, "GET", admin_key_path(pool, id), NULL,
                           OKEY_ENDPOINT_NONE, "Admin key read", &resp);

    *key = NULL;
    if (!err) {
        err = admin_key_answer(pool, &resp, 0, key);
    }
    if (!err && strcmp((*key)->id, id)) {
        err = malformed(pool, OKEY_ENDPOINT_NONE, "Admin key (another id)");
        *key = NULL;
    }
    return err;
}

okey_err_t *okey_openai_delete_admin_key(const okey_openai_t *api, apr_pool_t *pool,
                                         const char *id)
{
    okey_http_response_t resp;
    okey_err_t *err = call(api, pool, "DELETE", admin_key_path(pool, id), NULL,
                           OKEY_ENDPOINT_NONE, "Admin key deletion", &resp);
    json_t *doc = err ? NULL : okey_json_parse(pool, resp.body, resp.body_len, NULL);

    if (!err && !json_is_true(json_object_get(doc, "deleted"))) {
        err = malformed(pool, OKEY_ENDPOINT_NONE, "Admin key deletion");
    }
    return err;
}
