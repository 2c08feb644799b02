/* What the ledger holds of spend. */
#include "figures.h"

#include <apr_strings.h>

const char *okey_figures_name(apr_pool_t *pool, const char *email)
{
    unsigned char hash[16];
    char *hex = apr_palloc(pool, 2 * sizeof(hash) + 1);
    apr_size_t i;

    okey_ledger_person(email, hash);
    for (i = 0; i < sizeof(hash); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    }
    return hex;
}

apr_hash_t *okey_figures_projects(okey_ledger_t *ledger, apr_pool_t *pool,
                                     okey_period_e period, apr_int64_t now,
                                     apr_int64_t *polled_at)
{
    const char *text = NULL;
    okey_person_spend_t *fleet;
    apr_hash_t *spend = apr_hash_make(pool);
    apr_hash_index_t *hi;

    okey_ledger_store_get(ledger, pool, OKEY_STORE_SPEND, OKEY_FIGURES_PROJECTS, &text);
    fleet = okey_person_spend_parse(pool, text);
    *polled_at = fleet ? fleet->polled_at : 0;
    for (hi = fleet ? apr_hash_first(pool, fleet->days) : NULL; hi; hi = apr_hash_next(hi)) {
        const void *project;
        double *usd = apr_palloc(pool, sizeof(*usd));

        apr_hash_this(hi, &project, NULL, NULL);
        *usd = okey_spend_in_period(fleet, project, period, now);
        apr_hash_set(spend, project, APR_HASH_KEY_STRING, usd);
    }
    return spend;
}

okey_person_spend_t *okey_figures_person(okey_ledger_t *ledger, apr_pool_t *pool,
                                       const char *email)
{
    const char *text = NULL;

    okey_ledger_store_get(ledger, pool, OKEY_STORE_SPEND, okey_figures_name(pool, email), &text);
    return okey_person_spend_parse(pool, text);
}
