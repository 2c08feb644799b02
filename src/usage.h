/* The usage poll: what OpenAI reports each of our keys used and cost, read
 * for every project of a key server and kept in the ledger, where pages
 * and budgets read it. One poll per OpenAIKeyUsageInterval runs across a
 * fleet; no page view calls OpenAI. */
#ifndef OKEY_USAGE_H
#define OKEY_USAGE_H

#include "reap_run.h"
#include "spend.h"

/* The store's entry of the fleet's totals: cost per project and day. */
#define OKEY_SPEND_PROJECTS "projects"
/* The store's entry of every person's totals, for the admin console. */
#define OKEY_SPEND_INDEX "index"

typedef struct okey_usage_report_t {
    int projects;
    int keys;       /* of ours, live or attributed, with figures */
    int people;
    const char *error;  /* why the poll failed, or NULL */
} okey_usage_report_t;

/* Polls the API-key listings, completions usage and costs of every
 * project of reaper's server since okey_spend_since(now), and replaces the
 * ledger's spend documents with what they say: nothing is replaced when
 * any of it fails. Attributions first seen in a listing are recorded;
 * those past OKEY_SPEND_KEEP are dropped. */
void okey_usage_poll(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
                     okey_usage_report_t *report);

/* The fleet's cost per project (project id -> double *) in the period of
 * kind holding now, and when it was polled (0: never). */
apr_hash_t *okey_usage_project_spend(okey_ledger_t *ledger, apr_pool_t *pool,
                                     okey_period_e period, apr_int64_t now,
                                     apr_int64_t *polled_at);

/* email's spend document, or NULL when no poll has reported on them. */
okey_person_spend_t *okey_usage_person(okey_ledger_t *ledger, apr_pool_t *pool,
                                       const char *email);

#endif
