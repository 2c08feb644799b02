/* The reaper: a thread in every child. It sleeps until a key server's next
 * reap is due (or it is woken, or told to stop), claims the reap's lease in
 * the ledger so that one child at a time (one server, in a fleet) runs it,
 * and runs it, while a second thread renews the lease until it ends. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mpm_common.h"

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_proc.h>
#include <unistd.h>

#include "mod_openaikey.h"
#include "src/lease.h"
#include "src/usage.h"

APLOG_USE_MODULE(openaikey);

#define THREAD_KEY "mod_openaikey reaper thread"
/* The longest sleep: another child's reap may have moved the due time. */
#define MAX_SLEEP 60

struct okey_reaper_thread_t {
    server_rec *main_server;
    apr_pool_t *pool;            /* the thread's, with its own allocator */
    apr_thread_t *thread;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *wake;
    int woken;                   /* under mutex */
    volatile int stop;
    apr_hash_t *http;            /* server_rec * -> its okey_http_t */
};

static okey_http_t *http_of(okey_reaper_thread_t *rt, server_rec *s)
{
    okey_server_conf_t *conf = okey_server_conf(s);
    okey_http_t *http = apr_hash_get(rt->http, &s, sizeof(s));
    okey_http_options_t opts = {0, NULL, NULL};

    if (!http) {
        opts.timeout_seconds = (long)conf->cfg->timeout;
        opts.ca_file = conf->cfg->ca_file;
        opts.cancel = &rt->stop;
        http = okey_http_create(rt->pool, &opts);
        apr_hash_set(rt->http, apr_pmemdup(rt->pool, &s, sizeof(s)), sizeof(s), http);
    }
    return http;
}

/* Says what became of the accounts whose creation got no clear answer. */
static void report_suspects(server_rec *s, apr_hash_t *unsure, apr_pool_t *pool)
{
    apr_hash_index_t *hi;

    for (hi = unsure ? apr_hash_first(pool, unsure) : NULL; hi; hi = apr_hash_next(hi)) {
        const void *name;
        void *found;

        apr_hash_this(hi, &name, NULL, &found);
        if (!*(int *)found) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, OKEY_LOGNO(032) "no service "
                         "account named %s was made; nothing to clean up",
                         (const char *)name);
        }
    }
}

static void count_by_project(server_rec *s, apr_pool_t *pool,
                             const okey_reap_summary_t *summary)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(pool, summary->reaped_by_project); hi; hi = apr_hash_next(hi)) {
        const void *name;
        void *count;

        apr_hash_this(hi, &name, NULL, &count);
        okey_shm_count_project(s, name, 0, *(int *)count);
    }
}

/* Renews a reap's lease until the reap ends: a child that dies, or stops
 * being scheduled, stops renewing it, and another child takes it. */
typedef struct {
    server_rec *s;
    okey_ledger_lease_t *lease;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *ended_cond;
    int ended;                   /* under mutex */
    apr_thread_t *thread;
} lease_keeper_t;

static void *APR_THREAD_FUNC keep_lease(apr_thread_t *thread, void *data)
{
    lease_keeper_t *keeper = data;
    okey_server_conf_t *conf = okey_server_conf(keeper->s);
    apr_interval_time_t length = okey_lease_length(conf->cfg->timeout);
    apr_interval_time_t every = okey_lease_renew_every(length);
    int held = 1;

    /* Runs until told the reap ended, with the reaper waiting to join it:
     * its pool is a subpool of the one the reap allocates from. */
    apr_thread_mutex_lock(keeper->mutex);
    while (!keeper->ended) {
        apr_thread_cond_timedwait(keeper->ended_cond, keeper->mutex, every);
        if (!keeper->ended && held) {
            apr_thread_mutex_unlock(keeper->mutex);
            okey_ledger_lease_renew(conf->ledger, keeper->lease, apr_time_now(), length,
                                    &held);
            if (!held) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, keeper->s, OKEY_LOGNO(037)
                             "the reap lease of %s lapsed and was taken over; this "
                             "reap's result is not recorded", conf->cfg->project);
            }
            apr_thread_mutex_lock(keeper->mutex);
        }
    }
    apr_thread_mutex_unlock(keeper->mutex);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* NULL when no thread could be started: the lease then lapses while the
 * reap runs, and another child may run one too. */
static lease_keeper_t *start_keeper(server_rec *s, okey_ledger_lease_t *lease,
                                    apr_pool_t *pool)
{
    lease_keeper_t *keeper = apr_pcalloc(pool, sizeof(*keeper));
    apr_status_t rv;

    keeper->s = s;
    keeper->lease = lease;
    rv = apr_thread_mutex_create(&keeper->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&keeper->ended_cond, pool);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&keeper->thread, NULL, keep_lease, keeper, pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, OKEY_LOGNO(038) "cannot start the "
                     "thread that renews the reap lease");
    }
    return rv == APR_SUCCESS ? keeper : NULL;
}

static void stop_keeper(lease_keeper_t *keeper)
{
    apr_status_t thread_rv;

    if (keeper) {
        apr_thread_mutex_lock(keeper->mutex);
        keeper->ended = 1;
        apr_thread_cond_signal(keeper->ended_cond);
        apr_thread_mutex_unlock(keeper->mutex);
        apr_thread_join(&thread_rv, keeper->thread);
    }
}

/* Whether the lease is still this reap's: one taken over records nothing. */
static int still_held(okey_server_conf_t *conf, okey_ledger_lease_t *lease)
{
    int held = 0;

    okey_ledger_lease_renew(conf->ledger, lease, apr_time_now(),
                            okey_lease_length(conf->cfg->timeout), &held);
    return held;
}

static void reap(okey_reaper_thread_t *rt, server_rec *s, okey_ledger_lease_t *lease,
                 apr_pool_t *pool)
{
    okey_server_conf_t *conf = okey_server_conf(s);
    okey_reap_summary_t summary;
    okey_reaper_t reaper;
    apr_time_t started = apr_time_now();
    lease_keeper_t *keeper;

    okey_reaper_init(&reaper, conf->cfg, http_of(rt, s), &conf->runtime->logger,
                     &rt->stop);
    reaper.ledger = conf->ledger;
    okey_ledger_suspects_due(conf->ledger, pool, okey_now(), &reaper.unsure);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, OKEY_LOGNO(031) "reap of %s claimed by "
                 "pid %" APR_PID_T_FMT, conf->cfg->project, getpid());
    okey_shm_reap_started(s);
    keeper = start_keeper(s, lease, pool);
    okey_reap(&reaper, pool, apr_time_sec(started), &summary);
    /* The ledger is filled before the reap is said to have ended, under
     * the lease: whoever waits for the reap then finds it answering. */
    if (!summary.error) {
        okey_ledger_fill(conf->ledger, pool, summary.live, started);
        report_suspects(s, reaper.unsure, pool);
        okey_ledger_suspects_drop(conf->ledger, reaper.unsure);
    }
    stop_keeper(keeper);
    if (still_held(conf, lease)) {
        okey_shm_finish_reap(s, &summary);
        okey_ledger_lease_release(conf->ledger, lease);
    }
    count_by_project(s, pool, &summary);
    ap_log_error(APLOG_MARK, summary.error || summary.failed ? APLOG_WARNING : APLOG_INFO,
                 0, s, OKEY_LOGNO(030) "reap of project %s (%d projects): listed %d, "
                 "deleted %d, revoked %d (cap) %d (policy) %d (budget), failed %d, "
                 "kept %d, not attempted %d in %.2f s%s%s",
                 conf->cfg->project, summary.projects, summary.listed, summary.deleted,
                 summary.revoked_cap, summary.revoked_policy, summary.revoked_budget,
                 summary.failed, summary.kept, summary.skipped, summary.seconds,
                 summary.error ? "; " : "", summary.error ? summary.error : "");
}

/* Polls usage and costs for s when its interval has come round and no
 * other child or server took this round; returns the seconds until the
 * next round. A round is marked once in the ledger, so that one poll runs
 * per interval across a fleet. */
static apr_int64_t poll_usage(okey_reaper_thread_t *rt, server_rec *s, apr_pool_t *parent)
{
    okey_server_conf_t *conf = okey_server_conf(s);
    apr_int64_t interval = conf->cfg->usage_interval;
    apr_int64_t now = okey_now();
    apr_int64_t round = interval ? now / interval : 0;
    okey_usage_report_t report;
    okey_reaper_t reaper;
    apr_pool_t *pool = NULL;
    int first = 0;

    if (!interval) {
        return MAX_SLEEP;
    }
    apr_pool_create(&pool, parent);
    okey_ledger_mark_once(conf->ledger,
                          apr_psprintf(pool, "usage:%s:%" APR_INT64_T_FMT,
                                       okey_figures_name(pool, conf->cfg->project), round),
                          apr_time_now(), apr_time_from_sec((round + 2) * interval), &first);
    if (first) {
        okey_reaper_init(&reaper, conf->cfg, http_of(rt, s), &conf->runtime->logger,
                         &rt->stop);
        reaper.ledger = conf->ledger;
        okey_usage_poll(&reaper, pool, now, &report);
        okey_shm_usage_polled(s, report.error == NULL);
        ap_log_error(APLOG_MARK, report.error ? APLOG_WARNING : APLOG_INFO, 0, s,
                     OKEY_LOGNO(040) "usage poll of %s (%d projects): %d keys of %d "
                     "people%s%s", conf->cfg->project, report.projects, report.keys,
                     report.people, report.error ? "; failed: " : "",
                     report.error ? report.error : "");
    }
    apr_pool_destroy(pool);
    return (round + 1) * interval - okey_now();
}

/* Runs the reaps that are due; returns the seconds until the next one. */
static apr_int64_t reap_due_servers(okey_reaper_thread_t *rt, apr_pool_t *iteration)
{
    apr_int64_t next = MAX_SLEEP;
    server_rec *s;

    for (s = rt->main_server; s && !rt->stop; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        okey_ledger_lease_t lease;
        apr_int64_t due = MAX_SLEEP;
        int claimed = 0;
        int held = 0;

        if (!conf->runtime) {
            continue;
        }
        okey_ledger_lease_claim(conf->ledger, apr_time_now(), conf->cfg->cleanup_interval,
                                okey_lease_length(conf->cfg->timeout), 0, &lease, &claimed);
        if (claimed) {
            reap(rt, s, &lease, iteration);
            apr_pool_clear(iteration);
        }
        okey_ledger_lease_due_in(conf->ledger, apr_time_now(), conf->cfg->cleanup_interval,
                                 &due, &held);
        next = due < next ? due : next;
        due = rt->stop ? MAX_SLEEP : poll_usage(rt, s, iteration);
        next = due < next ? due : next;
    }
    return next > 0 ? next : 1;
}

static void *APR_THREAD_FUNC reaper_main(apr_thread_t *thread, void *data)
{
    okey_reaper_thread_t *rt = data;
    apr_pool_t *iteration;
    apr_int64_t sleep_seconds;

    apr_pool_create(&iteration, rt->pool);
    apr_thread_mutex_lock(rt->mutex);
    while (!rt->stop) {
        rt->woken = 0;
        apr_thread_mutex_unlock(rt->mutex);
        sleep_seconds = reap_due_servers(rt, iteration);
        apr_thread_mutex_lock(rt->mutex);
        if (!rt->stop && !rt->woken) {
            apr_thread_cond_timedwait(rt->wake, rt->mutex,
                                      apr_time_from_sec(sleep_seconds));
        }
    }
    apr_thread_mutex_unlock(rt->mutex);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

volatile const int *okey_reaper_stopping(okey_reaper_thread_t *rt)
{
    return &rt->stop;
}

void okey_reaper_wake(okey_reaper_thread_t *rt)
{
    apr_thread_mutex_lock(rt->mutex);
    rt->woken = 1;
    apr_thread_cond_signal(rt->wake);
    apr_thread_mutex_unlock(rt->mutex);
}

static void signal_stop(okey_reaper_thread_t *rt)
{
    apr_thread_mutex_lock(rt->mutex);
    rt->stop = 1;
    apr_thread_cond_signal(rt->wake);
    apr_thread_mutex_unlock(rt->mutex);
}

/* As soon as the child is told to stop, before its workers drain: no reap
 * may start then, and one under way is cancelled. */
static void child_stopping(apr_pool_t *pchild, int graceful)
{
    void *rt = NULL;

    (void)graceful;
    apr_pool_userdata_get(&rt, THREAD_KEY, pchild);
    if (rt) {
        signal_stop(rt);
    }
}

void okey_reaper_hooks(void)
{
    ap_hook_child_stopping(child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
}

/* Runs before the child pool goes: the thread must not outlive it. */
static apr_status_t stop_reaper(void *data)
{
    okey_reaper_thread_t *rt = data;
    apr_status_t thread_rv;

    signal_stop(rt);
    apr_thread_join(&thread_rv, rt->thread);
    apr_pool_destroy(rt->pool);
    return APR_SUCCESS;
}

apr_status_t okey_reaper_start(apr_pool_t *pchild, server_rec *main_server,
                               okey_reaper_thread_t **reaper)
{
    okey_reaper_thread_t *rt = apr_pcalloc(pchild, sizeof(*rt));
    apr_allocator_t *allocator = NULL;
    apr_status_t rv = apr_allocator_create(&allocator);

    *reaper = NULL;
    rt->main_server = main_server;
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create_unmanaged_ex(&rt->pool, NULL, allocator);
    }
    if (rv == APR_SUCCESS) {
        apr_allocator_owner_set(allocator, rt->pool);
        rt->http = apr_hash_make(rt->pool);
        apr_thread_mutex_create(&rt->mutex, APR_THREAD_MUTEX_DEFAULT, rt->pool);
        apr_thread_cond_create(&rt->wake, rt->pool);
        rv = apr_thread_create(&rt->thread, NULL, reaper_main, rt, rt->pool);
    }
    if (rv == APR_SUCCESS) {
        apr_pool_pre_cleanup_register(pchild, rt, stop_reaper);
        apr_pool_userdata_setn(rt, THREAD_KEY, NULL, pchild);
        *reaper = rt;
    }
    return rv;
}
