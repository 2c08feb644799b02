/* Spend: what OpenAI reports each key used and cost, whose key it was, and
 * the budgets a person's spending is held to. Budgets are in USD over UTC
 * periods: a day, a week from Monday, a calendar month. */
#ifndef OKEY_SPEND_H
#define OKEY_SPEND_H

#include "okey.h"

#include <apr_hash.h>

typedef enum {
    OKEY_PERIOD_DAY,
    OKEY_PERIOD_WEEK,
    OKEY_PERIOD_MONTH,
    OKEY_PERIOD_COUNT
} okey_period_e;

extern const char *const okey_period_names[OKEY_PERIOD_COUNT];

/* What one person may spend per period; amount 0 with set 0: no budget. */
typedef struct okey_budget_t {
    int set;
    double amount;        /* USD, above 0 */
    okey_period_e period;
} okey_budget_t;

/* Reads "<amount> day|week|month" (amount in USD, above 0, at most two
 * decimals' worth of cents and at most 1 000 000). NULL when valid, else
 * why not. */
const char *okey_budget_parse(apr_pool_t *pool, const char *text, okey_budget_t *budget);

/* The start of the period that holds now, and of the next (Unix seconds, UTC). */
apr_int64_t okey_period_start(okey_period_e period, apr_int64_t now);
apr_int64_t okey_period_next(okey_period_e period, apr_int64_t now);

/* How long a key's attribution is kept after its expiry: past the longest
 * period (a month, or a week begun in the month before) that its cost may
 * still count in. */
#define OKEY_SPEND_KEEP (40 * 86400)

/* Whose a key (api_key.id) is: kept from its creation (or its first sight
 * in an API-key listing) until OKEY_SPEND_KEEP after its expiry, so that
 * what it cost is counted against its owner even once it is deleted. */
typedef struct okey_attribution_t {
    const char *service_account_id;
    const char *email;
    const char *project_id;
    const char *redacted;      /* redacted_value from a listing, or NULL */
    apr_int64_t created_at;
    apr_int64_t expires;
} okey_attribution_t;

const char *okey_attribution_text(apr_pool_t *pool, const okey_attribution_t *attribution);
/* NULL when text is not an attribution. */
okey_attribution_t *okey_attribution_parse(apr_pool_t *pool, const char *text);

/* The attributions among entries (key id -> text, as the store gives
 * them; NULL: none): key id -> okey_attribution_t *. Texts that are not
 * attributions are left out. */
apr_hash_t *okey_attributions_parse(apr_pool_t *pool, apr_hash_t *entries);

/* What OpenAI reports one key used and cost since a poll's window began.
 * Unknown figures are -1: a key no report has named yet. */
typedef struct okey_key_spend_t {
    const char *api_key_id;
    okey_attribution_t who;
    int live;                  /* in the last listing */
    apr_int64_t last_used_at;  /* 0: never; -1: unknown */
    apr_int64_t requests, input_tokens, output_tokens;
    double cost_usd;
} okey_key_spend_t;

/* One UTC day's cost. */
typedef struct okey_day_cost_t {
    apr_int64_t day;
    double usd;
} okey_day_cost_t;

/* A person's spend, as the last poll found it: their keys' figures and
 * their cost per project and day, from since (the start of the longest
 * period a budget may have) to polled_at. */
typedef struct okey_person_spend_t {
    const char *email;
    apr_int64_t polled_at;
    apr_int64_t since;
    apr_array_header_t *keys;  /* of okey_key_spend_t; NULL in an index */
    apr_hash_t *days;          /* project id -> apr_array_header_t of okey_day_cost_t */
    int live_keys;
} okey_person_spend_t;

/* The window a poll at now reports on: the earlier of this week's and
 * this month's start. */
apr_int64_t okey_spend_since(apr_int64_t now);

const char *okey_person_spend_text(apr_pool_t *pool, const okey_person_spend_t *person);
/* NULL when text is not a spend document. */
okey_person_spend_t *okey_person_spend_parse(apr_pool_t *pool, const char *text);

/* Every person's totals, without their keys (of okey_person_spend_t *),
 * as the admin console reads them. */
const char *okey_spend_index_text(apr_pool_t *pool, apr_int64_t polled_at,
                                  const apr_array_header_t *people);
/* NULL when text is not an index. */
apr_array_header_t *okey_spend_index_parse(apr_pool_t *pool, const char *text,
                                           apr_int64_t *polled_at);

/* What person spent in project_id (NULL: every project) in the period of
 * kind that holds now. 0 when person is NULL (nothing reported). */
double okey_spend_in_period(const okey_person_spend_t *person, const char *project_id,
                            okey_period_e period, apr_int64_t now);

/* Whether person is at or over budget in project_id at now. */
int okey_spend_over(const okey_person_spend_t *person, const char *project_id,
                    const okey_budget_t *budget, apr_int64_t now);

/* The figures of the key of service_account_id in person, or NULL. */
const okey_key_spend_t *okey_spend_key(const okey_person_spend_t *person,
                                       const char *service_account_id);

/* A person's spend as My keys shows it: this period's, against the budget. */
typedef struct okey_spend_view_t {
    const okey_person_spend_t *person; /* NULL: no poll has reported on them */
    okey_period_e period;
    double amount_usd;
    const okey_budget_t *budget;       /* set 0: none */
    apr_int64_t resets_at;
} okey_spend_view_t;

/* person's spend in project_id (NULL: all) at now, by budget's period, or
 * by the month without one. */
void okey_spend_view(okey_spend_view_t *view, const okey_person_spend_t *person,
                     const char *project_id, const okey_budget_t *budget, apr_int64_t now);

/* An amount of USD as people read it: "$1.20", "$0.004". */
const char *okey_usd(apr_pool_t *pool, double usd);

/* Whether pasted (a whole key, or a redacted one) is the key a listing
 * shows as redacted ("sk-abc...wxyz"): its ends match, around a middle
 * long enough to be a key. */
int okey_spend_key_matches(const char *redacted, const char *pasted);

#endif
