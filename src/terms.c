/* The terms a key is issued under. */
#include "terms.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#include "name.h"
#include "policy.h"

const okey_terms_t *okey_terms_of(const apr_array_header_t *terms, const char *project)
{
    const okey_terms_t *found = NULL;
    int i;

    for (i = 0; terms && i < terms->nelts && !found; i++) {
        const okey_terms_t *each = APR_ARRAY_IDX(terms, i, const okey_terms_t *);

        found = strcmp(each->project, project) ? NULL : each;
    }
    return found;
}

const okey_terms_t *okey_terms_for(apr_pool_t *pool, const okey_config_t *cfg,
                                   const char *project)
{
    const okey_terms_t *found = okey_terms_of(cfg->terms, project);
    apr_array_header_t *made = NULL;

    if (!found) {
        made = apr_array_make(pool, 1, sizeof(okey_terms_t *));
        okey_terms_add(pool, made, cfg, "the server",
                       apr_array_make(pool, 1, sizeof(const char *)));
        found = APR_ARRAY_IDX(made, 0, const okey_terms_t *);
    }
    return found;
}

apr_array_header_t *okey_terms_projects(apr_pool_t *pool, const okey_config_t *cfg)
{
    apr_array_header_t *names = apr_array_make(pool, 2, sizeof(const char *));
    int i;

    for (i = 0; cfg->terms && i < cfg->terms->nelts; i++) {
        APR_ARRAY_PUSH(names, const char *) =
            APR_ARRAY_IDX(cfg->terms, i, const okey_terms_t *)->project;
    }
    if (!names->nelts) {
        APR_ARRAY_PUSH(names, const char *) = cfg->project;
    }
    return names;
}

static int same_budget(const okey_budget_t *a, const okey_budget_t *b)
{
    return a->set == b->set &&
           (!a->set || (a->period == b->period && a->amount == b->amount));
}

static const char *budget_text(apr_pool_t *pool, const okey_budget_t *budget)
{
    return budget->set ? apr_psprintf(pool, "%.2f %s", budget->amount,
                                      okey_period_names[budget->period])
                       : "none";
}

/* The one setting other holds that kept differs on, with both values, or
 * NULL. */
static const char *difference(apr_pool_t *pool, const okey_terms_t *kept,
                              const okey_terms_t *other, const char **values)
{
    const char *what = NULL;

    if (kept->cap != other->cap) {
        what = "OpenAIKeyMaxKeysPerUser";
        *values = apr_psprintf(pool, "%" APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                               kept->cap, other->cap);
    }
    else if (kept->max_lifetime != other->max_lifetime) {
        what = "OpenAIKeyMaxExpiration";
        *values = apr_psprintf(pool, "%" APR_INT64_T_FMT " and %" APR_INT64_T_FMT,
                               kept->max_lifetime, other->max_lifetime);
    }
    else if (!same_budget(&kept->budget, &other->budget)) {
        what = "OpenAIKeyBudget";
        *values = apr_pstrcat(pool, budget_text(pool, &kept->budget), " and ",
                              budget_text(pool, &other->budget), NULL);
    }
    else if (kept->revoke_over_budget != other->revoke_over_budget) {
        what = "OpenAIKeyRevokeOverBudget";
        *values = kept->revoke_over_budget ? "On and Off" : "Off and On";
    }
    return what;
}

static int disagree(apr_pool_t *pool, const okey_terms_t *kept, const okey_terms_t *other,
                    const char *where, apr_array_header_t *problems)
{
    const char *values = NULL;
    const char *what = difference(pool, kept, other, &values);

    if (what) {
        APR_ARRAY_PUSH(problems, const char *) = apr_psprintf(
            pool, "%s and %s issue into project %s but set different %s (%s): a key's "
            "terms must not depend on where it was issued", kept->where, where,
            kept->project, what, values);
    }
    return what != NULL;
}

int okey_terms_merge(apr_pool_t *pool, okey_terms_t *into, const okey_terms_t *other,
                     apr_array_header_t *problems)
{
    int problem = into != other && disagree(pool, into, other, other->where, problems);

    if (into != other) {
        apr_array_cat(into->issuers, other->issuers);
        into->keeps_groups |= other->keeps_groups;
        into->revoke_disallowed &= other->revoke_disallowed;
    }
    return problem;
}

int okey_terms_add(apr_pool_t *pool, apr_array_header_t *terms, const okey_config_t *cfg,
                   const char *where, apr_array_header_t *problems)
{
    okey_terms_t *kept = (okey_terms_t *)okey_terms_of(terms, cfg->project);
    okey_terms_t *mine = apr_pcalloc(pool, sizeof(*mine));
    int problem = 0;

    mine->project = apr_pstrdup(pool, cfg->project);
    mine->where = apr_pstrdup(pool, where);
    mine->cap = cfg->max_keys_per_user;
    mine->max_lifetime = cfg->max_expiration;
    mine->legacy_lifetime = cfg->expiration;
    mine->reap_legacy = cfg->reap_legacy;
    mine->revoke_disallowed = cfg->revoke_disallowed;
    mine->budget = cfg->budget;
    mine->revoke_over_budget = cfg->revoke_over_budget;
    if (!kept) {
        kept = mine;
        kept->issuers = apr_array_make(pool, 2, sizeof(const okey_config_t *));
        APR_ARRAY_PUSH(terms, okey_terms_t *) = kept;
    }
    else {
        problem = disagree(pool, kept, mine, where, problems);
    }
    kept->keeps_groups |= cfg->allowed_groups && cfg->allowed_groups->nelts > 0;
    APR_ARRAY_PUSH(kept->issuers, const okey_config_t *) = cfg;
    return problem;
}

static int same_list(const apr_array_header_t *a, const apr_array_header_t *b)
{
    int same = (a ? a->nelts : 0) == (b ? b->nelts : 0);
    int i;

    for (i = 0; same && a && i < a->nelts; i++) {
        same = !strcmp(APR_ARRAY_IDX(a, i, const char *), APR_ARRAY_IDX(b, i, const char *));
    }
    return same;
}

int okey_terms_known(const apr_array_header_t *terms, const okey_config_t *cfg)
{
    const okey_terms_t *entry = okey_terms_of(terms, cfg->project);
    int known = 0;
    int i;

    for (i = 0; entry && i < entry->issuers->nelts && !known; i++) {
        const okey_config_t *issuer = APR_ARRAY_IDX(entry->issuers, i, const okey_config_t *);

        known = same_list(issuer->allowed_users, cfg->allowed_users) &&
                same_list(issuer->allowed_domains, cfg->allowed_domains) &&
                same_list(issuer->allowed_groups, cfg->allowed_groups);
    }
    return known && entry->cap == cfg->max_keys_per_user &&
           entry->max_lifetime == cfg->max_expiration &&
           same_budget(&entry->budget, &cfg->budget) &&
           entry->revoke_over_budget == cfg->revoke_over_budget;
}

int okey_terms_capped(const apr_array_header_t *terms)
{
    int capped = 0;
    int i;

    for (i = 0; terms && i < terms->nelts && !capped; i++) {
        capped = APR_ARRAY_IDX(terms, i, const okey_terms_t *)->cap > 0;
    }
    return capped;
}

int okey_terms_admits(const okey_terms_t *terms, const char *email)
{
    int admitted = terms->keeps_groups;
    int i;

    for (i = 0; !admitted && i < terms->issuers->nelts; i++) {
        admitted = okey_policy_address_listed(
            APR_ARRAY_IDX(terms->issuers, i, const okey_config_t *), email);
    }
    return admitted;
}

/* The Go program's names: an address, and not a malformed one of ours. */
static int bare_address(const char *name)
{
    const char *at = strchr(name, '@');

    return at && at != name && at[1] && !strchr(at + 1, '@') &&
           !strpbrk(name, " \t\r\n\"<>,;:") &&
           strncmp(name, OKEY_KEYS_NAME_PREFIX, strlen(OKEY_KEYS_NAME_PREFIX)) != 0;
}

/* A name's expiry, unless it lies beyond what any issuer of the project
 * allows: then created_at plus the longest lifetime holds. */
static apr_int64_t held_expiry(const okey_terms_t *terms, apr_int64_t named,
                               apr_int64_t created_at)
{
    apr_int64_t backstop = created_at + terms->max_lifetime;

    return created_at > 0 && named > backstop + OKEY_TERMS_CLOCK_SKEW ? backstop : named;
}

okey_judgement_t okey_terms_judge(apr_pool_t *pool, const okey_terms_t *terms,
                                  const char *name, apr_int64_t created_at,
                                  apr_int64_t now)
{
    okey_judgement_t verdict = {OKEY_KEY_FOREIGN, NULL, 0};
    apr_int64_t named = 0;

    created_at = okey_terms_created(created_at, now);
    if (name && okey_keys_parse_name(pool, name, &named, &verdict.email)) {
        verdict.email = okey_lower(pool, verdict.email);
        verdict.expires = held_expiry(terms, named, created_at);
        verdict.state = verdict.expires <= now ? OKEY_KEY_EXPIRED
                        : terms->revoke_disallowed && !okey_terms_admits(terms, verdict.email)
                        ? OKEY_KEY_DISALLOWED : OKEY_KEY_LIVE;
    }
    /* created_at in the future says nothing: only a passed one counts. */
    else if (name && terms->reap_legacy && bare_address(name)) {
        int old = created_at > 0 && created_at <= now &&
                  created_at + terms->legacy_lifetime <= now;

        verdict.email = old ? okey_lower(pool, name) : NULL;
        verdict.state = old ? OKEY_KEY_LEGACY_OLD : OKEY_KEY_FOREIGN;
    }
    return verdict;
}

apr_int64_t okey_terms_created(apr_int64_t created_at, apr_int64_t now)
{
    return created_at > 0 && created_at <= now + OKEY_TERMS_CLOCK_SKEW ? created_at : 0;
}

apr_int64_t okey_terms_rank(apr_time_t added, apr_int64_t created_at)
{
    /* A created_at that would overflow in microseconds ranks as unknown. */
    int usable = created_at > 0 && created_at < APR_INT64_MAX / APR_USEC_PER_SEC;

    return added > 0 ? added : usable ? created_at * APR_USEC_PER_SEC : 0;
}

apr_int64_t okey_terms_rank_listed(apr_int64_t created_at, apr_int64_t now,
                                   apr_int64_t timeout)
{
    int in_flight = created_at > now - OKEY_TERMS_CLOCK_SKEW - 2 * timeout;

    return in_flight ? APR_INT64_MAX : okey_terms_rank(0, created_at);
}

static int oldest_first(const void *a, const void *b)
{
    const okey_owned_key_t *x = a, *y = b;

    return x->rank != y->rank ? (x->rank < y->rank ? -1 : 1)
           : strcmp(x->service_account_id, y->service_account_id);
}

void okey_terms_sort(apr_array_header_t *keys)
{
    qsort(keys->elts, (size_t)keys->nelts, sizeof(okey_owned_key_t), oldest_first);
}

apr_array_header_t *okey_terms_over_cap(apr_pool_t *pool, apr_int64_t cap,
                                        const apr_array_header_t *owned,
                                        const char *keep_id)
{
    apr_array_header_t *victims = apr_array_make(pool, 2, sizeof(okey_owned_key_t));
    apr_array_header_t *sorted = apr_array_copy(pool, owned);
    apr_int64_t excess = cap > 0 ? owned->nelts - cap : 0;
    int kept_seen = 0;
    int i;

    okey_terms_sort(sorted);
    for (i = 0; i < sorted->nelts && excess > 0 && !kept_seen; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(sorted, i, okey_owned_key_t);

        kept_seen = keep_id && !strcmp(key->service_account_id, keep_id);
        if (!kept_seen) {
            APR_ARRAY_PUSH(victims, okey_owned_key_t) = *key;
            excess--;
        }
    }
    return victims;
}
