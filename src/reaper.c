/* Reaping expired keys. */
#include "reaper.h"

#include <apr_strings.h>
#include <apr_time.h>
#include <string.h>

typedef struct {
    const char *id;
    const char *email;
    apr_int64_t expires;
} victim_t;

/* The Go program's names: an address, and not a malformed one of ours. */
static int bare_address(const char *name)
{
    const char *at = strchr(name, '@');

    return at && at != name && at[1] && !strchr(at + 1, '@') &&
           !strpbrk(name, " \t\r\n\"<>,;:") &&
           strncmp(name, OKEY_KEYS_NAME_PREFIX, strlen(OKEY_KEYS_NAME_PREFIX)) != 0;
}

okey_reap_verdict_e okey_reap_decide(apr_pool_t *pool, const char *name,
                                     apr_int64_t created_at, apr_int64_t now,
                                     apr_int64_t expiration, int reap_legacy,
                                     apr_int64_t *expires, const char **email)
{
    /* created_at in the future says nothing: only a passed one counts. */
    int old = created_at > 0 && created_at <= now && created_at + expiration <= now;
    okey_reap_verdict_e verdict = OKEY_REAP_KEEP;

    *expires = 0;
    *email = NULL;
    if (okey_keys_parse_name(pool, name, expires, email)) {
        verdict = (*expires <= now || old) ? OKEY_REAP_EXPIRED : OKEY_REAP_KEEP;
    }
    else if (reap_legacy && bare_address(name)) {
        *email = name;
        verdict = old ? OKEY_REAP_LEGACY : OKEY_REAP_KEEP;
    }
    return verdict;
}

void okey_reaper_init(okey_reaper_t *reaper, const okey_config_t *cfg,
                      okey_http_t *http, const okey_logger_t *logger,
                      volatile const int *cancel)
{
    memset(reaper, 0, sizeof(*reaper));
    reaper->cfg = cfg;
    reaper->api.http = http;
    reaper->api.api_base = cfg->api_base;
    reaper->api.management_key = cfg->management_key;
    reaper->logger = logger;
    reaper->parallel = OKEY_REAP_PARALLEL;
    reaper->backoff = apr_time_from_sec(1);
    reaper->cancel = cancel;
}

static int cancelled(const okey_reaper_t *reaper)
{
    return reaper->cancel && *reaper->cancel;
}

static const char *accounts_path(apr_pool_t *pool, const char *project_id)
{
    return apr_pstrcat(pool, "/organization/projects/",
                       okey_form_escape(pool, project_id), "/service_accounts",
                       NULL);
}

static okey_err_t *list_page(const okey_reaper_t *reaper, apr_pool_t *pool,
                             const char *project_id, const char *after,
                             okey_openai_page_t *page)
{
    okey_http_request_t req = {"GET", NULL, NULL, NULL, NULL, 0};
    okey_http_response_t resp;
    okey_err_t *err;

    req.url = apr_psprintf(pool, "%s%s?limit=%d%s%s", reaper->api.api_base,
                           accounts_path(pool, project_id), OKEY_OPENAI_PAGE_LIMIT,
                           after ? "&after=" : "",
                           after ? okey_form_escape(pool, after) : "");
    req.authorization = apr_pstrcat(pool, "Bearer ", reaper->api.management_key, NULL);
    err = okey_http_perform(reaper->api.http, pool, &req, &resp);
    if (!err && resp.status != 200) {
        err = okey_openai_status_error(pool, "service account list", &resp);
    }
    if (!err) {
        err = okey_openai_page_parse(pool, resp.body, resp.body_len, page);
    }
    return err;
}

/* Lists every service account of the project; those to delete go to
 * victims. Listing completes before any delete so no cursor is lost. */
static okey_err_t *list_victims(const okey_reaper_t *reaper, apr_pool_t *pool,
                                const char *project_id, apr_int64_t now,
                                apr_array_header_t *victims,
                                okey_reap_summary_t *summary)
{
    okey_openai_page_t page = {NULL, NULL, 1};
    const char *after = NULL;
    okey_err_t *err = NULL;

    while (!err && page.has_more && !cancelled(reaper)) {
        const json_t *account;
        size_t i;

        err = list_page(reaper, pool, project_id, after, &page);
        json_array_foreach(err ? NULL : page.data, i, account) {
            const json_t *created = json_object_get(account, "created_at");
            const char *name = okey_json_str(account, "name");
            const char *id = okey_json_str(account, "id");
            victim_t victim = {id, NULL, 0};

            summary->listed++;
            if (id && name &&
                okey_reap_decide(pool, name,
                                 json_is_integer(created) ? json_integer_value(created) : 0,
                                 now, reaper->cfg->expiration, reaper->cfg->reap_legacy,
                                 &victim.expires, &victim.email) != OKEY_REAP_KEEP) {
                victim.id = apr_pstrdup(pool, id);
                victim.email = apr_pstrdup(pool, victim.email);
                APR_ARRAY_PUSH(victims, victim_t) = victim;
            }
        }
        after = err ? NULL : page.last_id;
        page.has_more = page.has_more && after;
    }
    return err;
}

static void audit(const okey_reaper_t *reaper, apr_pool_t *pool,
                  const victim_t *victim, const char *project_id, int status)
{
    okey_log(reaper->logger, OKEY_LOG_NOTICE, pool,
             "reaped key: service_account=%s email=%s project=%s (%s) expires=%s%s",
             victim->id, victim->email, reaper->cfg->project, project_id,
             victim->expires ? okey_iso8601(pool, victim->expires) : "(legacy)",
             status == 404 ? " (already gone)" : "");
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

/* Deletes victims in rounds: 429 and 5xx (and transport failures) are
 * retried after a backoff that honours Retry-After; 404 counts as done. */
static void delete_victims(const okey_reaper_t *reaper, apr_pool_t *pool,
                           const char *project_id, apr_array_header_t *victims,
                           okey_reap_summary_t *summary)
{
    apr_interval_time_t backoff = reaper->backoff;
    int attempt;

    for (attempt = 1; victims->nelts > 0 && !cancelled(reaper); attempt++) {
        int n = victims->nelts;
        okey_http_request_t *reqs = apr_pcalloc(pool, sizeof(*reqs) * n);
        okey_http_response_t *resps = apr_pcalloc(pool, sizeof(*resps) * n);
        okey_err_t **errs = apr_pcalloc(pool, sizeof(*errs) * n);
        apr_array_header_t *retry = apr_array_make(pool, 4, sizeof(victim_t));
        apr_interval_time_t wait = backoff;
        int i;

        for (i = 0; i < n; i++) {
            reqs[i].method = "DELETE";
            reqs[i].url = apr_pstrcat(pool, reaper->api.api_base,
                                      accounts_path(pool, project_id), "/",
                                      okey_form_escape(pool, APR_ARRAY_IDX(victims, i, victim_t).id),
                                      NULL);
            reqs[i].authorization = apr_pstrcat(pool, "Bearer ",
                                                reaper->api.management_key, NULL);
        }
        okey_http_perform_many(reaper->api.http, pool, reqs, n, reaper->parallel,
                               resps, errs);
        for (i = 0; i < n; i++) {
            const victim_t *victim = &APR_ARRAY_IDX(victims, i, victim_t);
            int status = errs[i] ? 0 : resps[i].status;
            int retryable = status == 0 || status == 429 || status >= 500;

            if ((status >= 200 && status < 300) || status == 404) {
                summary->deleted++;
                audit(reaper, pool, victim, project_id, status);
            }
            else if (retryable && attempt < OKEY_REAP_ATTEMPTS) {
                APR_ARRAY_PUSH(retry, victim_t) = *victim;
                if (resps[i].retry_after > 0) {
                    apr_interval_time_t asked = apr_time_from_sec(
                        resps[i].retry_after > OKEY_REAP_RETRY_AFTER_MAX
                            ? OKEY_REAP_RETRY_AFTER_MAX : resps[i].retry_after);
                    wait = asked > wait ? asked : wait;
                }
            }
            else {
                summary->failed++;
                okey_log(reaper->logger, OKEY_LOG_ERR, pool,
                         "could not delete service account %s (%s): %s", victim->id,
                         victim->email,
                         errs[i] ? errs[i]->log_msg
                                 : okey_openai_status_error(pool, "delete", &resps[i])->log_msg);
            }
        }
        victims = retry;
        if (victims->nelts > 0) {
            okey_log(reaper->logger, OKEY_LOG_INFO, pool,
                     "retrying %d deletes in %.1f s", victims->nelts,
                     (double)wait / APR_USEC_PER_SEC);
            pause_unless_cancelled(reaper, wait);
            backoff *= 2;
        }
    }
    summary->failed += victims->nelts;
}

void okey_reap(const okey_reaper_t *reaper, apr_pool_t *pool, apr_int64_t now,
               okey_reap_summary_t *summary)
{
    apr_time_t started = apr_time_now();
    apr_array_header_t *victims = apr_array_make(pool, 16, sizeof(victim_t));
    const char *project_id = NULL;
    okey_err_t *err = okey_openai_find_project(&reaper->api, pool,
                                               reaper->cfg->project, &project_id);

    memset(summary, 0, sizeof(*summary));
    if (!err && project_id) {
        err = list_victims(reaper, pool, project_id, now, victims, summary);
    }
    if (!err && project_id) {
        delete_victims(reaper, pool, project_id, victims, summary);
    }
    summary->kept = summary->listed - (err ? 0 : victims->nelts);
    summary->error = err ? err->log_msg
                         : (cancelled(reaper) ? "cancelled" : NULL);
    summary->seconds = (double)(apr_time_now() - started) / APR_USEC_PER_SEC;
}
