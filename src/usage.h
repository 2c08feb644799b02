/* The usage poll: what OpenAI reports each of our keys used and cost, read
 * for every project of a key server and kept in the ledger, where pages
 * and budgets read it. One poll per OpenAIKeyUsageInterval runs across a
 * fleet; no page view calls OpenAI. */
#ifndef OKEY_USAGE_H
#define OKEY_USAGE_H

#include "reap_run.h"
#include "figures.h"

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

#endif
