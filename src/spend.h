/* Spend: what OpenAI reports each key used and cost, whose key it was, and
 * the budgets a person's spending is held to. Budgets are in USD over UTC
 * periods: a day, a week from Monday, a calendar month. */
#ifndef OKEY_SPEND_H
#define OKEY_SPEND_H

#include "okey.h"

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

#endif
