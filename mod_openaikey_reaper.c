/* mod_openaikey's reaper: a thread in every child, and the shared memory
 * and global mutex that let one reap run per interval across all children
 * of a server. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mpm_common.h"
#include "util_mutex.h"

#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_proc.h>

#include "mod_openaikey.h"

APLOG_USE_MODULE(openaikey);

#define MUTEX_TYPE "openaikey-reap"
#define RETAINED_KEY "mod_openaikey shared memory"
#define THREAD_KEY "mod_openaikey reaper thread"
#define SLOTS 64
#define TICK apr_time_from_msec(200)
/* A reap marked running for this long died with its child. */
#define RUNNING_STALE 900

typedef struct {
    okey_slot_t slots[SLOTS];
} shared_t;

/* Survives graceful restarts in the parent's process pool, so the counters
 * reset only with a full restart. */
typedef struct {
    apr_shm_t *shm;
} retained_t;

/* Per configuration generation; children attach in child_init. */
typedef struct {
    apr_global_mutex_t *mutex;
    shared_t *shared;
} ipc_t;

static ipc_t *ipc_of(server_rec *s)
{
    void *ipc = NULL;

    apr_pool_userdata_get(&ipc, RETAINED_KEY, s->process->pconf);
    return ipc;
}

static okey_slot_t *slot_of(server_rec *s)
{
    ipc_t *ipc = ipc_of(s);
    okey_server_conf_t *conf = okey_server_conf(s);

    return (ipc && conf->cfg && conf->slot >= 0) ? &ipc->shared->slots[conf->slot]
                                                : NULL;
}

static void child_stopping(apr_pool_t *pchild, int graceful);

void okey_shared_register(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

void okey_shared_hooks(void)
{
    ap_hook_child_stopping(child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
}

static shared_t *retained_shared(server_rec *s)
{
    retained_t *retained = ap_retained_data_get(RETAINED_KEY);
    apr_status_t rv = APR_SUCCESS;

    if (!retained) {
        retained = ap_retained_data_create(RETAINED_KEY, sizeof(*retained));
        rv = apr_shm_create(&retained->shm, sizeof(shared_t), NULL,
                            s->process->pool);
        if (rv == APR_SUCCESS) {
            memset(apr_shm_baseaddr_get(retained->shm), 0, sizeof(shared_t));
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         "cannot create shared memory for the reaper");
            retained->shm = NULL;
        }
    }
    return retained->shm ? apr_shm_baseaddr_get(retained->shm) : NULL;
}

/* The slot of the server with this key, claiming a free one if needed. */
static int assign_slot(shared_t *shared, const char *key)
{
    int found = -1;
    int i;

    for (i = 0; i < SLOTS && found < 0; i++) {
        found = strcmp(shared->slots[i].key, key) ? -1 : i;
    }
    for (i = 0; i < SLOTS && found < 0; i++) {
        if (!shared->slots[i].key[0]) {
            apr_cpystrn(shared->slots[i].key, key, sizeof(shared->slots[i].key));
            found = i;
        }
    }
    return found;
}

int okey_shared_post_config(apr_pool_t *pconf, server_rec *main_server)
{
    ipc_t *ipc = apr_pcalloc(pconf, sizeof(*ipc));
    server_rec *s;
    apr_status_t rv;
    int status = OK;

    ipc->shared = retained_shared(main_server);
    rv = ap_global_mutex_create(&ipc->mutex, NULL, MUTEX_TYPE, NULL, main_server,
                                pconf, 0);
    if (!ipc->shared || rv != APR_SUCCESS) {
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    for (s = main_server; s && status == OK; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);

        conf->slot = -1;
        if (conf->cfg) {
            /* Servers that reap the same project share a slot, and a reap. */
            conf->slot = assign_slot(ipc->shared,
                                     apr_psprintf(pconf, "%s %s %s", conf->cfg->api_base,
                                                  conf->cfg->project,
                                                  conf->cfg->server_name));
        }
        if (conf->cfg && conf->slot < 0) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "more than %d key servers; the reaper has no room for %s",
                         SLOTS, conf->cfg->server_name);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    apr_pool_userdata_set(ipc, RETAINED_KEY, apr_pool_cleanup_null, pconf);
    return status;
}

/* --- single flight -------------------------------------------------------- */

static int running(const okey_slot_t *slot, apr_int64_t now)
{
    return slot->running && now - slot->last_start < RUNNING_STALE;
}

/* Claims the next reap of slot when it is due (or forced and none runs). */
static int claim(ipc_t *ipc, okey_slot_t *slot, apr_int64_t interval, int force)
{
    apr_int64_t now = okey_now();
    int claimed = 0;

    if (apr_global_mutex_lock(ipc->mutex) == APR_SUCCESS) {
        claimed = !running(slot, now) &&
                  (force || now - slot->last_start >= interval || now < slot->last_start);
        if (claimed) {
            slot->running = 1;
            slot->last_start = now;
        }
        apr_global_mutex_unlock(ipc->mutex);
    }
    return claimed;
}

static void record(ipc_t *ipc, okey_slot_t *slot, const okey_reap_summary_t *sum)
{
    apr_global_mutex_lock(ipc->mutex);
    slot->running = 0;
    slot->last_end = okey_now();
    slot->last_ok = !sum->error && sum->failed == 0;
    slot->last_listed = sum->listed;
    slot->last_deleted = sum->deleted;
    slot->last_failed = sum->failed;
    slot->last_kept = sum->kept;
    apr_cpystrn(slot->last_error, sum->error ? sum->error : "", sizeof(slot->last_error));
    slot->reaps++;
    slot->keys_reaped += (apr_uint64_t)sum->deleted;
    slot->reap_failures += (sum->error || sum->failed) ? 1 : 0;
    apr_global_mutex_unlock(ipc->mutex);
}

static void reap_and_record(server_rec *s, ipc_t *ipc, okey_slot_t *slot,
                            const okey_reaper_t *reaper, apr_pool_t *pool)
{
    okey_reap_summary_t summary;

    okey_reap(reaper, pool, okey_now(), &summary);
    record(ipc, slot, &summary);
    ap_log_error(APLOG_MARK, summary.error || summary.failed ? APLOG_WARNING : APLOG_INFO,
                 0, s, "reap of project %s: listed %d, deleted %d, failed %d, kept %d "
                 "in %.2f s%s%s", okey_server_conf(s)->cfg->project, summary.listed,
                 summary.deleted, summary.failed, summary.kept, summary.seconds,
                 summary.error ? "; " : "", summary.error ? summary.error : "");
}

void okey_shared_count_issue(server_rec *s, int issued)
{
    ipc_t *ipc = ipc_of(s);
    okey_slot_t *slot = slot_of(s);

    if (slot && apr_global_mutex_lock(ipc->mutex) == APR_SUCCESS) {
        if (issued) {
            slot->keys_issued++;
        }
        else {
            slot->issue_failures++;
        }
        apr_global_mutex_unlock(ipc->mutex);
    }
}

void okey_shared_snapshot(server_rec *s, okey_slot_t *copy)
{
    ipc_t *ipc = ipc_of(s);
    okey_slot_t *slot = slot_of(s);

    memset(copy, 0, sizeof(*copy));
    if (slot && apr_global_mutex_lock(ipc->mutex) == APR_SUCCESS) {
        *copy = *slot;
        apr_global_mutex_unlock(ipc->mutex);
    }
}

void okey_shared_reap_now(server_rec *s, apr_pool_t *pool, okey_slot_t *copy)
{
    ipc_t *ipc = ipc_of(s);
    okey_slot_t *slot = slot_of(s);
    okey_server_conf_t *conf = okey_server_conf(s);
    okey_reaper_t reaper;

    if (slot && claim(ipc, slot, conf->cfg->cleanup_interval, 1)) {
        okey_reaper_init(&reaper, conf->cfg, conf->runtime->http,
                         &conf->runtime->logger, NULL);
        reap_and_record(s, ipc, slot, &reaper, pool);
    }
    else if (slot) {
        /* Another child's reap is under way: report that one when done. */
        while (running(slot, okey_now())) {
            apr_sleep(apr_time_from_msec(100));
        }
    }
    okey_shared_snapshot(s, copy);
}

/* --- the thread ------------------------------------------------------------ */

typedef struct {
    server_rec *main_server;
    ipc_t *ipc;
    apr_pool_t *pool;            /* the thread's, with its own allocator */
    apr_thread_t *thread;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *wake;
    volatile int stop;
    okey_http_t *http[SLOTS];    /* per key server, made at its first reap */
} reaper_thread_t;

static int reap_due(const okey_slot_t *slot, apr_int64_t interval)
{
    apr_int64_t now = okey_now();

    /* A racy read, only to spare the global mutex; claim() decides. */
    return !running(slot, now) &&
           (now - slot->last_start >= interval || now < slot->last_start);
}

static void reap_due_servers(reaper_thread_t *rt, apr_pool_t *iteration)
{
    server_rec *s;

    for (s = rt->main_server; s && !rt->stop; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        okey_slot_t *slot = slot_of(s);
        okey_http_options_t opts = {0, NULL, &rt->stop};
        okey_reaper_t reaper;

        if (!slot || !conf->runtime || !reap_due(slot, conf->cfg->cleanup_interval) ||
            !claim(rt->ipc, slot, conf->cfg->cleanup_interval, 0)) {
            continue;
        }
        if (!rt->http[conf->slot]) {
            opts.timeout_seconds = (long)conf->cfg->timeout;
            opts.ca_file = conf->cfg->ca_file;
            rt->http[conf->slot] = okey_http_create(rt->pool, &opts);
        }
        okey_reaper_init(&reaper, conf->cfg, rt->http[conf->slot],
                         &conf->runtime->logger, &rt->stop);
        reap_and_record(s, rt->ipc, slot, &reaper, iteration);
    }
}

static void *APR_THREAD_FUNC reaper_main(apr_thread_t *thread, void *data)
{
    reaper_thread_t *rt = data;
    apr_pool_t *iteration;

    apr_pool_create(&iteration, rt->pool);
    apr_thread_mutex_lock(rt->mutex);
    while (!rt->stop) {
        apr_thread_mutex_unlock(rt->mutex);
        reap_due_servers(rt, iteration);
        apr_pool_clear(iteration);
        apr_thread_mutex_lock(rt->mutex);
        if (!rt->stop) {
            apr_thread_cond_timedwait(rt->wake, rt->mutex, TICK);
        }
    }
    apr_thread_mutex_unlock(rt->mutex);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static void signal_stop(reaper_thread_t *rt)
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

/* Runs before the child pool goes: the thread must not outlive it. */
static apr_status_t stop_reaper(void *data)
{
    reaper_thread_t *rt = data;
    apr_status_t thread_rv;

    signal_stop(rt);
    apr_thread_join(&thread_rv, rt->thread);
    apr_pool_destroy(rt->pool);
    return APR_SUCCESS;
}

static apr_status_t start_reaper(apr_pool_t *pchild, server_rec *main_server,
                                 ipc_t *ipc)
{
    reaper_thread_t *rt = apr_pcalloc(pchild, sizeof(*rt));
    apr_allocator_t *allocator = NULL;
    apr_status_t rv = apr_allocator_create(&allocator);

    rt->main_server = main_server;
    rt->ipc = ipc;
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create_unmanaged_ex(&rt->pool, NULL, allocator);
    }
    if (rv == APR_SUCCESS) {
        apr_allocator_owner_set(allocator, rt->pool);
        apr_thread_mutex_create(&rt->mutex, APR_THREAD_MUTEX_DEFAULT, rt->pool);
        apr_thread_cond_create(&rt->wake, rt->pool);
        rv = apr_thread_create(&rt->thread, NULL, reaper_main, rt, rt->pool);
    }
    if (rv == APR_SUCCESS) {
        apr_pool_pre_cleanup_register(pchild, rt, stop_reaper);
        apr_pool_userdata_setn(rt, THREAD_KEY, NULL, pchild);
    }
    return rv;
}

void okey_shared_child_init(apr_pool_t *pchild, server_rec *main_server)
{
    ipc_t *ipc = ipc_of(main_server);
    apr_status_t rv = APR_EGENERAL;
    server_rec *s;
    int wanted = 0;

    for (s = main_server; s; s = s->next) {
        wanted = wanted || okey_server_conf(s)->runtime;
    }
    if (ipc && wanted) {
        rv = apr_global_mutex_child_init(&ipc->mutex,
                                         apr_global_mutex_lockfile(ipc->mutex), pchild);
        if (rv == APR_SUCCESS) {
            rv = start_reaper(pchild, main_server, ipc);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, main_server,
                         "cannot start the reaper in this child; keys are reaped "
                         "by the others");
        }
    }
}
