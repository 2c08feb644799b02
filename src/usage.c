/* The usage poll. */
#include "usage.h"

#include <apr_strings.h>
#include <string.h>

/* What one poll gathers before it is stored. */
typedef struct {
    apr_pool_t *pool;
    apr_int64_t now;
    apr_hash_t *attributions;  /* key id -> okey_attribution_t *, stored */
    apr_hash_t *keys;          /* key id -> okey_key_spend_t *, of ours */
    apr_hash_t *key_days;      /* key id -> apr_array_header_t of okey_day_cost_t */
    apr_hash_t *fresh;         /* key id -> attribution text to store */
    const okey_terms_t *terms; /* of the project being listed */
    const char *project_id;
} poll_t;

/* The stored attributions, or NULL when the ledger did not answer: a poll
 * without them would lose what deleted keys cost. */
static apr_hash_t *stored_attributions(okey_ledger_t *ledger, apr_pool_t *pool)
{
    apr_hash_t *entries = NULL;
    int answered = okey_ledger_store_all(ledger, pool, OKEY_STORE_KEYS, &entries);

    return answered ? okey_attributions_parse(pool, entries) : NULL;
}

static okey_key_spend_t *key_entry(poll_t *poll, const char *id, const okey_attribution_t *who)
{
    okey_key_spend_t *key = apr_hash_get(poll->keys, id, APR_HASH_KEY_STRING);

    if (!key && who) {
        key = apr_pcalloc(poll->pool, sizeof(*key));
        key->api_key_id = apr_pstrdup(poll->pool, id);
        key->who = *who;
        key->last_used_at = -1;
        apr_hash_set(poll->keys, key->api_key_id, APR_HASH_KEY_STRING, key);
    }
    return key;
}

/* Whether stored says what a listing does of a live key: a listing is the
 * truth of whose a live key is, and an attribution it contradicts (or one
 * made before the key's redacted form was known) is replaced. */
static int same_attribution(const okey_attribution_t *stored, const okey_attribution_t *listed)
{
    return stored &&
           (stored->redacted ? listed->redacted && !strcmp(stored->redacted, listed->redacted)
                             : !listed->redacted) &&
           !strcmp(stored->service_account_id, listed->service_account_id) &&
           !strcmp(stored->email, listed->email) &&
           !strcmp(stored->project_id, listed->project_id);
}

/* One item of a project's API-key listing: a key of one of our service
 * accounts is attributed to the owner its account's name gives. */
static void note_listed_key(void *baton, const json_t *item)
{
    poll_t *poll = baton;
    const json_t *owner = json_object_get(item, "owner");
    const json_t *account = json_object_get(owner, "service_account");
    const char *id = okey_json_str(item, "id");
    const char *name = okey_json_str(account, "name");
    const json_t *created = json_object_get(account, "created_at");
    const json_t *used = json_object_get(item, "last_used_at");
    okey_judgement_t judged;
    okey_attribution_t who;
    okey_key_spend_t *key;

    if (!id || !name || !okey_json_str(account, "id") ||
        strcmp(okey_json_str(owner, "type") ? okey_json_str(owner, "type") : "",
               "service_account")) {
        return;
    }
    judged = okey_terms_judge(poll->pool, poll->terms, name,
                              json_is_integer(created) ? json_integer_value(created) : 0,
                              poll->now);
    if (judged.state == OKEY_KEY_FOREIGN || !judged.email) {
        return;
    }
    who.service_account_id = apr_pstrdup(poll->pool, okey_json_str(account, "id"));
    who.email = judged.email;
    who.project_id = poll->project_id;
    who.redacted = apr_pstrdup(poll->pool, okey_json_str(item, "redacted_value"));
    who.created_at = json_is_integer(created) ? json_integer_value(created) : 0;
    who.expires = judged.expires > 0 ? judged.expires : poll->now;
    key = key_entry(poll, id, &who);
    key->who = who;
    key->live = 1;
    key->last_used_at = json_is_integer(used) ? json_integer_value(used) : 0;
    if (!same_attribution(apr_hash_get(poll->attributions, id, APR_HASH_KEY_STRING), &who)) {
        apr_hash_set(poll->fresh, key->api_key_id, APR_HASH_KEY_STRING,
                     okey_attribution_text(poll->pool, &who));
        apr_hash_set(poll->attributions, key->api_key_id, APR_HASH_KEY_STRING,
                     apr_pmemdup(poll->pool, &who, sizeof(who)));
    }
}

/* The key a usage or cost result names, when it is one of ours. */
static okey_key_spend_t *result_key(poll_t *poll, const json_t *result)
{
    const char *id = okey_json_str(result, "api_key_id");

    return id ? key_entry(poll, id, apr_hash_get(poll->attributions, id, APR_HASH_KEY_STRING))
              : NULL;
}

static apr_int64_t figure(const json_t *result, const char *name)
{
    const json_t *value = json_object_get(result, name);

    return json_is_integer(value) ? json_integer_value(value) : 0;
}

static void add_figure(apr_int64_t *total, apr_int64_t more)
{
    *total = (*total < 0 ? 0 : *total) + more;
}

static void note_usage(void *baton, apr_int64_t start_time, const json_t *result)
{
    okey_key_spend_t *key = result_key(baton, result);

    (void)start_time;
    if (key) {
        add_figure(&key->requests, figure(result, "num_model_requests"));
        add_figure(&key->input_tokens, figure(result, "input_tokens"));
        add_figure(&key->output_tokens, figure(result, "output_tokens"));
    }
}

static void add_day(apr_pool_t *pool, apr_hash_t *days, const char *id, apr_int64_t day,
                    double usd)
{
    apr_array_header_t *costs = apr_hash_get(days, id, APR_HASH_KEY_STRING);
    okey_day_cost_t *same = NULL;
    int i;

    if (!costs) {
        costs = apr_array_make(pool, 8, sizeof(okey_day_cost_t));
        apr_hash_set(days, id, APR_HASH_KEY_STRING, costs);
    }
    /* One entry per day: a person's keys, and a project's, add to it. */
    for (i = 0; !same && i < costs->nelts; i++) {
        okey_day_cost_t *cost = &APR_ARRAY_IDX(costs, i, okey_day_cost_t);

        same = cost->day == day ? cost : NULL;
    }
    if (same) {
        same->usd += usd;
    }
    else {
        okey_day_cost_t cost = {day, usd};

        APR_ARRAY_PUSH(costs, okey_day_cost_t) = cost;
    }
}

static void note_cost(void *baton, apr_int64_t start_time, const json_t *result)
{
    poll_t *poll = baton;
    okey_key_spend_t *key = result_key(poll, result);
    const json_t *value = json_object_get(json_object_get(result, "amount"), "value");
    double usd = json_is_number(value) ? json_number_value(value) : 0;

    if (key && usd >= 0) {
        key->cost_usd = (key->cost_usd < 0 ? 0 : key->cost_usd) + usd;
        add_day(poll->pool, poll->key_days, key->api_key_id,
                start_time - ((start_time % 86400) + 86400) % 86400, usd);
    }
}

/* A report's query: the window, daily buckets, grouped by key and project,
 * for the projects polled. */
static const char *report_path(apr_pool_t *pool, const char *endpoint, apr_int64_t since,
                               int limit, const apr_array_header_t *ids)
{
    const char *path = apr_psprintf(pool, "%s?start_time=%" APR_INT64_T_FMT "&bucket_width=1d"
                                    "&group_by=api_key_id&group_by=project_id&limit=%d",
                                    endpoint, since, limit);
    int i;

    for (i = 0; i < ids->nelts; i++) {
        path = apr_pstrcat(pool, path, "&project_ids=",
                           okey_form_escape(pool, APR_ARRAY_IDX(ids, i, const char *)), NULL);
    }
    return path;
}

static okey_err_t *list_keys(const okey_reaper_t *reaper, poll_t *poll,
                             const apr_array_header_t *ids, const apr_array_header_t *terms_of)
{
    okey_err_t *err = NULL;
    int i;

    for (i = 0; !err && i < ids->nelts; i++) {
        poll->project_id = APR_ARRAY_IDX(ids, i, const char *);
        poll->terms = APR_ARRAY_IDX(terms_of, i, const okey_terms_t *);
        err = okey_openai_each(&reaper->api, poll->pool,
                               apr_pstrcat(poll->pool, "/organization/projects/",
                                           okey_form_escape(poll->pool, poll->project_id),
                                           "/api_keys?owner_project_access=any", NULL),
                               OKEY_ENDPOINT_USAGE, "API-key listing", note_listed_key, poll);
    }
    return err;
}

/* The documents to store: one per person, the fleet's totals, the index. */
static apr_hash_t *documents(poll_t *poll, apr_int64_t since, okey_usage_report_t *report)
{
    apr_pool_t *pool = poll->pool;
    apr_hash_t *people = apr_hash_make(pool);  /* email -> okey_person_spend_t * */
    apr_hash_t *totals = apr_hash_make(pool);  /* project -> days */
    apr_hash_t *docs = apr_hash_make(pool);
    okey_person_spend_t fleet = {"", poll->now, since, NULL, totals, 0};
    apr_array_header_t *index = apr_array_make(pool, 64, sizeof(okey_person_spend_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(pool, poll->keys); hi; hi = apr_hash_next(hi)) {
        void *value;
        okey_key_spend_t *key;
        okey_person_spend_t *person;
        apr_array_header_t *costs;
        int i;

        apr_hash_this(hi, NULL, NULL, &value);
        key = value;
        if (!key->live && key->cost_usd < 0 && key->requests < 0) {
            continue;   /* attributed, but neither listed nor reported */
        }
        report->keys++;
        person = apr_hash_get(people, key->who.email, APR_HASH_KEY_STRING);
        if (!person) {
            person = apr_pcalloc(pool, sizeof(*person));
            person->email = key->who.email;
            person->polled_at = poll->now;
            person->since = since;
            person->keys = apr_array_make(pool, 2, sizeof(okey_key_spend_t));
            person->days = apr_hash_make(pool);
            apr_hash_set(people, person->email, APR_HASH_KEY_STRING, person);
        }
        APR_ARRAY_PUSH(person->keys, okey_key_spend_t) = *key;
        costs = apr_hash_get(poll->key_days, key->api_key_id, APR_HASH_KEY_STRING);
        for (i = 0; costs && i < costs->nelts; i++) {
            const okey_day_cost_t *cost = &APR_ARRAY_IDX(costs, i, okey_day_cost_t);

            add_day(pool, person->days, key->who.project_id, cost->day, cost->usd);
            add_day(pool, totals, key->who.project_id, cost->day, cost->usd);
        }
    }
    for (hi = apr_hash_first(pool, people); hi; hi = apr_hash_next(hi)) {
        void *value;
        okey_person_spend_t *person;
        int i;

        apr_hash_this(hi, NULL, NULL, &value);
        person = value;
        for (i = 0; i < person->keys->nelts; i++) {
            person->live_keys += APR_ARRAY_IDX(person->keys, i, okey_key_spend_t).live;
        }
        APR_ARRAY_PUSH(index, okey_person_spend_t *) = person;
        apr_hash_set(docs, okey_figures_name(pool, person->email), APR_HASH_KEY_STRING,
                     okey_person_spend_text(pool, person));
        report->people++;
    }
    apr_hash_set(docs, OKEY_FIGURES_PROJECTS, APR_HASH_KEY_STRING,
                 okey_person_spend_text(pool, &fleet));
    apr_hash_set(docs, OKEY_FIGURES_INDEX, APR_HASH_KEY_STRING,
                 okey_spend_index_text(pool, poll->now, index));
    return docs;
}

/* Records attributions first seen, and drops those kept long enough. */
static void keep_attributions(okey_ledger_t *ledger, poll_t *poll)
{
    apr_hash_t *stale = apr_hash_make(poll->pool);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(poll->pool, poll->fresh); hi; hi = apr_hash_next(hi)) {
        const void *id;
        void *text;

        apr_hash_this(hi, &id, NULL, &text);
        okey_ledger_store_put(ledger, OKEY_STORE_KEYS, id, text);
    }
    for (hi = apr_hash_first(poll->pool, poll->attributions); hi; hi = apr_hash_next(hi)) {
        const void *id;
        void *who;

        apr_hash_this(hi, &id, NULL, &who);
        if (((okey_attribution_t *)who)->expires + OKEY_SPEND_KEEP < poll->now) {
            apr_hash_set(stale, id, APR_HASH_KEY_STRING, "");
        }
    }
    if (apr_hash_count(stale)) {
        okey_ledger_store_drop(ledger, OKEY_STORE_KEYS, stale);
    }
}

void okey_usage_poll(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
                     okey_usage_report_t *report)
{
    apr_int64_t since = okey_spend_since(now);
    apr_array_header_t *ids = apr_array_make(pool, 2, sizeof(const char *));
    apr_array_header_t *terms_of = apr_array_make(pool, 2, sizeof(const okey_terms_t *));
    poll_t poll = {pool, now, stored_attributions(reaper->ledger, pool), apr_hash_make(pool),
                   apr_hash_make(pool), apr_hash_make(pool), NULL, NULL};
    okey_err_t *err = !poll.attributions
                      ? okey_err_make(pool, 502, NULL, "the ledger did not give the keys' "
                                      "attributions")
                      : okey_reap_projects(reaper, pool, ids, terms_of);

    memset(report, 0, sizeof(*report));
    report->projects = ids->nelts;
    if (!err) {
        err = list_keys(reaper, &poll, ids, terms_of);
    }
    if (!err && ids->nelts) {
        err = okey_openai_buckets(&reaper->api, pool,
                                  report_path(pool, "/organization/costs", since, 180, ids),
                                  "costs", note_cost, &poll);
    }
    if (!err && ids->nelts) {
        err = okey_openai_buckets(&reaper->api, pool,
                                  report_path(pool, "/organization/usage/completions", since,
                                              31, ids),
                                  "usage", note_usage, &poll);
    }
    if (!err) {
        keep_attributions(reaper->ledger, &poll);
        if (!okey_ledger_store_replace(reaper->ledger, OKEY_STORE_SPEND,
                                       documents(&poll, since, report))) {
            report->error = "the ledger did not take the figures";
        }
    }
    else {
        report->error = err->log_msg;
    }
}
