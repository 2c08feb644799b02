/* Key issuance. */
#include "keys.h"
#include "figures.h"

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <stdlib.h>
#include <string.h>

struct okey_keys_t {
    const okey_config_t *cfg;
    okey_openai_t api;
    okey_ledger_t *ledger;        /* keeps project ids */
};

okey_keys_t *okey_keys_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http, okey_ledger_t *ledger)
{
    okey_keys_t *keys = apr_pcalloc(pool, sizeof(*keys));

    keys->cfg = cfg;
    keys->api.http = http;
    keys->api.api_base = cfg->api_base;
    keys->api.management_key = cfg->management_key;
    keys->ledger = ledger;
    return keys;
}

void okey_keys_cancel_with(okey_keys_t *keys, volatile const int *cancel)
{
    keys->api.cancel = cancel;
}

/* The id the ledger keeps for project, or NULL. */
static const char *stored_project(okey_keys_t *keys, apr_pool_t *pool, const char *project)
{
    const char *id = NULL;

    okey_ledger_project_get(keys->ledger, pool, project, &id);
    return id;
}

/* Keeps id for project, or, when id is NULL, forgets stale. */
static void store_project(okey_keys_t *keys, const char *project, const char *id,
                          const char *stale)
{
    okey_ledger_project_set(keys->ledger, project, id, stale);
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

int okey_keys_is_project_id(const char *project)
{
    apr_size_t len = strlen(project);

    return len > 5 && len < OKEY_KEYS_PROJECT_ID_MAX && !strncmp(project, "proj_", 5) &&
           strspn(project + 5, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_-") == len - 5;
}

okey_err_t *okey_keys_project_id(okey_keys_t *keys, apr_pool_t *pool,
                                 const char *project, const char **id)
{
    apr_interval_time_t wait = apr_time_from_sec(3 * keys->cfg->timeout + 1);
    okey_err_t *err = NULL;
    int locked = 0;

    /* A project named by its id is that project: never looked up by name. */
    *id = okey_keys_is_project_id(project) ? project : stored_project(keys, pool, project);
    if (!*id) {
        /* Held past its time by a creator that died, the lock lapses. */
        okey_ledger_project_lock(keys->ledger, project, wait, 2 * wait, &locked);
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
        okey_ledger_project_unlock(keys->ledger, project);
    }
    return err;
}

/* Whether a creation failed because the project is gone or archived. */
static int project_gone(const okey_err_t *err)
{
    return err->upstream_status == 404 ||
           (err->upstream_status == 400 && strstr(err->log_msg, "archived"));
}

/* Files whose the new key is, for as long as its cost may count. */
static void attribute(okey_keys_t *keys, apr_pool_t *pool, const okey_issued_t *made)
{
    okey_attribution_t who = {made->service_account_id, made->email, made->project_id, NULL,
                              made->created_at, made->expires};

    if (made->api_key_id && okey_store_name_valid(made->api_key_id)) {
        okey_ledger_store_put(keys->ledger, OKEY_STORE_KEYS, made->api_key_id,
                              okey_attribution_text(pool, &who));
    }
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
    if (!err) {
        err = okey_keys_new_name(pool, made->expires, email, &made->name);
    }
    for (attempt = 1; !err && !account && attempt <= 2; attempt++) {
        err = okey_openai_create_service_account(&keys->api, pool, made->project_id,
                                                 made->name, &account);
        if (err && project_gone(err) && !okey_keys_is_project_id(project)) {
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
        made->api_key_id = account->api_key_id;
        made->created_at = okey_terms_created(account->created_at, now);
        attribute(keys, pool, made);
    }
    *issued = err ? NULL : made;
    *unsure = (err && made->project_id && err->endpoint == OKEY_ENDPOINT_SERVICE_ACCOUNTS &&
               okey_openai_creation_unclear(err)) ? made : NULL;
    return err;
}

okey_err_t *okey_keys_project_ids(okey_keys_t *keys, apr_pool_t *pool, const char *project,
                                  apr_array_header_t **ids)
{
    okey_err_t *err = NULL;

    if (okey_keys_is_project_id(project)) {
        *ids = apr_array_make(pool, 1, sizeof(const char *));
        APR_ARRAY_PUSH(*ids, const char *) = project;
    }
    else {
        err = okey_openai_find_projects(&keys->api, pool, project, ids);
    }
    return err;
}

typedef struct {
    apr_pool_t *pool;
    const char *email;
    const char *project_id;
    const okey_terms_t *terms;
    apr_int64_t now;
    int with_expired;
    apr_array_header_t *owned;
} owned_listing_t;

/* Keeps a listed account when it is a live key of the address sought. */
static void note_owned(void *baton, const json_t *account)
{
    owned_listing_t *listing = baton;
    const char *name = okey_json_str(account, "name");
    const char *id = okey_json_str(account, "id");
    const json_t *created = json_object_get(account, "created_at");
    apr_int64_t created_at = json_is_integer(created) ? json_integer_value(created) : 0;
    okey_judgement_t verdict = okey_terms_judge(listing->pool, listing->terms, name,
                                                created_at, listing->now);

    int wanted = verdict.state == OKEY_KEY_LIVE || verdict.state == OKEY_KEY_DISALLOWED ||
                 (listing->with_expired && verdict.state == OKEY_KEY_EXPIRED);

    if (id && wanted && !strcmp(verdict.email, listing->email)) {
        okey_owned_key_t *key = apr_array_push(listing->owned);

        key->service_account_id = apr_pstrdup(listing->pool, id);
        key->name = apr_pstrdup(listing->pool, name);
        key->project_id = listing->project_id;
        key->created_at = okey_terms_created(created_at, listing->now);
        key->expires = verdict.expires;
        key->rank = okey_terms_rank(0, key->created_at);
    }
}

okey_err_t *okey_keys_owned(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                            const char *project, apr_int64_t now, int with_expired,
                            apr_array_header_t **owned)
{
    apr_array_header_t *names = project ? NULL : okey_terms_projects(pool, keys->cfg);
    owned_listing_t listing = {pool, okey_lower(pool, email), NULL, NULL, now, with_expired,
                               apr_array_make(pool, 8, sizeof(okey_owned_key_t))};
    okey_err_t *err = NULL;
    int i, j;

    for (i = 0; !err && i < (names ? names->nelts : 1); i++) {
        const char *name = names ? APR_ARRAY_IDX(names, i, const char *) : project;
        apr_array_header_t *ids = NULL;

        listing.terms = okey_terms_for(pool, keys->cfg, name);
        err = okey_keys_project_ids(keys, pool, name, &ids);
        for (j = 0; !err && j < ids->nelts; j++) {
            listing.project_id = APR_ARRAY_IDX(ids, j, const char *);
            err = okey_openai_each(&keys->api, pool,
                                   okey_openai_accounts_path(pool, listing.project_id),
                                   OKEY_ENDPOINT_SERVICE_ACCOUNTS, "service account list",
                                   note_owned, &listing);
        }
    }
    okey_terms_sort(listing.owned);
    *owned = err ? NULL : listing.owned;
    return err;
}

apr_array_header_t *okey_keys_revoke(okey_keys_t *keys, apr_pool_t *pool, const char *email,
                                     const apr_array_header_t *victims)
{
    apr_array_header_t *revokes = apr_array_make(pool, victims->nelts + 1,
                                                 sizeof(okey_revoke_t));
    int i;

    /* One at a time: a person revokes a few keys, and the order of the
     * audit lines then follows the order of the deletes. */
    for (i = 0; i < victims->nelts; i++) {
        okey_revoke_t *revoke = apr_array_push(revokes);
        okey_openai_deleted_t result;
        const char *id;

        revoke->key = APR_ARRAY_IDX(victims, i, okey_owned_key_t);
        id = revoke->key.service_account_id;
        okey_openai_delete_accounts(&keys->api, pool, revoke->key.project_id, &id, 1, 1,
                                    &result);
        /* As the reaper's last attempt: never retried here. */
        revoke->outcome = okey_reap_classify(result.status, OKEY_REAP_ATTEMPTS, 0);
        if (revoke->outcome != OKEY_DELETE_FAILED) {
            okey_ledger_forget(keys->ledger, email, revoke->key.project_id, id,
                               apr_time_now());
        }
    }
    return revokes;
}

int okey_keys_held(const apr_array_header_t *keys, const char *service_account_id)
{
    int found = 0;
    int i;

    for (i = 0; i < keys->nelts && !found; i++) {
        found = !strcmp(APR_ARRAY_IDX(keys, i, okey_owned_key_t).service_account_id,
                        service_account_id);
    }
    return found;
}

/* view with the keys of listed it does not hold, ranked as keys the
 * ledger has not recorded (yet): a young one as on its way to its record
 * when the ledger recorded ours (in_flight), else each by its creation. */
static void add_listed(apr_array_header_t *view, const apr_array_header_t *listed,
                       apr_int64_t now, apr_int64_t timeout, int in_flight)
{
    int i;

    for (i = 0; i < listed->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(listed, i, okey_owned_key_t);

        if (!okey_keys_held(view, key->service_account_id)) {
            okey_owned_key_t *added = apr_array_push(view);

            *added = *key;
            added->rank = in_flight ? okey_terms_rank_listed(key->created_at, now, timeout)
                                    : okey_terms_rank(0, key->created_at);
        }
    }
}

okey_err_t *okey_keys_cap(okey_keys_t *keys, apr_pool_t *pool, const okey_issued_t *issued,
                          apr_int64_t cap, apr_array_header_t **revokes, int *unanswered)
{
    okey_owned_key_t key = {issued->service_account_id, issued->name, issued->project_id,
                            issued->created_at, issued->expires, 0};
    apr_array_header_t *view = NULL, *listed = NULL;
    okey_err_t *err = NULL;
    int complete = 0;
    int recorded;

    okey_ledger_record(keys->ledger, pool, issued->email, &key, apr_time_now(), &view,
                       &complete);
    view = view ? view : apr_array_make(pool, 2, sizeof(okey_owned_key_t));
    *unanswered = !complete && cap > 0;
    *revokes = NULL;
    if (!complete) {
        /* The next listing fills it, as soon as a reaper can run one. */
        okey_ledger_reap_request(keys->ledger);
    }
    if (cap > 0 && !complete) {
        err = okey_keys_owned(keys, pool, issued->email, issued->project, okey_now(), 0,
                              &listed);
    }
    /* Not recorded, the others' records likely failed too: every key
     * ranks by its creation, the one order all such sign-ins agree on. */
    recorded = okey_keys_held(view, issued->service_account_id);
    if (!recorded) {
        key.rank = okey_terms_rank(0, key.created_at);
        APR_ARRAY_PUSH(view, okey_owned_key_t) = key;
    }
    if (listed) {
        add_listed(view, listed, okey_now(), keys->cfg->timeout, recorded);
    }
    /* Without the listing, the cap still takes what the ledger knows is
     * older than the newest N: that is never a key the listing would keep. */
    if (cap > 0) {
        *revokes = okey_keys_revoke(keys, pool, issued->email,
                                    okey_terms_over_cap(pool, cap, view,
                                                        issued->service_account_id));
    }
    return err;
}

okey_err_t *okey_keys_within_budget(okey_keys_t *keys, apr_pool_t *pool,
                                    const okey_config_t *cfg, const char *email,
                                    apr_int64_t now)
{
    const char *project_id = NULL;
    okey_err_t *err = NULL;
    okey_person_spend_t *person;
    double spent;

    if (!cfg->budget.set) {
        return NULL;
    }
    err = okey_keys_project_id(keys, pool, cfg->project, &project_id);
    person = err ? NULL : okey_figures_person(keys->ledger, pool, email);
    spent = okey_spend_in_period(person, project_id, cfg->budget.period, now);
    if (!err && okey_spend_over(person, project_id, &cfg->budget, now)) {
        const char *resets = okey_iso8601(pool, okey_period_next(cfg->budget.period, now));

        err = okey_err_make(pool, 403,
                            apr_psprintf(pool, "You have spent %s of your %s budget per %s "
                                         "for this project. It resets at %s.",
                                         okey_usd(pool, spent),
                                         okey_usd(pool, cfg->budget.amount),
                                         okey_period_names[cfg->budget.period], resets),
                            "%s is at or over the budget of project %s: spent %.4f of "
                            "%.2f USD this %s", email, cfg->project, spent,
                            cfg->budget.amount, okey_period_names[cfg->budget.period]);
        err->denied = OKEY_DENIED_BUDGET;
    }
    return err;
}
