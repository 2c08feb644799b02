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

/* --- attributions and spend documents ---------------------------------------- */

/* An integer member, or fallback when absent, null or not an integer. */
static apr_int64_t int_of(const json_t *obj, const char *name, apr_int64_t fallback)
{
    const json_t *value = json_object_get(obj, name);

    return json_is_integer(value) ? (apr_int64_t)json_integer_value(value) : fallback;
}

/* -1 (unknown) as null. */
static json_t *known_int(apr_int64_t value)
{
    return value < 0 ? json_null() : json_integer(value);
}

static json_t *str_or_null(const char *text)
{
    return text ? json_string(text) : json_null();
}

static json_t *attribution_json(const okey_attribution_t *who)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:I, s:I}", "sa", who->service_account_id,
                     "email", who->email, "project", who->project_id,
                     "redacted", str_or_null(who->redacted),
                     "created_at", (json_int_t)who->created_at,
                     "expires", (json_int_t)who->expires);
}

/* 0 when doc does not hold a whole attribution. */
static int attribution_from(const json_t *doc, okey_attribution_t *who)
{
    who->service_account_id = okey_json_str(doc, "sa");
    who->email = okey_json_str(doc, "email");
    who->project_id = okey_json_str(doc, "project");
    who->redacted = okey_json_str(doc, "redacted");
    who->created_at = int_of(doc, "created_at", 0);
    who->expires = int_of(doc, "expires", 0);
    return who->service_account_id && who->email && who->project_id && who->expires > 0;
}

/* json serialised into pool, and released. */
static const char *dump_owned(apr_pool_t *pool, json_t *json)
{
    const char *text = json ? okey_json_dump(pool, json) : NULL;

    json_decref(json);
    return text;
}

const char *okey_attribution_text(apr_pool_t *pool, const okey_attribution_t *attribution)
{
    return dump_owned(pool, attribution_json(attribution));
}

okey_attribution_t *okey_attribution_parse(apr_pool_t *pool, const char *text)
{
    json_t *doc = text ? okey_json_parse(pool, text, strlen(text), NULL) : NULL;
    okey_attribution_t *who = apr_pcalloc(pool, sizeof(*who));

    return doc && attribution_from(doc, who) ? who : NULL;
}

apr_hash_t *okey_attributions_parse(apr_pool_t *pool, apr_hash_t *entries)
{
    apr_hash_t *parsed = apr_hash_make(pool);
    apr_hash_index_t *hi;

    for (hi = entries ? apr_hash_first(pool, entries) : NULL; hi; hi = apr_hash_next(hi)) {
        const void *id;
        void *text;
        okey_attribution_t *who;

        apr_hash_this(hi, &id, NULL, &text);
        who = okey_attribution_parse(pool, text);
        if (who) {
            apr_hash_set(parsed, id, APR_HASH_KEY_STRING, who);
        }
    }
    return parsed;
}

apr_int64_t okey_spend_since(apr_int64_t now)
{
    apr_int64_t week = okey_period_start(OKEY_PERIOD_WEEK, now);
    apr_int64_t month = okey_period_start(OKEY_PERIOD_MONTH, now);

    return week < month ? week : month;
}

static json_t *key_spend_json(const okey_key_spend_t *key)
{
    json_t *doc = attribution_json(&key->who);

    json_object_set_new(doc, "id", json_string(key->api_key_id));
    json_object_set_new(doc, "live", json_boolean(key->live));
    json_object_set_new(doc, "last_used_at", known_int(key->last_used_at));
    json_object_set_new(doc, "requests", known_int(key->requests));
    json_object_set_new(doc, "input_tokens", known_int(key->input_tokens));
    json_object_set_new(doc, "output_tokens", known_int(key->output_tokens));
    json_object_set_new(doc, "cost_usd",
                        key->cost_usd < 0 ? json_null() : json_real(key->cost_usd));
    return doc;
}

static json_t *days_json(apr_pool_t *pool, apr_hash_t *days)
{
    json_t *doc = json_object();
    apr_hash_index_t *hi;

    for (hi = days ? apr_hash_first(pool, days) : NULL; hi; hi = apr_hash_next(hi)) {
        const void *project;
        void *value;
        const apr_array_header_t *costs;
        json_t *list = json_array();
        int i;

        apr_hash_this(hi, &project, NULL, &value);
        costs = value;
        for (i = 0; i < costs->nelts; i++) {
            const okey_day_cost_t *cost = &APR_ARRAY_IDX(costs, i, okey_day_cost_t);

            json_array_append_new(list, json_pack("[I, f]", (json_int_t)cost->day, cost->usd));
        }
        json_object_set_new(doc, project, list);
    }
    return doc;
}

static json_t *person_json(apr_pool_t *pool, const okey_person_spend_t *person)
{
    json_t *keys = json_array();
    int i;

    for (i = 0; person->keys && i < person->keys->nelts; i++) {
        json_array_append_new(keys,
                              key_spend_json(&APR_ARRAY_IDX(person->keys, i, okey_key_spend_t)));
    }
    return json_pack("{s:i, s:s, s:I, s:I, s:o, s:o, s:i}", "v", 1, "email", person->email,
                     "polled_at", (json_int_t)person->polled_at,
                     "since", (json_int_t)person->since, "keys", keys,
                     "days", days_json(pool, person->days), "live_keys", person->live_keys);
}

const char *okey_person_spend_text(apr_pool_t *pool, const okey_person_spend_t *person)
{
    return dump_owned(pool, person_json(pool, person));
}

const char *okey_spend_index_text(apr_pool_t *pool, apr_int64_t polled_at,
                                  const apr_array_header_t *people)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < people->nelts; i++) {
        okey_person_spend_t summary = *APR_ARRAY_IDX(people, i, okey_person_spend_t *);

        summary.keys = NULL;
        json_array_append_new(list, person_json(pool, &summary));
    }
    return dump_owned(pool, json_pack("{s:i, s:I, s:o}", "v", 1, "polled_at",
                                      (json_int_t)polled_at, "people", list));
}

static double real_of(const json_t *obj, const char *name)
{
    const json_t *value = json_object_get(obj, name);

    return json_is_number(value) ? json_number_value(value) : -1;
}

static void parse_key(const json_t *doc, apr_array_header_t *keys)
{
    okey_key_spend_t key;

    memset(&key, 0, sizeof(key));
    key.api_key_id = okey_json_str(doc, "id");
    key.live = json_is_true(json_object_get(doc, "live"));
    key.last_used_at = int_of(doc, "last_used_at", -1);
    key.requests = int_of(doc, "requests", -1);
    key.input_tokens = int_of(doc, "input_tokens", -1);
    key.output_tokens = int_of(doc, "output_tokens", -1);
    key.cost_usd = real_of(doc, "cost_usd");
    if (key.api_key_id && attribution_from(doc, &key.who)) {
        APR_ARRAY_PUSH(keys, okey_key_spend_t) = key;
    }
}

static apr_hash_t *parse_days(apr_pool_t *pool, const json_t *doc)
{
    apr_hash_t *days = apr_hash_make(pool);
    const char *project;
    const json_t *list;

    json_object_foreach((json_t *)doc, project, list) {
        apr_array_header_t *costs = apr_array_make(pool, 8, sizeof(okey_day_cost_t));
        const json_t *pair;
        size_t i;

        json_array_foreach(list, i, pair) {
            okey_day_cost_t cost = {json_integer_value(json_array_get(pair, 0)),
                                    json_number_value(json_array_get(pair, 1))};

            APR_ARRAY_PUSH(costs, okey_day_cost_t) = cost;
        }
        apr_hash_set(days, apr_pstrdup(pool, project), APR_HASH_KEY_STRING, costs);
    }
    return days;
}

static okey_person_spend_t *person_from(apr_pool_t *pool, const json_t *doc)
{
    okey_person_spend_t *person = NULL;
    const json_t *key;
    size_t i;

    if (doc && int_of(doc, "v", 0) == 1 && okey_json_str(doc, "email")) {
        person = apr_pcalloc(pool, sizeof(*person));
        person->email = okey_json_str(doc, "email");
        person->polled_at = int_of(doc, "polled_at", 0);
        person->since = int_of(doc, "since", 0);
        person->keys = apr_array_make(pool, 4, sizeof(okey_key_spend_t));
        json_array_foreach(json_object_get(doc, "keys"), i, key) {
            parse_key(key, person->keys);
        }
        person->days = parse_days(pool, json_object_get(doc, "days"));
        person->live_keys = (int)int_of(doc, "live_keys", 0);
    }
    return person;
}

okey_person_spend_t *okey_person_spend_parse(apr_pool_t *pool, const char *text)
{
    return person_from(pool, text ? okey_json_parse(pool, text, strlen(text), NULL) : NULL);
}

apr_array_header_t *okey_spend_index_parse(apr_pool_t *pool, const char *text,
                                           apr_int64_t *polled_at)
{
    json_t *doc = text ? okey_json_parse(pool, text, strlen(text), NULL) : NULL;
    apr_array_header_t *people = NULL;
    const json_t *entry;
    size_t i;

    *polled_at = 0;
    if (doc && int_of(doc, "v", 0) == 1) {
        people = apr_array_make(pool, 16, sizeof(okey_person_spend_t *));
        *polled_at = int_of(doc, "polled_at", 0);
        json_array_foreach(json_object_get(doc, "people"), i, entry) {
            okey_person_spend_t *person = person_from(pool, entry);

            if (person) {
                APR_ARRAY_PUSH(people, okey_person_spend_t *) = person;
            }
        }
    }
    return people;
}

static double sum_days(const apr_array_header_t *costs, apr_int64_t from)
{
    double usd = 0;
    int i;

    for (i = 0; costs && i < costs->nelts; i++) {
        const okey_day_cost_t *cost = &APR_ARRAY_IDX(costs, i, okey_day_cost_t);

        usd += cost->day >= from ? cost->usd : 0;
    }
    return usd;
}

double okey_spend_in_period(const okey_person_spend_t *person, const char *project_id,
                            okey_period_e period, apr_int64_t now)
{
    apr_int64_t from = okey_period_start(period, now);
    double usd = 0;
    apr_hash_index_t *hi;

    if (person && project_id) {
        usd = sum_days(apr_hash_get(person->days, project_id, APR_HASH_KEY_STRING), from);
    }
    for (hi = person && !project_id ? apr_hash_first(NULL, person->days) : NULL; hi;
         hi = apr_hash_next(hi)) {
        void *costs;

        apr_hash_this(hi, NULL, NULL, &costs);
        usd += sum_days(costs, from);
    }
    return usd;
}

int okey_spend_over(const okey_person_spend_t *person, const char *project_id,
                    const okey_budget_t *budget, apr_int64_t now)
{
    /* Costs are floating point: a cent's hundredth below is not over. */
    return budget->set &&
           okey_spend_in_period(person, project_id, budget->period, now) >=
               budget->amount - 0.00005;
}

const okey_key_spend_t *okey_spend_key(const okey_person_spend_t *person,
                                       const char *service_account_id)
{
    const okey_key_spend_t *found = NULL;
    int i;

    for (i = 0; person && person->keys && !found && i < person->keys->nelts; i++) {
        const okey_key_spend_t *key = &APR_ARRAY_IDX(person->keys, i, okey_key_spend_t);

        found = !strcmp(key->who.service_account_id, service_account_id) ? key : NULL;
    }
    return found;
}

void okey_spend_view(okey_spend_view_t *view, const okey_person_spend_t *person,
                     const char *project_id, const okey_budget_t *budget, apr_int64_t now)
{
    view->person = person;
    view->budget = budget;
    view->period = budget->set ? budget->period : OKEY_PERIOD_MONTH;
    view->amount_usd = okey_spend_in_period(person, project_id, view->period, now);
    view->resets_at = okey_period_next(view->period, now);
}

const char *okey_usd(apr_pool_t *pool, double usd)
{
    return usd >= 0.01 || usd == 0 ? apr_psprintf(pool, "$%.2f", usd)
                                   : apr_psprintf(pool, "$%.4f", usd);
}

int okey_spend_key_matches(const char *redacted, const char *pasted)
{
    const char *dots = redacted ? strstr(redacted, "...") : NULL;
    apr_size_t head = dots ? (apr_size_t)(dots - redacted) : 0;
    const char *tail = dots ? dots + 3 : NULL;
    apr_size_t tail_len = tail ? strlen(tail) : 0;
    apr_size_t len = pasted ? strlen(pasted) : 0;
    int matches = 0;

    if (dots && head >= 3 && tail_len >= 3 && len >= head + tail_len) {
        matches = !strcmp(redacted, pasted) ||
                  (len >= head + tail_len + 8 && !strncmp(pasted, redacted, head) &&
                   !strcmp(pasted + len - tail_len, tail));
    }
    return matches;
}
