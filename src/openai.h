/* The parts of the OpenAI Admin API this module uses: projects and project
 * service accounts. */
#ifndef OKEY_OPENAI_H
#define OKEY_OPENAI_H

#include "http.h"

#define OKEY_OPENAI_PAGE_LIMIT 100

typedef struct okey_openai_t {
    okey_http_t *http;
    const char *api_base;       /* without trailing slash */
    const char *management_key;
} okey_openai_t;

typedef struct okey_openai_page_t {
    const json_t *data;         /* array of objects */
    const char *last_id;        /* NULL when absent or null */
    int has_more;
} okey_openai_page_t;

typedef struct okey_service_account_t {
    const char *id;
    const char *name;
    apr_int64_t created_at;
    const char *api_key;        /* only when just created */
} okey_service_account_t;

/* Parses one page of a list answer. */
okey_err_t *okey_openai_page_parse(apr_pool_t *pool, const char *text,
                                   apr_size_t len, okey_openai_page_t *page);

/* The id of the active project named name in a page, or NULL. */
const char *okey_openai_page_find_project(const okey_openai_page_t *page,
                                          const char *name);

okey_err_t *okey_openai_service_account_parse(apr_pool_t *pool, const char *text,
                                              apr_size_t len,
                                              okey_service_account_t **account);

/* The id of the active project named name, NULL when none exists. */
okey_err_t *okey_openai_find_project(const okey_openai_t *api, apr_pool_t *pool,
                                     const char *name, const char **project_id);

okey_err_t *okey_openai_create_project(const okey_openai_t *api, apr_pool_t *pool,
                                       const char *name, const char **project_id);

okey_err_t *okey_openai_create_service_account(const okey_openai_t *api,
                                               apr_pool_t *pool,
                                               const char *project_id,
                                               const char *name,
                                               okey_service_account_t **account);

/* The error for an answer other than 2xx: its status and OpenAI's message. */
okey_err_t *okey_openai_status_error(apr_pool_t *pool, const char *what,
                                     const okey_http_response_t *resp);

#endif
