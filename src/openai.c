/* OpenAI Admin API client. */
#include "openai.h"

#include <apr_strings.h>
#include <string.h>

static const char KEY_FAILED[] =
    "The key could not be created. Please try again later.";

static okey_err_t *malformed(apr_pool_t *pool, const char *what)
{
    return okey_err_make(pool, 502, KEY_FAILED,
                         "OpenAI answered a malformed %s", what);
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
    return json_is_array(data) ? NULL : malformed(pool, "list");
}

static int project_active(const json_t *project)
{
    const char *status = okey_json_str(project, "status");
    const json_t *archived = json_object_get(project, "archived_at");

    return (!status || !strcmp(status, "active")) &&
           (!archived || json_is_null(archived));
}

const char *okey_openai_page_find_project(const okey_openai_page_t *page,
                                          const char *name)
{
    const char *found = NULL;
    const json_t *project;
    size_t i;

    json_array_foreach(page->data, i, project) {
        const char *project_name = okey_json_str(project, "name");

        if (!found && project_name && !strcmp(project_name, name) &&
            project_active(project)) {
            found = okey_json_str(project, "id");
        }
    }
    return found;
}

okey_err_t *okey_openai_service_account_parse(apr_pool_t *pool, const char *text,
                                              apr_size_t len,
                                              okey_service_account_t **account)
{
    json_t *doc = okey_json_parse(pool, text, len, NULL);
    const json_t *created = json_object_get(doc, "created_at");
    okey_service_account_t *made = apr_pcalloc(pool, sizeof(*made));

    made->id = okey_json_str(doc, "id");
    made->name = okey_json_str(doc, "name");
    made->created_at = json_is_integer(created) ? json_integer_value(created) : 0;
    made->api_key = okey_json_str(json_object_get(doc, "api_key"), "value");
    *account = made->id ? made : NULL;
    return made->id ? NULL : malformed(pool, "service account");
}

okey_err_t *okey_openai_status_error(apr_pool_t *pool, const char *what,
                                     const okey_http_response_t *resp)
{
    json_t *doc = okey_json_parse(pool, resp->body, resp->body_len, NULL);
    const char *message = okey_json_str(json_object_get(doc, "error"), "message");

    return okey_err_make(pool, 502, KEY_FAILED, "OpenAI %s answered %d%s%s%s%s",
                         what, resp->status, message ? ": " : "",
                         message ? message : "",
                         resp->status == 401 ? " (check OpenAIKeyManagementKey)" : "",
                         resp->status == 400 ? " (is the project archived?)" : "");
}

static okey_err_t *call(const okey_openai_t *api, apr_pool_t *pool,
                        const char *method, const char *path, const json_t *body,
                        const char *what, okey_http_response_t *resp)
{
    okey_http_request_t req;
    okey_err_t *err;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = apr_pstrcat(pool, api->api_base, path, NULL);
    req.authorization = apr_pstrcat(pool, "Bearer ", api->management_key, NULL);
    if (body) {
        req.content_type = "application/json";
        req.body = okey_json_dump(pool, body);
        req.body_len = strlen(req.body);
    }
    err = okey_http_perform(api->http, pool, &req, resp);
    if (!err && (resp->status < 200 || resp->status > 299)) {
        err = okey_openai_status_error(pool, what, resp);
    }
    return err;
}

okey_err_t *okey_openai_find_project(const okey_openai_t *api, apr_pool_t *pool,
                                     const char *name, const char **project_id)
{
    const char *after = NULL;
    okey_openai_page_t page = {NULL, NULL, 1};
    okey_http_response_t resp;
    okey_err_t *err = NULL;

    *project_id = NULL;
    while (!err && !*project_id && page.has_more) {
        const char *path = apr_psprintf(
            pool, "/organization/projects?limit=%d%s%s", OKEY_OPENAI_PAGE_LIMIT,
            after ? "&after=" : "", after ? okey_form_escape(pool, after) : "");

        err = call(api, pool, "GET", path, NULL, "project list", &resp);
        if (!err) {
            err = okey_openai_page_parse(pool, resp.body, resp.body_len, &page);
        }
        if (!err) {
            *project_id = okey_openai_page_find_project(&page, name);
            after = page.last_id;
            page.has_more = page.has_more && after;
        }
    }
    *project_id = *project_id ? apr_pstrdup(pool, *project_id) : NULL;
    return err;
}

okey_err_t *okey_openai_create_project(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *name, const char **project_id)
{
    json_t *body = okey_json_own(pool, json_pack("{s:s}", "name", name));
    okey_http_response_t resp;
    json_t *doc = NULL;
    okey_err_t *err = call(api, pool, "POST", "/organization/projects", body,
                           "project creation", &resp);

    *project_id = NULL;
    if (!err) {
        doc = okey_json_parse(pool, resp.body, resp.body_len, NULL);
        *project_id = okey_json_str(doc, "id");
        err = *project_id ? NULL : malformed(pool, "project");
    }
    return err;
}

okey_err_t *okey_openai_create_service_account(const okey_openai_t *api,
                                               apr_pool_t *pool,
                                               const char *project_id,
                                               const char *name,
                                               okey_service_account_t **account)
{
    json_t *body = okey_json_own(pool, json_pack("{s:s}", "name", name));
    const char *path = apr_pstrcat(pool, "/organization/projects/",
                                   okey_form_escape(pool, project_id),
                                   "/service_accounts", NULL);
    okey_http_response_t resp;
    okey_err_t *err = call(api, pool, "POST", path, body,
                           "service account creation", &resp);

    *account = NULL;
    if (!err) {
        err = okey_openai_service_account_parse(pool, resp.body, resp.body_len,
                                                account);
    }
    if (!err && !(*account)->api_key) {
        err = malformed(pool, "service account without api_key");
        *account = NULL;
    }
    return err;
}
