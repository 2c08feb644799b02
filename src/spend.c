/* Spend: budgets and their periods. */
#include "spend.h"

#include <apr_strings.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OKEY_BUDGET_MAX 1000000.0
#define DAY 86400

const char *const okey_period_names[OKEY_PERIOD_COUNT] = {"day", "week", "month"};

/* The amount, or -1 when text is not a plain decimal of at most two places. */
static double parse_amount(const char *text, const char **rest)
{
    const char *at = text;
    double amount = -1;
    int digits = 0, places = -1;

    while (*at >= '0' && *at <= '9') {
        at++;
        digits++;
    }
    if (*at == '.') {
        const char *point = at++;

        while (*at >= '0' && *at <= '9') {
            at++;
        }
        places = (int)(at - point - 1);
    }
    if (digits > 0 && digits <= 7 && places != 0 && places <= 2) {
        amount = strtod(text, NULL);
    }
    *rest = at;
    return amount;
}

const char *okey_budget_parse(apr_pool_t *pool, const char *text, okey_budget_t *budget)
{
    const char *rest = text;
    const char *why = NULL;
    double amount = parse_amount(text, &rest);
    int period = 0;

    memset(budget, 0, sizeof(*budget));
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    while (period < OKEY_PERIOD_COUNT && strcasecmp(rest, okey_period_names[period])) {
        period++;
    }
    if (amount <= 0 || amount > OKEY_BUDGET_MAX) {
        why = apr_psprintf(pool, "'%s' does not start with an amount in USD above 0 and at "
                           "most 1000000, with at most two decimals", text);
    }
    else if (period == OKEY_PERIOD_COUNT) {
        why = apr_psprintf(pool, "'%s' does not end with day, week or month", text);
    }
    else {
        budget->set = 1;
        budget->amount = amount;
        budget->period = (okey_period_e)period;
    }
    return why;
}

apr_int64_t okey_period_start(okey_period_e period, apr_int64_t now)
{
    apr_int64_t day = now - ((now % DAY) + DAY) % DAY;
    apr_int64_t start = day;

    if (period == OKEY_PERIOD_WEEK) {
        /* 1970-01-01 was a Thursday: Monday is three days on from it. */
        apr_int64_t days = day / DAY;

        start = day - (((days - 4) % 7 + 7) % 7) * DAY;
    }
    else if (period == OKEY_PERIOD_MONTH) {
        time_t t = (time_t)day;
        struct tm tm;

        gmtime_r(&t, &tm);
        start = day - (apr_int64_t)(tm.tm_mday - 1) * DAY;
    }
    return start;
}

apr_int64_t okey_period_next(okey_period_e period, apr_int64_t now)
{
    apr_int64_t start = okey_period_start(period, now);
    apr_int64_t next = start + (period == OKEY_PERIOD_WEEK ? 7 * DAY : DAY);

    if (period == OKEY_PERIOD_MONTH) {
        next = okey_period_start(OKEY_PERIOD_MONTH, start + 31 * DAY + DAY / 2);
        /* Months of 28-31 days: 31 days on is always inside the next month. */
    }
    return next;
}
