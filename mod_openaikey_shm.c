/* What the children of one httpd share beside the ledger: one record per
 * key server in shared memory (counters, the last reap's result) under a
 * global mutex, the places in flight, and the random passphrase of the
 * parent's life. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "ap_mpm.h"
#include "scoreboard.h"
#include "util_mutex.h"

#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <unistd.h>

#include "mod_openaikey.h"

APLOG_USE_MODULE(openaikey);

#define MUTEX_TYPE "openaikey-reap"
/* The layout's version is in the key: a graceful restart into a build with
 * another layout must not read the old segment. */
#define RETAINED_KEY "mod_openaikey shared memory 8"
#define RANDOM_KEY "mod_openaikey random state key"
#define IPC_KEY "mod_openaikey ipc"
#define FLIGHTS_KEY "mod_openaikey places in flight 1"
#define SLOTS 64
typedef struct {
    unsigned char id[32];     /* hash of what the key server is; zero: free */
    apr_uint32_t generation;  /* the newest configuration that uses it */
    okey_stats_t stats;
} slot_t;

typedef struct {
    slot_t slots[SLOTS];
} shared_t;

/* Lives in the parent's process pool: survives every restart. */
typedef struct {
    apr_shm_t *shm;
    apr_uint32_t generation;  /* of configurations loaded so far */
} retained_t;

/* The places one child holds in a key server's OpenAIKeyMaxInFlight. A
 * key server's row has one per scoreboard slot, and its places taken are
 * the sum over the children the scoreboard still shows: a child killed
 * while it held places runs no cleanup, and stops counting as soon as httpd
 * sees it die. */
typedef struct {
    pid_t pid;            /* the child that last used this scoreboard slot */
    apr_uint32_t count;
} flight_t;

/* Sized once for the parent's life, as the scoreboard is: no restart
 * changes ServerLimit. */
typedef struct {
    apr_shm_t *shm;
    int children;         /* scoreboard slots: flight_t per key server */
} flights_retained_t;

/* Per configuration generation; children attach in child_init. */
typedef struct {
    apr_global_mutex_t *mutex;
    shared_t *shared;
    apr_uint32_t generation;
    flight_t *flights;    /* SLOTS rows of children; NULL: none */
    int children;
    int child;            /* this process's scoreboard slot; -1: unknown */
} ipc_t;

static ipc_t *ipc_of(server_rec *s)
{
    void *ipc = NULL;

    apr_pool_userdata_get(&ipc, IPC_KEY, s->process->pconf);
    return ipc;
}

void okey_shm_register(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

/* Drawn once for the parent's life, so that sign-ins in flight survive
 * restarts; random bytes need no stretching. NULL when none could be drawn. */
typedef struct {
    int drawn;
    unsigned char bytes[OKEY_STATE_KEY_BYTES];
} random_key_t;

const unsigned char *okey_shm_random_key(void)
{
    random_key_t *key = ap_retained_data_get(RANDOM_KEY);

    if (!key) {
        key = ap_retained_data_create(RANDOM_KEY, sizeof(*key));
        key->drawn = apr_generate_random_bytes(key->bytes, sizeof(key->bytes))
                     == APR_SUCCESS;
    }
    return key->drawn ? key->bytes : NULL;
}

static retained_t *retained(server_rec *s)
{
    retained_t *kept = ap_retained_data_get(RETAINED_KEY);
    apr_status_t rv;

    if (!kept) {
        kept = ap_retained_data_create(RETAINED_KEY, sizeof(*kept));
        rv = apr_shm_create(&kept->shm, sizeof(shared_t), NULL, s->process->pool);
        if (rv == APR_SUCCESS) {
            memset(apr_shm_baseaddr_get(kept->shm), 0, sizeof(shared_t));
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         OKEY_LOGNO(020) "cannot create shared memory");
            kept->shm = NULL;
        }
    }
    return kept;
}

static flights_retained_t *flights_retained(server_rec *s)
{
    flights_retained_t *kept = ap_retained_data_get(FLIGHTS_KEY);
    apr_size_t size;
    apr_status_t rv;

    if (!kept) {
        kept = ap_retained_data_create(FLIGHTS_KEY, sizeof(*kept));
        ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &kept->children);
        kept->children = kept->children > 0 ? kept->children : 1;
        size = sizeof(flight_t) * SLOTS * (apr_size_t)kept->children;
        rv = apr_shm_create(&kept->shm, size, NULL, s->process->pool);
        if (rv == APR_SUCCESS) {
            memset(apr_shm_baseaddr_get(kept->shm), 0, size);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         OKEY_LOGNO(026) "cannot create shared memory for OpenAIKeyMaxInFlight");
            kept->shm = NULL;
        }
    }
    return kept;
}

static void slot_id(apr_pool_t *pool, const okey_config_t *cfg, unsigned char id[32])
{
    const char *what = apr_pstrcat(pool, cfg->api_base, "\n", cfg->project, "\n",
                                   cfg->server_name, NULL);

    okey_sha256(what, strlen(what), id);
}

static int slot_free(const slot_t *slot, apr_uint32_t generation)
{
    static const unsigned char zero[32];

    /* The previous generation's children may still be at work. */
    return !memcmp(slot->id, zero, sizeof(zero)) || slot->generation + 1 < generation;
}

/* The slot of the key server with this id, claiming a free one if needed. */
static int assign_slot(shared_t *shared, const unsigned char id[32],
                       apr_uint32_t generation)
{
    int found = -1;
    int i;

    for (i = 0; i < SLOTS && found < 0; i++) {
        found = memcmp(shared->slots[i].id, id, 32) ? -1 : i;
    }
    for (i = 0; i < SLOTS && found < 0; i++) {
        if (slot_free(&shared->slots[i], generation)) {
            memset(&shared->slots[i], 0, sizeof(slot_t));
            memcpy(shared->slots[i].id, id, 32);
            found = i;
        }
    }
    if (found >= 0) {
        shared->slots[found].generation = generation;
    }
    return found;
}

/* Slots no configuration since the previous one uses are freed. */
static void release_slots(shared_t *shared, apr_uint32_t generation)
{
    int i;

    for (i = 0; i < SLOTS; i++) {
        if (slot_free(&shared->slots[i], generation)) {
            memset(&shared->slots[i], 0, sizeof(slot_t));
        }
    }
}

static int assign_slots(apr_pool_t *pconf, server_rec *main_server, ipc_t *ipc)
{
    server_rec *s;
    int status = OK;

    apr_global_mutex_lock(ipc->mutex);
    for (s = main_server; s && status == OK; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);

        conf->slot = -1;
        if (conf->cfg) {
            slot_id(pconf, conf->cfg, conf->slot_id);
            conf->slot = assign_slot(ipc->shared, conf->slot_id, ipc->generation);
        }
        if (conf->cfg && conf->slot < 0) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         OKEY_LOGNO(021) "more than %d key servers; no room in "
                         "shared memory for %s", SLOTS, conf->cfg->server_name);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    release_slots(ipc->shared, ipc->generation);
    apr_global_mutex_unlock(ipc->mutex);
    return status;
}

int okey_shm_post_config(apr_pool_t *pconf, server_rec *main_server)
{
    ipc_t *ipc = apr_pcalloc(pconf, sizeof(*ipc));
    retained_t *kept = retained(main_server);
    flights_retained_t *flights = flights_retained(main_server);
    apr_status_t rv;
    int status = kept->shm && flights->shm ? OK : HTTP_INTERNAL_SERVER_ERROR;

    ipc->shared = kept->shm ? apr_shm_baseaddr_get(kept->shm) : NULL;
    ipc->flights = flights->shm ? apr_shm_baseaddr_get(flights->shm) : NULL;
    ipc->children = flights->children;
    ipc->child = -1;
    ipc->generation = ++kept->generation;
    rv = ap_global_mutex_create(&ipc->mutex, NULL, MUTEX_TYPE, NULL, main_server,
                                pconf, 0);
    status = rv == APR_SUCCESS ? status : HTTP_INTERNAL_SERVER_ERROR;
    if (status == OK) {
        status = assign_slots(pconf, main_server, ipc);
    }
    apr_pool_userdata_set(ipc, IPC_KEY, apr_pool_cleanup_null, pconf);
    return status;
}

apr_status_t okey_shm_child_init(apr_pool_t *pchild, server_rec *main_server)
{
    ipc_t *ipc = ipc_of(main_server);
    apr_status_t rv = ipc ? APR_SUCCESS : APR_EGENERAL;

    if (rv == APR_SUCCESS) {
        rv = apr_global_mutex_child_init(&ipc->mutex,
                                         apr_global_mutex_lockfile(ipc->mutex), pchild);
    }
    return rv;
}

/* Locks the shared memory and returns the server's slot, or NULL (and
 * nothing locked) when it has none or the slot went to another server. */
static slot_t *lock_slot(server_rec *s, ipc_t **ipc_out)
{
    ipc_t *ipc = ipc_of(s);
    okey_server_conf_t *conf = okey_server_conf(s);
    slot_t *slot = NULL;

    *ipc_out = ipc;
    if (ipc && ipc->shared && conf->slot >= 0 &&
        apr_global_mutex_lock(ipc->mutex) == APR_SUCCESS) {
        slot = &ipc->shared->slots[conf->slot];
        if (memcmp(slot->id, conf->slot_id, 32)) {
            apr_global_mutex_unlock(ipc->mutex);
            slot = NULL;
        }
    }
    return slot;
}

static void unlock_slot(ipc_t *ipc)
{
    apr_global_mutex_unlock(ipc->mutex);
}

/* --- counters ---------------------------------------------------------------- */

void okey_shm_usage_polled(server_rec *s, int ok)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    if (slot) {
        if (ok) {
            slot->stats.last_usage_poll = okey_now();
        }
        else {
            slot->stats.usage_poll_failures++;
        }
        unlock_slot(ipc);
    }
}

void okey_shm_count_issue(server_rec *s, int issued)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    if (slot) {
        if (issued) {
            slot->stats.keys_issued++;
        }
        else {
            slot->stats.issue_failures++;
        }
        unlock_slot(ipc);
    }
}

void okey_shm_count_denied(server_rec *s, okey_denied_e reason)
{
    ipc_t *ipc;
    slot_t *slot = (reason > 0 && reason < OKEY_DENIED_COUNT) ? lock_slot(s, &ipc) : NULL;

    if (slot) {
        slot->stats.denied[reason]++;
        unlock_slot(ipc);
    }
}

void okey_shm_count_revoked(server_rec *s, okey_revoked_by_e by, int n)
{
    ipc_t *ipc;
    slot_t *slot = (n > 0 && by < OKEY_REVOKED_COUNT) ? lock_slot(s, &ipc) : NULL;

    if (slot) {
        slot->stats.keys_revoked[by] += (apr_uint64_t)n;
        unlock_slot(ipc);
    }
}

void okey_shm_count_project(server_rec *s, const char *project, int issued, int reaped)
{
    ipc_t *ipc;
    slot_t *slot = strlen(project) < sizeof(slot->stats.projects[0].name)
                   ? lock_slot(s, &ipc) : NULL;
    okey_project_stats_t *found = NULL;
    int i;

    /* By name, or in the first free entry: at most OKEY_STATS_PROJECTS. */
    for (i = 0; slot && i < OKEY_STATS_PROJECTS && !found; i++) {
        okey_project_stats_t *entry = &slot->stats.projects[i];

        if (!entry->name[0]) {
            apr_cpystrn(entry->name, project, sizeof(entry->name));
        }
        found = strcmp(entry->name, project) ? NULL : entry;
    }
    if (found) {
        found->keys_issued += (apr_uint64_t)issued;
        found->keys_reaped += (apr_uint64_t)reaped;
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

void okey_shm_count_upstream_error(server_rec *s, okey_endpoint_e endpoint)
{
    ipc_t *ipc;
    slot_t *slot = (endpoint > 0 && endpoint < OKEY_ENDPOINT_COUNT)
                   ? lock_slot(s, &ipc) : NULL;

    if (slot) {
        slot->stats.upstream_errors[endpoint]++;
        unlock_slot(ipc);
    }
}

/* What the key server's ledger says: whether a reap holds the lease, and
 * its health. */
static void ledger_snapshot(const okey_server_conf_t *conf, okey_stats_t *stats)
{
    apr_int64_t due = 0;
    int held = 0;

    if (conf->ledger) {
        okey_ledger_lease_due_in(conf->ledger, apr_time_now(), conf->cfg->cleanup_interval,
                                 &due, &held);
        okey_ledger_count(conf->ledger, &stats->ledger_records);
        stats->reap_running = held;
        stats->ledger_up = conf->ledger->health ? conf->ledger->health->up : 1;
        stats->ledger_errors = conf->ledger->health ? conf->ledger->health->errors : 0;
    }
}

void okey_shm_snapshot(server_rec *s, okey_stats_t *stats)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    memset(stats, 0, sizeof(*stats));
    if (slot) {
        *stats = slot->stats;
        unlock_slot(ipc);
    }
    ledger_snapshot(okey_server_conf(s), stats);
}

/* --- places in flight ------------------------------------------------------- */

/* This process's scoreboard slot, found on first use; then its entries,
 * left by whatever process had the slot before, are made its own. Called
 * with the mutex held. */
static int my_child(ipc_t *ipc)
{
    pid_t me = getpid();
    int i, row;

    for (i = 0; ipc->child < 0 && i < ipc->children; i++) {
        if (ap_scoreboard_image->parent[i].pid == me) {
            ipc->child = i;
            for (row = 0; row < SLOTS; row++) {
                ipc->flights[row * ipc->children + i].pid = me;
                ipc->flights[row * ipc->children + i].count = 0;
            }
        }
    }
    return ipc->child;
}

static apr_uint32_t places_taken(const flight_t *row, int children)
{
    apr_uint32_t taken = 0;
    int i;

    for (i = 0; i < children; i++) {
        if (row[i].count && row[i].pid == ap_scoreboard_image->parent[i].pid) {
            taken += row[i].count;
        }
    }
    return taken;
}

int okey_shm_in_flight_enter(server_rec *s, apr_uint32_t max)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    int child = slot && ipc->flights ? my_child(ipc) : -1;
    flight_t *row = child >= 0 ? ipc->flights + okey_server_conf(s)->slot * ipc->children
                               : NULL;
    int entered = !row || places_taken(row, ipc->children) < max;

    if (row && entered) {
        row[child].count++;
    }
    if (slot) {
        unlock_slot(ipc);
    }
    return entered;
}

void okey_shm_in_flight_leave(server_rec *s)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    flight_t *mine = slot && ipc->flights && ipc->child >= 0
                     ? &ipc->flights[okey_server_conf(s)->slot * ipc->children + ipc->child]
                     : NULL;

    /* Another process may have the slot now, should this one be a
     * gracefully stopping child the scoreboard no longer shows. */
    if (mine && mine->pid == getpid() && mine->count > 0) {
        mine->count--;
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

/* --- reaps ---------------------------------------------------------------------- */

void okey_shm_reap_started(server_rec *s)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    if (slot) {
        slot->stats.last_start = okey_now();
        unlock_slot(ipc);
    }
}

void okey_shm_finish_reap(server_rec *s, const okey_reap_summary_t *sum)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    okey_stats_t *stats = slot ? &slot->stats : NULL;

    if (slot) {
        stats->last_end = okey_now();
        stats->last_duration = sum->seconds;
        stats->last_ok = !sum->error && sum->failed == 0;
        stats->last_cancelled = sum->cancelled;
        stats->last_projects = sum->projects;
        stats->last_listed = sum->listed;
        stats->last_deleted = sum->deleted;
        stats->last_failed = sum->failed;
        stats->last_kept = sum->kept;
        stats->last_skipped = sum->skipped;
        apr_cpystrn(stats->last_error_class, sum->error_class ? sum->error_class : "",
                    sizeof(stats->last_error_class));
        stats->reaps++;
        stats->keys_reaped += (apr_uint64_t)sum->deleted;
        stats->keys_revoked[OKEY_REVOKED_CAP] += (apr_uint64_t)sum->revoked_cap;
        stats->keys_revoked[OKEY_REVOKED_POLICY] += (apr_uint64_t)sum->revoked_policy;
        stats->keys_revoked[OKEY_REVOKED_BUDGET] += (apr_uint64_t)sum->revoked_budget;
        /* A reap cut short by a stop did not fail. */
        stats->reap_failures += ((sum->error && !sum->cancelled) || sum->failed) ? 1 : 0;
        unlock_slot(ipc);
    }
}
