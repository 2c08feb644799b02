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

okey_person_spend_t *okey_figures_fleet(okey_ledger_t *ledger, apr_pool_t *pool)
{
    const char *text = NULL;

    okey_ledger_store_get(ledger, pool, OKEY_STORE_SPEND, OKEY_FIGURES_PROJECTS, &text);
    return okey_person_spend_parse(pool, text);
}

okey_person_spend_t *okey_figures_person(okey_ledger_t *ledger, apr_pool_t *pool,
                                       const char *email)
{
    const char *text = NULL;

    okey_ledger_store_get(ledger, pool, OKEY_STORE_SPEND, okey_figures_name(pool, email), &text);
    return okey_person_spend_parse(pool, text);
}
