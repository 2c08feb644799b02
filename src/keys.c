/* Key issuance. */
#include "keys.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <string.h>

#define PROJECT_ID_MAX 256

struct okey_keys_t {
    const okey_config_t *cfg;
    okey_openai_t api;
    apr_thread_mutex_t *mutex;
    char project_id[PROJECT_ID_MAX]; /* empty until known */
};

const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires,
                           const char *email)
{
    return apr_psprintf(pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%s",
                        expires, okey_lower(pool, email));
}

int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email)
{
    apr_size_t prefix = strlen(OKEY_KEYS_NAME_PREFIX);
    int ok = strncmp(name, OKEY_KEYS_NAME_PREFIX, prefix) == 0;
    const char *digits = ok ? name + prefix : "";
    apr_size_t ndigits = strspn(digits, "0123456789");
    const char *address = digits + ndigits + (digits[ndigits] == '-');

    /* At most 12 digits keep the expiry far from overflow. */
    ok = ok && ndigits > 0 && ndigits <= 12 && digits[ndigits] == '-' &&
         address[0] != '@' && strchr(address, '@');
    *expires = ok ? (apr_int64_t)strtoll(digits, NULL, 10) : 0;
    *email = ok ? apr_pstrdup(pool, address) : NULL;
    return ok;
}

okey_keys_t *okey_keys_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http)
{
    okey_keys_t *keys = apr_pcalloc(pool, sizeof(*keys));

    keys->cfg = cfg;
    keys->api.http = http;
    keys->api.api_base = cfg->api_base;
    keys->api.management_key = cfg->management_key;
    apr_thread_mutex_create(&keys->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    return keys;
}

static const char *cached_project(okey_keys_t *keys, apr_pool_t *pool)
{
    const char *id;

    apr_thread_mutex_lock(keys->mutex);
    id = keys->project_id[0] ? apr_pstrdup(pool, keys->project_id) : NULL;
    apr_thread_mutex_unlock(keys->mutex);
    return id;
}

static void cache_project(okey_keys_t *keys, const char *id)
{
    apr_thread_mutex_lock(keys->mutex);
    apr_cpystrn(keys->project_id, id ? id : "", sizeof(keys->project_id));
    apr_thread_mutex_unlock(keys->mutex);
}

/* The project's id: cached, found by exact name, or created. */
static okey_err_t *project_id(okey_keys_t *keys, apr_pool_t *pool,
                              const char **id)
{
    okey_err_t *err = NULL;

    *id = cached_project(keys, pool);
    if (!*id) {
        err = okey_openai_find_project(&keys->api, pool, keys->cfg->project, id);
    }
    if (!err && !*id) {
        err = okey_openai_create_project(&keys->api, pool, keys->cfg->project, id);
    }
    if (!err && strlen(*id) < PROJECT_ID_MAX) {
        cache_project(keys, *id);
    }
    return err;
}

okey_err_t *okey_keys_issue(okey_keys_t *keys, apr_pool_t *pool,
                            const char *email, apr_int64_t now,
                            okey_issued_t **issued)
{
    okey_issued_t *made = apr_pcalloc(pool, sizeof(*made));
    okey_service_account_t *account = NULL;
    okey_err_t *err = project_id(keys, pool, &made->project_id);

    made->email = okey_lower(pool, email);
    made->project = keys->cfg->project;
    made->expires = now + keys->cfg->expiration;
    made->name = okey_keys_name(pool, made->expires, email);
    if (!err) {
        err = okey_openai_create_service_account(&keys->api, pool, made->project_id,
                                                 made->name, &account);
        if (err) {
            /* The project may have been archived: look it up again next time. */
            cache_project(keys, NULL);
        }
    }
    if (!err) {
        made->service_account_id = account->id;
        made->api_key = account->api_key;
    }
    *issued = err ? NULL : made;
    return err;
}
