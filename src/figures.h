/* What the ledger holds of spend, as pages, budgets and the reaper read
 * it: each person's document, the fleet's totals and the index the usage
 * poll (usage.h) stores. Nothing here calls OpenAI. */
#ifndef OKEY_FIGURES_H
#define OKEY_FIGURES_H

#include "ledger.h"
#include "spend.h"

/* The store's entry of the fleet's totals: cost per project and day. */
#define OKEY_FIGURES_PROJECTS "projects"
/* The store's entry of every person's totals, for the admin console. */
#define OKEY_FIGURES_INDEX "index"

/* The store's name of email's spend document: its hashed address, hexed. */
const char *okey_figures_name(apr_pool_t *pool, const char *email);

/* The fleet's totals, a document of costs per project (its id) and day
 * as a person's is; NULL when no poll has stored them. */
okey_person_spend_t *okey_figures_fleet(okey_ledger_t *ledger, apr_pool_t *pool);

/* email's spend document, or NULL when no poll has reported on them. */
okey_person_spend_t *okey_figures_person(okey_ledger_t *ledger, apr_pool_t *pool,
                                       const char *email);

#endif
