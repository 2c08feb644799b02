/* Key issuance. */
#include "keys.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <string.h>

struct okey_keys_t {
    const okey_config_t *cfg;
    okey_openai_t api;
    okey_project_store_t store;   /* the server's own project */
    apr_thread_mutex_t *mutex;    /* guards others */
    apr_pool_t *others_pool;
    apr_hash_t *others;           /* profiles' projects: name -> id */
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
                              okey_http_t *http,
                              const okey_project_store_t *store)
{
    okey_keys_t *keys = apr_pcalloc(pool, sizeof(*keys));

    keys->cfg = cfg;
    keys->api.http = http;
    keys->api.api_base = cfg->api_base;
    keys->api.management_key = cfg->management_key;
    keys->store = *store;
    apr_thread_mutex_create(&keys->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    keys->others_pool = okey_pool_for_threads(pool);
    keys->others = apr_hash_make(keys->others_pool);
    return keys;
}

void okey_keys_cancel_with(okey_keys_t *keys, volatile const int *cancel)
{
    keys->api.cancel = cancel;
}

static int is_own(const okey_keys_t *keys, const char *project)
{
    return !strcmp(project, keys->cfg->project);
}

/* The id kept for project: the server's in shared memory, a profile's in
 * this process. */
static const char *stored_project(okey_keys_t *keys, apr_pool_t *pool, const char *project)
{
    char id[OKEY_KEYS_PROJECT_ID_MAX] = "";
    const char *kept = NULL;

    if (is_own(keys, project)) {
        keys->store.get(keys->store.baton, id, sizeof(id));
    }
    else {
        apr_thread_mutex_lock(keys->mutex);
        kept = apr_hash_get(keys->others, project, APR_HASH_KEY_STRING);
        apr_cpystrn(id, kept ? kept : "", sizeof(id));
        apr_thread_mutex_unlock(keys->mutex);
    }
    return id[0] ? apr_pstrdup(pool, id) : NULL;
}

/* Keeps id for project, or, when id is NULL, forgets stale. */
static void store_project(okey_keys_t *keys, const char *project, const char *id,
                          const char *stale)
{
    const char *kept;

    if (is_own(keys, project)) {
        keys->store.set(keys->store.baton, id, stale);
    }
    else {
        apr_thread_mutex_lock(keys->mutex);
        kept = apr_hash_get(keys->others, project, APR_HASH_KEY_STRING);
        if (id && !kept) {
            apr_hash_set(keys->others, apr_pstrdup(keys->others_pool, project),
                         APR_HASH_KEY_STRING, apr_pstrdup(keys->others_pool, id));
        }
        else if (!id && kept && !strcmp(kept, stale)) {
            apr_hash_set(keys->others, project, APR_HASH_KEY_STRING, NULL);
        }
        apr_thread_mutex_unlock(keys->mutex);
    }
}

/* The oldest active project of the name, created when there is none. */
static okey_err_t *find_or_create(okey_keys_t *keys, apr_pool_t *pool,
                                  const char *project, const char **id)
{
    apr_array_header_t *ids = NULL;
    okey_err_t *err = okey_openai_find_projects(&keys->api, pool, project, &ids);

    if (!err && ids->nelts == 0) {
        err = okey_openai_create_project(&keys->api, pool, project, id);
        /* Another server may have created one too: all take the oldest. */
        if (!err) {
            err = okey_openai_find_projects(&keys->api, pool, project, &ids);
        }
        if (!err && ids->nelts == 0) {
            APR_ARRAY_PUSH(ids, const char *) = *id;
        }
    }
    *id = err ? NULL : APR_ARRAY_IDX(ids, 0, const char *);
    return err;
}

okey_err_t *okey_keys_project_id(okey_keys_t *keys, apr_pool_t *pool,
                                 const char *project, const char **id)
{
    apr_interval_time_t wait = apr_time_from_sec(3 * keys->cfg->timeout + 1);
    okey_err_t *err = NULL;
    int locked = 0;

    *id = stored_project(keys, pool, project);
    if (!*id) {
        locked = keys->store.lock(keys->store.baton, wait);
        err = locked ? NULL
              : okey_err_make(pool, 503, "The key service is busy. Please try "
                              "again in a minute.", "waited %" APR_TIME_T_FMT
                              " s for another request to set up project %s",
                              apr_time_sec(wait), project);
    }
    if (locked) {
        /* Whoever held the lock may have found or made it meanwhile. */
        *id = stored_project(keys, pool, project);
        if (!*id) {
            err = find_or_create(keys, pool, project, id);
        }
        if (!err && strlen(*id) < OKEY_KEYS_PROJECT_ID_MAX) {
            store_project(keys, project, *id, NULL);
        }
        keys->store.unlock(keys->store.baton);
    }
    return err;
}

/* Whether a creation failed because the project is gone or archived. */
static int project_gone(const okey_err_t *err)
{
    return err->upstream_status == 404 ||
           (err->upstream_status == 400 && strstr(err->log_msg, "archived"));
}

okey_err_t *okey_keys_issue(okey_keys_t *keys, apr_pool_t *pool, const char *project,
                            const char *email, apr_int64_t now, apr_int64_t lifetime,
                            okey_issued_t **issued, const okey_issued_t **unsure)
{
    okey_issued_t *made = apr_pcalloc(pool, sizeof(*made));
    okey_service_account_t *account = NULL;
    okey_err_t *err = okey_keys_project_id(keys, pool, project, &made->project_id);
    int attempt;

    made->email = okey_lower(pool, email);
    made->project = project;
    made->expires = now + lifetime;
    made->lifetime = lifetime;
    made->name = okey_keys_name(pool, made->expires, email);
    for (attempt = 1; !err && !account && attempt <= 2; attempt++) {
        err = okey_openai_create_service_account(&keys->api, pool, made->project_id,
                                                 made->name, &account);
        if (err && project_gone(err)) {
            /* Archived or deleted upstream: every child forgets it, and this
             * request finds or makes the project again, once. */
            store_project(keys, project, NULL, made->project_id);
            made->project_id = NULL;
            err = attempt < 2 ? okey_keys_project_id(keys, pool, project, &made->project_id)
                              : err;
        }
    }
    if (!err) {
        made->service_account_id = account->id;
        made->api_key = account->api_key;
    }
    *issued = err ? NULL : made;
    *unsure = (err && err->no_answer && made->project_id &&
               err->endpoint == OKEY_ENDPOINT_SERVICE_ACCOUNTS) ? made : NULL;
    return err;
}

typedef struct {
    apr_pool_t *pool;
    const char *email;
    const char *project_id;
    apr_array_header_t *owned;
} owned_listing_t;

/* Keeps a listed account when its name carries the address sought. */
static void note_owned(void *baton, const json_t *account)
{
    owned_listing_t *listing = baton;
    const char *name = okey_json_str(account, "name");
    const char *id = okey_json_str(account, "id");
    const json_t *created = json_object_get(account, "created_at");
    apr_int64_t expires = 0;
    const char *email = NULL;

    if (id && name && okey_keys_parse_name(listing->pool, name, &expires, &email) &&
        okey_strieq(email, listing->email)) {
        okey_owned_key_t *key = apr_array_push(listing->owned);

        key->service_account_id = apr_pstrdup(listing->pool, id);
        key->name = apr_pstrdup(listing->pool, name);
        key->project_id = listing->project_id;
        key->created_at = json_is_integer(created) ? json_integer_value(created) : 0;
        key->expires = expires;
    }
}

static int oldest_first(const void *a, const void *b)
{
    const okey_owned_key_t *x = a, *y = b;

    return x->created_at != y->created_at ? (x->created_at < y->created_at ? -1 : 1)
           : x->expires != y->expires ? (x->expires < y->expires ? -1 : 1)
           : strcmp(x->service_account_id, y->service_account_id);
}

okey_err_t *okey_keys_all_projects(okey_keys_t *keys, apr_pool_t *pool,
                                   apr_array_header_t **project_ids)
{
    apr_array_header_t *names = okey_config_projects(pool, keys->cfg);
    okey_err_t *err = NULL;
    int i;

    *project_ids = apr_array_make(pool, 4, sizeof(const char *));
    for (i = 0; !err && i < names->nelts; i++) {
        apr_array_header_t *ids = NULL;

        err = okey_openai_find_projects(&keys->api, pool,
                                        APR_ARRAY_IDX(names, i, const char *), &ids);
        if (!err) {
            apr_array_cat(*project_ids, ids);
        }
    }
    return err;
}

okey_err_t *okey_keys_owned(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                            apr_array_header_t **owned)
{
    apr_array_header_t *projects = NULL;
    owned_listing_t listing = {pool, email, NULL,
                               apr_array_make(pool, 8, sizeof(okey_owned_key_t))};
    okey_err_t *err = okey_keys_all_projects(keys, pool, &projects);
    int i;

    for (i = 0; !err && i < projects->nelts; i++) {
        listing.project_id = APR_ARRAY_IDX(projects, i, const char *);
        err = okey_openai_each(&keys->api, pool,
                               okey_openai_accounts_path(pool, listing.project_id),
                               OKEY_ENDPOINT_SERVICE_ACCOUNTS, "service account list",
                               note_owned, &listing);
    }
    qsort(listing.owned->elts, (size_t)listing.owned->nelts, sizeof(okey_owned_key_t),
          oldest_first);
    *owned = err ? NULL : listing.owned;
    return err;
}

apr_array_header_t *okey_keys_beyond_cap(apr_pool_t *pool,
                                         const apr_array_header_t *owned,
                                         apr_int64_t cap, const char *keep_id)
{
    apr_array_header_t *victims = apr_array_make(pool, 2, sizeof(okey_owned_key_t));
    apr_array_header_t *sorted = apr_array_copy(pool, owned);
    apr_int64_t excess = cap > 0 ? owned->nelts - cap : 0;
    int i;

    qsort(sorted->elts, (size_t)sorted->nelts, sizeof(okey_owned_key_t), oldest_first);
    for (i = 0; i < sorted->nelts && excess > 0; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(sorted, i, okey_owned_key_t);

        if (!keep_id || strcmp(key->service_account_id, keep_id)) {
            APR_ARRAY_PUSH(victims, okey_owned_key_t) = *key;
            excess--;
        }
    }
    return victims;
}

int okey_keys_revoke(okey_keys_t *keys, apr_pool_t *pool,
                     const okey_owned_key_t *const *victims, int n, int *done)
{
    int gone = 0;
    int i;

    /* One at a time: a person revokes a few keys, and the order of the
     * audit lines then follows the order of the deletes. */
    for (i = 0; i < n; i++) {
        okey_openai_deleted_t result;
        const char *id = victims[i]->service_account_id;

        okey_openai_delete_accounts(&keys->api, pool, victims[i]->project_id, &id, 1, 1,
                                    &result);
        done[i] = (result.status >= 200 && result.status < 300) || result.status == 404;
        gone += done[i];
    }
    return gone;
}
