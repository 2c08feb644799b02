/* One reap of a key server. */
#include "reap_run.h"
#include "figures.h"
#include "terms.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define FAILURE_EXAMPLES 3

typedef struct {
    const char *id;
    const char *email;
    apr_int64_t expires;
    apr_int64_t created_at;
    int unsure;          /* its creation got no clear answer */
    int revoked_by;      /* an okey_revoked_by_e for a live key; -1: expired */
    const char *name;    /* kept for live keys only */
    const char *project_id;
    int unclear_before;  /* a delete of it got no answer or a 5xx */
} victim_t;

/* What went wrong with deletes, for one summary line; allocated in the
 * reap's pool, which outlives every batch. */
typedef struct {
    apr_hash_t *by_status;       /* "500" -> count (int *) */
    apr_array_header_t *examples; /* of const char *, ids */
} failures_t;

void okey_reaper_init(okey_reaper_t *reaper, const okey_config_t *cfg,
                      okey_http_t *http, const okey_logger_t *logger,
                      volatile const int *cancel)
{
    memset(reaper, 0, sizeof(*reaper));
    reaper->cfg = cfg;
    reaper->api.http = http;
    reaper->api.api_base = cfg->api_base;
    reaper->api.management_key = cfg->management_key;
    reaper->api.cancel = cancel;
    reaper->logger = logger;
    reaper->parallel = OKEY_REAP_PARALLEL;
    reaper->backoff = apr_time_from_sec(1);
}

static int cancelled(const okey_reaper_t *reaper)
{
    return reaper->api.cancel && *reaper->api.cancel;
}

/* One project's listing. Victims are deleted a page at a time, so what a
 * reap holds is one page's victims, not every victim of the project. */
typedef struct {
    const okey_reaper_t *reaper;
    apr_pool_t *pool;            /* the listing's: live keys for the cap */
    apr_pool_t *batch_pool;      /* the victims gathered, and their deletes */
    apr_pool_t *next_pool;       /* where victims carried over go */
    apr_int64_t now;
    apr_array_header_t *victims; /* of victim_t, in batch_pool */
    int victim_count;
    okey_reap_summary_t *summary;
    apr_hash_t *live;            /* address -> array of okey_owned_key_t */
    const okey_terms_t *terms;   /* the project's */
    const char *project;
    const char *project_id;
    failures_t *failures;
    apr_hash_t *over_budget;     /* address -> "1" or "0", once looked up */
} listing_t;

/* Whether the owner of a live key is to lose it for spending their budget:
 * only where the project's terms say so, by what the last usage poll
 * found. */
static int over_budget(listing_t *listing, const char *email)
{
    const okey_terms_t *terms = listing->terms;
    const char *over = NULL;

    if (terms->revoke_over_budget && terms->budget.set && listing->reaper->ledger && email) {
        over = apr_hash_get(listing->over_budget, email, APR_HASH_KEY_STRING);
        if (!over) {
            okey_person_spend_t *person = okey_figures_person(listing->reaper->ledger,
                                                            listing->pool, email);

            over = okey_spend_over(person, listing->project_id, &terms->budget, listing->now)
                   ? "1" : "0";
            apr_hash_set(listing->over_budget, apr_pstrdup(listing->pool, email),
                         APR_HASH_KEY_STRING, over);
        }
    }
    return over && *over == '1';
}

/* Remembers a live key of ours, for the cap once the listing is done and
 * for the ledger. */
static void note_live(listing_t *listing, const victim_t *key)
{
    apr_array_header_t *keys = apr_hash_get(listing->live, key->email,
                                            APR_HASH_KEY_STRING);
    okey_owned_key_t *owned;

    if (!keys) {
        keys = apr_array_make(listing->pool, 2, sizeof(okey_owned_key_t));
        apr_hash_set(listing->live, apr_pstrdup(listing->pool, key->email),
                     APR_HASH_KEY_STRING, keys);
    }
    owned = apr_array_push(keys);
    owned->service_account_id = apr_pstrdup(listing->pool, key->id);
    owned->name = apr_pstrdup(listing->pool, key->name);
    owned->project_id = listing->project_id;
    owned->created_at = key->created_at;
    owned->expires = key->expires;
    owned->rank = okey_terms_rank(0, key->created_at);
}

/* The ledger's records of email's keys in the project being listed (none
 * without a ledger), and keys ranked as it ranked those, so that the
 * reaper's newest N are the sign-ins'. */
static apr_array_header_t *rank_as_recorded(listing_t *listing, const char *email,
                                            apr_array_header_t *keys)
{
    apr_array_header_t *recorded = NULL;
    int complete = 0;
    int i, j;

    if (listing->reaper->ledger) {
        okey_ledger_keys_of(listing->reaper->ledger, listing->pool, email,
                            listing->project_id, &recorded, &complete);
    }
    recorded = recorded ? recorded : apr_array_make(listing->pool, 1, sizeof(okey_owned_key_t));
    for (i = 0; i < recorded->nelts; i++) {
        const okey_owned_key_t *known = &APR_ARRAY_IDX(recorded, i, okey_owned_key_t);

        for (j = 0; j < keys->nelts; j++) {
            okey_owned_key_t *key = &APR_ARRAY_IDX(keys, j, okey_owned_key_t);

            if (!strcmp(key->service_account_id, known->service_account_id)) {
                key->rank = known->rank;
            }
        }
    }
    return recorded;
}

/* Whether one of keys, not among recorded, may still be on its way to its
 * sign-in's record: the cap of its owner is then that sign-in's to apply. */
static int settling(const listing_t *listing, const apr_array_header_t *keys,
                    const apr_array_header_t *recorded)
{
    int young = 0;
    int i;

    for (i = 0; i < keys->nelts && !young; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(keys, i, okey_owned_key_t);

        young = !okey_keys_held(recorded, key->service_account_id) &&
                okey_terms_rank_listed(key->created_at, listing->now,
                                       listing->reaper->cfg->timeout) == APR_INT64_MAX;
    }
    return young;
}

static void add_victim(listing_t *listing, const victim_t *victim)
{
    APR_ARRAY_PUSH(listing->victims, victim_t) = *victim;
    listing->victim_count++;
}

/* Each address's oldest live keys beyond the project's cap become victims;
 * the rest are what the cap's index holds. */
static void apply_cap(listing_t *listing)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(listing->pool, listing->live); hi; hi = apr_hash_next(hi)) {
        const char *email = apr_hash_this_key(hi);
        apr_array_header_t *keys = apr_hash_this_val(hi);
        apr_array_header_t *over;
        int i, j;

        /* Within the cap, or left to the sign-in still recording a key. */
        over = NULL;
        if (keys->nelts > listing->terms->cap && listing->terms->cap > 0 &&
            !settling(listing, keys, rank_as_recorded(listing, email, keys))) {
            over = okey_terms_over_cap(listing->pool, listing->terms->cap, keys, NULL);
        }

        for (i = 0; i < keys->nelts; i++) {
            const okey_owned_key_t *key = &APR_ARRAY_IDX(keys, i, okey_owned_key_t);
            int taken = 0;

            for (j = 0; over && j < over->nelts && !taken; j++) {
                taken = !strcmp(APR_ARRAY_IDX(over, j, okey_owned_key_t).service_account_id,
                                key->service_account_id);
            }
            if (taken) {
                victim_t victim = {key->service_account_id, email, key->expires,
                                   key->created_at, 0, OKEY_REVOKED_CAP, key->name,
                                   key->project_id};

                add_victim(listing, &victim);
            }
            else {
                APR_ARRAY_PUSH(listing->summary->live, okey_owned_key_t) = *key;
            }
        }
    }
}

/* Counts one listed account and judges it by its project's terms: a
 * victim (copied out of its page before the page's memory goes), a live
 * key for the cap, or nothing of ours. An account whose creation got no
 * answer is deleted whatever its name says. */
static void consider(void *baton, const json_t *account)
{
    listing_t *listing = baton;
    const json_t *created = json_object_get(account, "created_at");
    const char *name = okey_json_str(account, "name");
    const char *id = okey_json_str(account, "id");
    int *found = (name && listing->reaper->unsure)
                 ? apr_hash_get(listing->reaper->unsure, name, APR_HASH_KEY_STRING) : NULL;
    victim_t victim = {id, NULL, 0, 0, found != NULL, -1, name, NULL};
    okey_judgement_t verdict = {OKEY_KEY_FOREIGN, NULL, 0};

    listing->summary->listed++;
    if (found) {
        *found = 1;
    }
    if (id && name) {
        victim.created_at = okey_terms_created(
            json_is_integer(created) ? json_integer_value(created) : 0, listing->now);
        verdict = okey_terms_judge(listing->batch_pool, listing->terms, name,
                                   victim.created_at, listing->now);
        victim.id = apr_pstrdup(listing->batch_pool, id);
        victim.email = verdict.email;
        victim.expires = verdict.expires;
    }
    if (!id || !name) {
        victim.unsure = 0;
    }
    else if (victim.unsure || verdict.state == OKEY_KEY_EXPIRED ||
        verdict.state == OKEY_KEY_LEGACY_OLD) {
        victim.name = NULL;
        victim.email = victim.email ? victim.email : apr_pstrdup(listing->batch_pool, name);
        add_victim(listing, &victim);
    }
    else if (verdict.state == OKEY_KEY_DISALLOWED) {
        victim.revoked_by = OKEY_REVOKED_POLICY;
        add_victim(listing, &victim);
    }
    else if (verdict.state == OKEY_KEY_LIVE && over_budget(listing, verdict.email)) {
        victim.revoked_by = OKEY_REVOKED_BUDGET;
        add_victim(listing, &victim);
    }
    else if (verdict.state == OKEY_KEY_LIVE) {
        note_live(listing, &victim);
    }
}

static void audit_revoked(const okey_reaper_t *reaper, apr_pool_t *pool,
                          const victim_t *victim, const char *project,
                          const char *project_id)
{
    okey_log(reaper->logger, OKEY_LOG_NOTICE, pool,
             OKEY_LOGNO(305) "revoked key: service_account=%s email=%s project=%s "
             "(%s) expires=%s by=%s (%s)", victim->id, victim->email,
             project, project_id, okey_iso8601(pool, victim->expires),
             okey_revoked_names[victim->revoked_by],
             victim->revoked_by == OKEY_REVOKED_CAP
             ? "the address holds more keys than the cap"
             : victim->revoked_by == OKEY_REVOKED_BUDGET
             ? "the address is at or over its budget"
             : "the policy no longer allows the address");
}

/* One line per key this reap deleted; a key someone else deleted first is
 * not this reap's. */
static void audit(const okey_reaper_t *reaper, apr_pool_t *pool,
                  const victim_t *victim, const char *project, const char *project_id)
{
    if (victim->revoked_by >= 0) {
        audit_revoked(reaper, pool, victim, project, project_id);
    }
    else {
        okey_log(reaper->logger, OKEY_LOG_NOTICE, pool,
                 OKEY_LOGNO(301) "reaped key: service_account=%s email=%s project=%s "
                 "(%s) expires=%s%s", victim->id, victim->email, project,
                 project_id,
                 victim->expires ? okey_iso8601(pool, victim->expires) : "(legacy)",
                 victim->unsure ? " (its creation got no clear answer; nobody holds its key)"
                                : "");
    }
}

/* Waits up to delay, in slices, unless the reaper is cancelled. */
static void pause_unless_cancelled(const okey_reaper_t *reaper,
                                   apr_interval_time_t delay)
{
    apr_time_t until = apr_time_now() + delay;

    while (!cancelled(reaper) && apr_time_now() < until) {
        apr_sleep(apr_time_from_msec(50));
    }
}

static void note_failure(failures_t *failures, const victim_t *victim,
                         const okey_openai_deleted_t *result)
{
    apr_pool_t *pool = apr_hash_pool_get(failures->by_status);
    const char *key = result->status ? apr_itoa(pool, result->status) : "no answer";
    int *count = apr_hash_get(failures->by_status, key, APR_HASH_KEY_STRING);

    if (!count) {
        count = apr_pcalloc(pool, sizeof(*count));
        apr_hash_set(failures->by_status, key, APR_HASH_KEY_STRING, count);
    }
    (*count)++;
    if (failures->examples->nelts < FAILURE_EXAMPLES) {
        APR_ARRAY_PUSH(failures->examples, const char *) = apr_pstrdup(pool, victim->id);
    }
}

static void count_reaped(okey_reap_summary_t *summary, const char *project, int reaped)
{
    int *count = apr_hash_get(summary->reaped_by_project, project, APR_HASH_KEY_STRING);

    if (!count && reaped) {
        count = apr_pcalloc(apr_hash_pool_get(summary->reaped_by_project), sizeof(*count));
        apr_hash_set(summary->reaped_by_project, project, APR_HASH_KEY_STRING, count);
    }
    if (reaped) {
        (*count)++;
    }
}

/* Deletes victims in rounds: retries as the policy says; a 404 ends a
 * victim's deletes, but someone else deleted it, so it is not counted. What
 * a cancelled reap never tried is skipped, not failed. */
static void delete_victims(const okey_reaper_t *reaper, apr_pool_t *pool,
                           const char *project, const char *project_id,
                           apr_array_header_t *victims,
                           failures_t *failures, okey_reap_summary_t *summary)
{
    int attempt;

    for (attempt = 1; victims->nelts > 0 && !cancelled(reaper); attempt++) {
        int n = victims->nelts;
        const char **ids = apr_pcalloc(pool, sizeof(*ids) * (apr_size_t)n);
        okey_openai_deleted_t *results = apr_pcalloc(pool, sizeof(*results) * (apr_size_t)n);
        apr_array_header_t *retry = apr_array_make(pool, 4, sizeof(victim_t));
        apr_int64_t retry_after = -1;
        int i;

        for (i = 0; i < n; i++) {
            ids[i] = APR_ARRAY_IDX(victims, i, victim_t).id;
        }
        okey_openai_delete_accounts(&reaper->api, pool, project_id, ids, n,
                                    reaper->parallel, results);
        for (i = 0; i < n; i++) {
            const victim_t *victim = &APR_ARRAY_IDX(victims, i, victim_t);
            okey_delete_outcome_e outcome = okey_reap_classify(results[i].status, attempt,
                                                               victim->unclear_before);

            if (cancelled(reaper) && results[i].status == 0) {
                summary->skipped++;
            }
            else if (outcome == OKEY_DELETE_DONE) {
                count_reaped(summary, project, victim->revoked_by < 0);
                summary->deleted += victim->revoked_by < 0;
                summary->revoked_cap += victim->revoked_by == OKEY_REVOKED_CAP;
                summary->revoked_policy += victim->revoked_by == OKEY_REVOKED_POLICY;
                summary->revoked_budget += victim->revoked_by == OKEY_REVOKED_BUDGET;
                audit(reaper, pool, victim, project, project_id);
            }
            else if (outcome == OKEY_DELETE_GONE) {
                okey_log(reaper->logger, OKEY_LOG_INFO, pool,
                         OKEY_LOGNO(306) "service account %s (%s) was already gone",
                         victim->id, victim->email);
            }
            else if (outcome == OKEY_DELETE_RETRY) {
                victim_t *again = apr_array_push(retry);

                *again = *victim;
                again->unclear_before |= okey_reap_delete_unclear(results[i].status);
                retry_after = results[i].retry_after > retry_after
                              ? results[i].retry_after : retry_after;
            }
            else {
                summary->failed++;
                note_failure(failures, victim, &results[i]);
                okey_log(reaper->logger, OKEY_LOG_DEBUG, pool,
                         OKEY_LOGNO(302) "could not delete service account %s (%s): %s",
                         victim->id, victim->email, results[i].error);
            }
        }
        victims = retry;
        if (victims->nelts > 0) {
            apr_interval_time_t wait = okey_reap_backoff(reaper->backoff, attempt,
                                                         retry_after);

            okey_log(reaper->logger, OKEY_LOG_INFO, pool,
                     OKEY_LOGNO(303) "retrying %d deletes in %.1f s", victims->nelts,
                     (double)wait / APR_USEC_PER_SEC);
            pause_unless_cancelled(reaper, wait);
        }
    }
    summary->skipped += victims->nelts;
}

/* A copy of victim in pool, to outlive the batch it was found in. */
static victim_t carried(apr_pool_t *pool, const victim_t *victim)
{
    victim_t copy = *victim;

    copy.id = apr_pstrdup(pool, victim->id);
    copy.email = apr_pstrdup(pool, victim->email);
    copy.name = victim->name ? apr_pstrdup(pool, victim->name) : NULL;
    return copy;
}

/* Deletes the victims gathered so far, but for those carried to the next
 * batch: the listing's cursor (an account deleted before the next page is
 * asked for could lose the place) and, while more pages follow, the last
 * part of a round, so that deletes keep reaper->parallel in flight. */
static void delete_batch(listing_t *listing, const char *cursor, int more)
{
    apr_array_header_t *victims = listing->victims;
    apr_array_header_t *now = apr_array_make(listing->batch_pool, victims->nelts + 1,
                                             sizeof(victim_t));
    apr_array_header_t *later = apr_array_make(listing->next_pool, 4, sizeof(victim_t));
    int whole = more ? victims->nelts - victims->nelts % listing->reaper->parallel
                     : victims->nelts;
    apr_pool_t *spent = listing->batch_pool;
    int i;

    for (i = 0; i < victims->nelts; i++) {
        const victim_t *victim = &APR_ARRAY_IDX(victims, i, victim_t);

        if (i >= whole || (cursor && !strcmp(victim->id, cursor))) {
            APR_ARRAY_PUSH(later, victim_t) = carried(listing->next_pool, victim);
        }
        else {
            APR_ARRAY_PUSH(now, victim_t) = *victim;
        }
    }
    delete_victims(listing->reaper, spent, listing->project, listing->project_id, now,
                   listing->failures, listing->summary);
    apr_pool_clear(spent);
    listing->batch_pool = listing->next_pool;
    listing->next_pool = spent;
    listing->victims = later;
}

/* Lists every service account of a project and deletes those it should,
 * a page at a time; the cap's victims once every page is read. When the
 * listing fails, what is not yet deleted stays. */
static okey_err_t *reap_project(const okey_reaper_t *reaper, apr_pool_t *pool,
                                const okey_terms_t *terms, const char *project_id,
                                apr_int64_t now, failures_t *failures,
                                okey_reap_summary_t *summary)
{
    listing_t listing = {reaper, pool, NULL, NULL, now, NULL, 0, summary,
                         apr_hash_make(pool), terms, terms->project, project_id, failures,
                         apr_hash_make(pool)};
    okey_openai_pager_t *pager = okey_openai_pager(
        &reaper->api, pool, okey_openai_accounts_path(pool, project_id),
        OKEY_ENDPOINT_SERVICE_ACCOUNTS, "service account list");
    const okey_openai_page_t *page = NULL;
    int listed = summary->listed;
    okey_err_t *err;

    apr_pool_create(&listing.batch_pool, pool);
    apr_pool_create(&listing.next_pool, pool);
    listing.victims = apr_array_make(listing.batch_pool, 16, sizeof(victim_t));
    do {
        const json_t *item;
        size_t i;

        err = okey_openai_pager_next(pager, &page);
        json_array_foreach(page ? page->data : NULL, i, item) {
            consider(&listing, item);
        }
        if (page && page->has_more) {
            delete_batch(&listing, page->last_id, 1);
        }
    } while (!err && page && page->has_more && !cancelled(reaper));
    if (!err && !cancelled(reaper)) {
        apply_cap(&listing);
        summary->projects++;
    }
    /* A list that broke off is not acted on further than it was. */
    if (err) {
        summary->skipped += listing.victims->nelts;
    }
    else {
        delete_batch(&listing, NULL, 0);
    }
    summary->kept += err ? 0 : summary->listed - listed - listing.victim_count;
    return err;
}

static void log_failures(const okey_reaper_t *reaper, apr_pool_t *pool,
                         const failures_t *failures, int failed)
{
    const char *counts = "";
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(pool, failures->by_status); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *count;

        apr_hash_this(hi, &key, NULL, &count);
        counts = apr_psprintf(pool, "%s%s%s: %d", counts, *counts ? ", " : "",
                              (const char *)key, *(int *)count);
    }
    if (failed) {
        okey_log(reaper->logger, OKEY_LOG_ERR, pool,
                 OKEY_LOGNO(304) "could not delete %d service accounts (by status: %s), "
                 "e.g. %s", failed, counts,
                 apr_array_pstrcat(pool, failures->examples, ','));
    }
}

/* What /status may say of a failed reap: a class, never upstream text. */
static const char *error_class(apr_pool_t *pool, const okey_err_t *err)
{
    return err->upstream_status ? apr_psprintf(pool, "upstream answered %d",
                                               err->upstream_status)
           : (err->status == 504 ? "upstream timeout"
              : (strstr(err->log_msg, "paging") ? "upstream paging broken"
                 : "upstream unreachable or malformed"));
}

/* Terms for a project that two entries name, one by its name and one by
 * its id: judged at expiry only, until the configuration names it one way. */
static okey_terms_t *both_terms(const okey_reaper_t *reaper, apr_pool_t *pool,
                                const okey_terms_t *first, const okey_terms_t *second,
                                const char *project_id)
{
    okey_terms_t *both = apr_pmemdup(pool, first, sizeof(*first));

    both->issuers = apr_array_copy(pool, first->issuers);
    okey_terms_merge(pool, both, second, apr_array_make(pool, 1, sizeof(const char *)));
    both->cap = 0;
    both->revoke_disallowed = 0;
    both->max_lifetime = first->max_lifetime > second->max_lifetime ? first->max_lifetime
                                                                      : second->max_lifetime;
    okey_log(reaper->logger, OKEY_LOG_ERR, pool, OKEY_LOGNO(307) "project %s is named both "
             "as %s and as %s: name it one way everywhere; until then its keys are reaped "
             "at their expiry, and neither cap nor policy applies there", project_id,
             first->project, second->project);
    return both;
}

/* The ids of every project the server's terms name, each once, with the
 * terms to judge its keys by. */
okey_err_t *okey_reap_projects(const okey_reaper_t *reaper, apr_pool_t *pool,
                               apr_array_header_t *ids, apr_array_header_t *terms_of)
{
    apr_array_header_t *names = okey_terms_projects(pool, reaper->cfg);
    apr_hash_t *seen = apr_hash_make(pool);   /* id -> its index (int *) */
    okey_err_t *err = NULL;
    int i, j;

    for (i = 0; !err && i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        const okey_terms_t *terms = okey_terms_for(pool, reaper->cfg, name);
        apr_array_header_t *found = NULL;

        if (okey_keys_is_project_id(name)) {
            found = apr_array_make(pool, 1, sizeof(const char *));
            APR_ARRAY_PUSH(found, const char *) = name;
        }
        else {
            err = okey_openai_find_projects(&reaper->api, pool, name, &found);
        }
        for (j = 0; !err && j < found->nelts; j++) {
            const char *id = APR_ARRAY_IDX(found, j, const char *);
            int *at = apr_hash_get(seen, id, APR_HASH_KEY_STRING);

            if (at) {
                APR_ARRAY_IDX(terms_of, *at, const okey_terms_t *) = both_terms(
                    reaper, pool, APR_ARRAY_IDX(terms_of, *at, const okey_terms_t *), terms, id);
            }
            else {
                at = apr_palloc(pool, sizeof(*at));
                *at = ids->nelts;
                APR_ARRAY_PUSH(ids, const char *) = id;
                APR_ARRAY_PUSH(terms_of, const okey_terms_t *) = terms;
                apr_hash_set(seen, id, APR_HASH_KEY_STRING, at);
            }
        }
    }
    return err;
}

void okey_reap(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
               okey_reap_summary_t *summary)
{
    apr_time_t started = apr_time_now();
    failures_t failures = {apr_hash_make(pool), apr_array_make(pool, 3, sizeof(char *))};
    apr_array_header_t *projects = apr_array_make(pool, 2, sizeof(const char *));
    apr_array_header_t *terms_of = apr_array_make(pool, 2, sizeof(const okey_terms_t *));
    okey_err_t *err;
    int i;

    memset(summary, 0, sizeof(*summary));
    summary->live = apr_array_make(pool, 16, sizeof(okey_owned_key_t));
    summary->reaped_by_project = apr_hash_make(pool);
    err = okey_reap_projects(reaper, pool, projects, terms_of);
    /* Every active project of each name: racing servers may have made two. */
    for (i = 0; !err && i < projects->nelts && !cancelled(reaper); i++) {
        err = reap_project(reaper, pool, APR_ARRAY_IDX(terms_of, i, const okey_terms_t *),
                           APR_ARRAY_IDX(projects, i, const char *), now, &failures,
                           summary);
    }
    log_failures(reaper, pool, &failures, summary->failed);
    summary->cancelled = cancelled(reaper);
    summary->error = summary->cancelled ? "cancelled" : (err ? err->log_msg : NULL);
    summary->error_class = summary->cancelled ? "cancelled"
                           : err ? error_class(pool, err)
                           : (summary->failed ? "some deletes failed" : NULL);
    summary->seconds = (double)(apr_time_now() - started) / APR_USEC_PER_SEC;
}
