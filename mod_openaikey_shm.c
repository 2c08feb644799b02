/* What the children of httpd share: one record per key server in shared
 * memory (counters, the reap claim, the project id) under a global mutex,
 * a second global mutex that serialises creating projects, and the random
 * passphrase of the parent's life. */
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
#include "src/lease.h"

APLOG_USE_MODULE(openaikey);

#define MUTEX_TYPE "openaikey-reap"
#define PROJECT_MUTEX_TYPE "openaikey-project"
/* The layout's version is in the key: a graceful restart into a build with
 * another layout must not read the old segment. */
#define RETAINED_KEY "mod_openaikey shared memory 7"
#define RANDOM_KEY "mod_openaikey random state key"
#define IPC_KEY "mod_openaikey ipc"
#define FLIGHTS_KEY "mod_openaikey places in flight 1"
#define SLOTS 64
/* Creations without a clear answer awaiting their check: an outage of
 * OpenAI makes one per sign-in until its answers come back. */
#define SUSPECTS 64
#define SUSPECT_NAME_MAX 288

/* Live keys per key server the cap's index holds: 160 bytes each. */
#define INDEX_KEYS 1024
#define INDEX_ID_MAX 48

/* A live key in the cap's index: whose (a hash of the address), which,
 * where, until when. */
typedef struct {
    unsigned char email[16];      /* the first half of its SHA-256 */
    char id[INDEX_ID_MAX];
    char project_id[INDEX_ID_MAX];
    char tag[OKEY_KEYS_TAG_LEN + 1]; /* of its name; empty: an untagged name */
    apr_int64_t named;            /* the expiry its name gives */
    apr_int64_t created_at, expires;
    apr_time_t added;             /* by a sign-in, when; 0: by a reap */
} index_key_t;

/* A key deleted by this server, for a while: a reap that listed it before
 * does not bring it back. */
#define INDEX_GONE 64
typedef struct {
    char id[INDEX_ID_MAX];
    apr_time_t at;
} gone_key_t;

typedef enum {
    INDEX_EMPTY,    /* no reap has listed the projects yet */
    INDEX_FILLED,
    INDEX_OVERFLOW  /* more live keys than it holds: sign-ins list instead */
} index_state_e;

typedef struct {
    index_state_e state;
    int count;
    gone_key_t gone[INDEX_GONE];  /* a ring, oldest overwritten */
    int next_gone;
    index_key_t keys[INDEX_KEYS];
} key_index_t;

/* How often one person may have My keys list the projects: a burst, then
 * one listing per refill. The table forgets whoever listed least recently. */
#define LISTERS 256
#define LISTING_BURST 20
#define LISTING_REFILL apr_time_from_sec(3)

typedef struct {
    unsigned char email[16];      /* the first half of its SHA-256 */
    okey_rate_t rate;
} lister_t;

/* An account whose creation got no clear answer, to look for at due. */
typedef struct {
    char name[SUSPECT_NAME_MAX]; /* empty: unused */
    apr_int64_t due;             /* Unix seconds */
} suspect_t;

typedef struct {
    unsigned char id[32];     /* hash of what the key server is; zero: free */
    apr_uint32_t generation;  /* the newest configuration that uses it */
    okey_claim_t claim;       /* a lease; expires 0: never taken */
    int reap_requested;
    char project_id[OKEY_KEYS_PROJECT_ID_MAX];
    suspect_t suspects[SUSPECTS];
    okey_stats_t stats;
    key_index_t index;
    lister_t listers[LISTERS];
} slot_t;

typedef struct {
    apr_uint64_t next_token;
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
    apr_global_mutex_t *project_mutex;
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
    ap_mutex_register(pconf, PROJECT_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
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
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(&ipc->project_mutex, NULL, PROJECT_MUTEX_TYPE,
                                    NULL, main_server, pconf, 0);
    }
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
    if (rv == APR_SUCCESS) {
        rv = apr_global_mutex_child_init(&ipc->project_mutex,
                                         apr_global_mutex_lockfile(ipc->project_mutex),
                                         pchild);
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

static apr_interval_time_t lease_length(server_rec *s)
{
    return okey_lease_length(okey_server_conf(s)->cfg->timeout);
}

/* Whether a reap's lease is still held: by time alone, since a child
 * killed mid-reap releases nothing, and its PID may since be another's. */
static int lease_held(server_rec *s, const okey_claim_t *claim)
{
    return !okey_lease_free(claim->expires, apr_time_now(), lease_length(s));
}

void okey_shm_snapshot(server_rec *s, okey_stats_t *stats)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    memset(stats, 0, sizeof(*stats));
    if (slot) {
        *stats = slot->stats;
        stats->reap_running = lease_held(s, &slot->claim);
        unlock_slot(ipc);
    }
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

/* --- the project store -------------------------------------------------------- */

static void project_get(void *baton, char *buf, apr_size_t len)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(baton, &ipc);

    buf[0] = '\0';
    if (slot) {
        apr_cpystrn(buf, slot->project_id, len);
        unlock_slot(ipc);
    }
}

static void project_set(void *baton, const char *id, const char *stale)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(baton, &ipc);

    if (slot && id) {
        apr_cpystrn(slot->project_id, id, sizeof(slot->project_id));
    }
    else if (slot && stale && !strcmp(slot->project_id, stale)) {
        slot->project_id[0] = '\0';
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

static int project_lock(void *baton, apr_interval_time_t wait)
{
    ipc_t *ipc = ipc_of(baton);
    apr_status_t rv = ipc ? apr_global_mutex_timedlock(ipc->project_mutex, wait)
                          : APR_EGENERAL;

    if (rv == APR_ENOTIMPL) {
        rv = apr_global_mutex_lock(ipc->project_mutex);
    }
    return rv == APR_SUCCESS;
}

static void project_unlock(void *baton)
{
    apr_global_mutex_unlock(ipc_of(baton)->project_mutex);
}

void okey_shm_project_store(server_rec *s, okey_project_store_t *store)
{
    store->get = project_get;
    store->set = project_set;
    store->lock = project_lock;
    store->unlock = project_unlock;
    store->baton = s;
}

/* --- reap claims ---------------------------------------------------------------- */

static apr_int64_t due_in(const slot_t *slot, apr_int64_t interval, apr_int64_t now)
{
    apr_int64_t since = now - slot->stats.last_start;
    apr_int64_t wait = (slot->reap_requested || since < 0 || since >= interval)
                       ? 0 : interval - since;
    int i;

    for (i = 0; i < SUSPECTS; i++) {
        if (slot->suspects[i].name[0] && slot->suspects[i].due - now < wait) {
            wait = slot->suspects[i].due > now ? slot->suspects[i].due - now : 0;
        }
    }
    return wait;
}

int okey_shm_claim_reap(server_rec *s, int force, okey_claim_t *claim)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    apr_int64_t now = okey_now();
    int claimed = 0;

    if (slot) {
        claimed = !lease_held(s, &slot->claim) &&
                  (force || !due_in(slot, okey_server_conf(s)->cfg->cleanup_interval, now));
        if (claimed) {
            claim->pid = getpid();
            claim->generation = ipc->generation;
            claim->token = ++ipc->shared->next_token;
            claim->expires = apr_time_now() + lease_length(s);
            slot->claim = *claim;
            slot->reap_requested = 0;
            slot->stats.last_start = now;
        }
        unlock_slot(ipc);
    }
    return claimed;
}

int okey_shm_renew_reap(server_rec *s, const okey_claim_t *claim)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    int held = slot && slot->claim.token == claim->token;

    if (held) {
        slot->claim.expires = apr_time_now() + lease_length(s);
    }
    if (slot) {
        unlock_slot(ipc);
    }
    return held;
}

void okey_shm_finish_reap(server_rec *s, const okey_claim_t *claim,
                          const okey_reap_summary_t *sum)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    okey_stats_t *stats = slot ? &slot->stats : NULL;

    if (slot && slot->claim.token == claim->token) {
        memset(&slot->claim, 0, sizeof(slot->claim));
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
        /* A reap cut short by a stop did not fail. */
        stats->reap_failures += ((sum->error && !sum->cancelled) || sum->failed) ? 1 : 0;
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

apr_int64_t okey_shm_reap_due_in(server_rec *s)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    apr_int64_t interval = okey_server_conf(s)->cfg->cleanup_interval;
    apr_int64_t wait = interval;

    if (slot) {
        wait = due_in(slot, interval, okey_now());
        if (lease_held(s, &slot->claim)) {
            /* Due again when the lease lapses, should its holder stop. */
            apr_int64_t lapse = apr_time_sec(slot->claim.expires - apr_time_now()) + 1;

            wait = lapse > wait ? lapse : wait;
            wait = wait > interval ? interval : wait;
        }
        unlock_slot(ipc);
    }
    return wait;
}

void okey_shm_request_reap(server_rec *s)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);

    if (slot) {
        slot->reap_requested = 1;
        unlock_slot(ipc);
    }
}

/* --- accounts whose creation got no clear answer -------------------------- */

void okey_shm_add_suspect(server_rec *s, const char *name, apr_int64_t due)
{
    ipc_t *ipc;
    slot_t *slot = strlen(name) < SUSPECT_NAME_MAX ? lock_slot(s, &ipc) : NULL;
    int pick = 0;
    int i;

    if (slot) {
        /* A free entry, else the one due first: the list stays bounded. */
        for (i = 1; i < SUSPECTS && slot->suspects[pick].name[0]; i++) {
            if (!slot->suspects[i].name[0] || slot->suspects[i].due < slot->suspects[pick].due) {
                pick = i;
            }
        }
        if (slot->suspects[pick].name[0]) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, OKEY_LOGNO(039) "more creations "
                         "without a clear answer than can be checked: service account %s "
                         "is not looked for, and if it was made lives until the expiry "
                         "its name carries", slot->suspects[pick].name);
        }
        apr_cpystrn(slot->suspects[pick].name, name, SUSPECT_NAME_MAX);
        slot->suspects[pick].due = due;
        unlock_slot(ipc);
    }
}

apr_hash_t *okey_shm_due_suspects(server_rec *s, apr_pool_t *pool, apr_int64_t now)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    apr_hash_t *due = NULL;
    int i;

    for (i = 0; slot && i < SUSPECTS; i++) {
        if (slot->suspects[i].name[0] && slot->suspects[i].due <= now) {
            due = due ? due : apr_hash_make(pool);
            apr_hash_set(due, apr_pstrdup(pool, slot->suspects[i].name),
                         APR_HASH_KEY_STRING, apr_pcalloc(pool, sizeof(int)));
        }
    }
    if (slot) {
        unlock_slot(ipc);
    }
    return due;
}

void okey_shm_drop_suspects(server_rec *s, apr_hash_t *looked_for)
{
    ipc_t *ipc;
    slot_t *slot = looked_for ? lock_slot(s, &ipc) : NULL;
    int i;

    for (i = 0; slot && i < SUSPECTS; i++) {
        if (slot->suspects[i].name[0] &&
            apr_hash_get(looked_for, slot->suspects[i].name, APR_HASH_KEY_STRING)) {
            slot->suspects[i].name[0] = '\0';
        }
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

/* --- the cap's index of live keys ---------------------------------------- */

static void email_hash(const char *email, unsigned char hash[16])
{
    unsigned char digest[32];
    char lower[512];
    apr_size_t i;

    for (i = 0; email[i] && i < sizeof(lower) - 1; i++) {
        lower[i] = apr_tolower(email[i]);
    }
    lower[i] = '\0';
    okey_sha256(lower, i, digest);
    memcpy(hash, digest, 16);
}

/* Writes key into entry; 0 when its ids or its name do not fit. */
static int index_entry(apr_pool_t *pool, index_key_t *entry, const okey_owned_key_t *key,
                       const char *email, apr_time_t added)
{
    const char *tag = okey_keys_name_tag(pool, key->name);
    apr_int64_t named = 0;
    const char *owner = NULL;
    int fits = strlen(key->service_account_id) < INDEX_ID_MAX &&
               strlen(key->project_id) < INDEX_ID_MAX && tag &&
               okey_keys_parse_name(pool, key->name, &named, &owner);

    if (fits) {
        email_hash(email, entry->email);
        apr_cpystrn(entry->id, key->service_account_id, sizeof(entry->id));
        apr_cpystrn(entry->project_id, key->project_id, sizeof(entry->project_id));
        apr_cpystrn(entry->tag, tag, sizeof(entry->tag));
        entry->named = named;
        entry->created_at = key->created_at;
        entry->expires = key->expires;
        entry->added = added;
    }
    return fits;
}

static int find_key(const index_key_t *keys, int count, const char *id)
{
    int found = -1;
    int i;

    for (i = 0; i < count && found < 0; i++) {
        found = strcmp(keys[i].id, id) ? -1 : i;
    }
    return found;
}

/* Whether this server deleted the key id at or after since. */
static int gone_since(const key_index_t *index, const char *id, apr_time_t since)
{
    int gone = 0;
    int i;

    for (i = 0; i < INDEX_GONE && !gone; i++) {
        gone = index->gone[i].at >= since && !strcmp(index->gone[i].id, id);
    }
    return gone;
}

void okey_shm_index_fill(server_rec *s, apr_pool_t *pool,
                         const apr_array_header_t *live, apr_time_t started)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    key_index_t *index = slot ? &slot->index : NULL;
    index_key_t *kept = apr_palloc(pool, sizeof(index->keys));
    int count = 0;
    int registered;
    int fits = 1;
    int i;

    /* Keys sign-ins added since the listing began may be missing from it. */
    for (i = 0; index && i < index->count; i++) {
        if (index->keys[i].added >= started) {
            kept[count++] = index->keys[i];
        }
    }
    registered = count;
    for (i = 0; index && i < live->nelts && fits; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(live, i, okey_owned_key_t);
        apr_int64_t expires = 0;
        const char *email = NULL;

        if (find_key(kept, count, key->service_account_id) < 0 &&
            !gone_since(index, key->service_account_id, started) &&
            okey_keys_parse_name(pool, key->name, &expires, &email)) {
            fits = count < INDEX_KEYS && index_entry(pool, &kept[count], key, email, 0);
            count += fits;
        }
    }
    if (index) {
        /* Overflowed, it keeps the registrations: racing sign-ins still see
         * each other's keys, though they list the rest. */
        index->count = fits ? count : registered;
        memcpy(index->keys, kept, sizeof(index_key_t) * (apr_size_t)index->count);
        index->state = fits ? INDEX_FILLED : INDEX_OVERFLOW;
        unlock_slot(ipc);
    }
}

/* Makes room for one more registration: a full index keeps only the
 * registrations (and no longer answers), then only the newer half of them. */
static void index_make_room(key_index_t *index)
{
    int kept = 0;
    int i;

    if (index->count >= INDEX_KEYS && index->state != INDEX_OVERFLOW) {
        for (i = 0; i < index->count; i++) {
            if (index->keys[i].added) {
                index->keys[kept++] = index->keys[i];
            }
        }
        index->count = kept;
        index->state = INDEX_OVERFLOW;
    }
    if (index->count >= INDEX_KEYS) {
        memmove(index->keys, index->keys + INDEX_KEYS / 2,
                sizeof(index_key_t) * (INDEX_KEYS - INDEX_KEYS / 2));
        index->count = INDEX_KEYS - INDEX_KEYS / 2;
    }
}

/* Appends a key a sign-in made; 0 when its ids or name do not fit an
 * entry. */
static int index_append(apr_pool_t *pool, key_index_t *index, const okey_issued_t *issued)
{
    okey_owned_key_t key = {issued->service_account_id, issued->name, issued->project_id,
                            issued->created_at, issued->expires};
    int added;

    index_make_room(index);
    added = index_entry(pool, &index->keys[index->count], &key, issued->email,
                        apr_time_now());
    index->count += added;
    return added;
}

/* The index's live keys of the address hashed, in project_id (NULL: any). */
static apr_array_header_t *index_view(apr_pool_t *pool, const key_index_t *index,
                                      const unsigned char hash[16], const char *email,
                                      const char *project_id, apr_int64_t now)
{
    apr_array_header_t *keys = apr_array_make(pool, 4, sizeof(okey_owned_key_t));
    int i;

    for (i = 0; i < index->count; i++) {
        const index_key_t *entry = &index->keys[i];

        /* An expired key is the reaper's, and counts against nobody. */
        if (!memcmp(entry->email, hash, 16) && entry->expires > now &&
            (!project_id || !strcmp(entry->project_id, project_id))) {
            okey_owned_key_t *key = apr_array_push(keys);

            key->service_account_id = apr_pstrdup(pool, entry->id);
            key->name = entry->tag[0]
                        ? okey_keys_name_tagged(pool, entry->named, entry->tag, email)
                        : apr_psprintf(pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%s",
                                       entry->named, email);
            key->project_id = apr_pstrdup(pool, entry->project_id);
            key->created_at = entry->created_at;
            key->expires = entry->expires;
        }
    }
    return keys;
}

int okey_shm_index_register(server_rec *s, apr_pool_t *pool, const okey_issued_t *issued,
                            apr_array_header_t **keys)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    unsigned char hash[16];
    int answered = 0;

    email_hash(issued->email, hash);
    *keys = apr_array_make(pool, 1, sizeof(okey_owned_key_t));
    if (slot) {
        answered = index_append(pool, &slot->index, issued) &&
                   slot->index.state == INDEX_FILLED;
        *keys = index_view(pool, &slot->index, hash, issued->email, issued->project_id,
                           okey_now());
        unlock_slot(ipc);
    }
    return answered;
}

void okey_shm_index_remove(server_rec *s, const char *service_account_id)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    key_index_t *index = slot ? &slot->index : NULL;
    int at = index ? find_key(index->keys, index->count, service_account_id) : -1;

    if (index && strlen(service_account_id) < INDEX_ID_MAX) {
        gone_key_t *gone = &index->gone[index->next_gone];

        apr_cpystrn(gone->id, service_account_id, sizeof(gone->id));
        gone->at = apr_time_now();
        index->next_gone = (index->next_gone + 1) % INDEX_GONE;
    }
    if (at >= 0) {
        index->keys[at] = index->keys[index->count - 1];
        index->count--;
    }
    if (slot) {
        unlock_slot(ipc);
    }
}

/* --- how often My keys lists ---------------------------------------------- */

static lister_t *lister_of(slot_t *slot, const unsigned char hash[16])
{
    lister_t *found = NULL;
    lister_t *stalest = &slot->listers[0];
    int i;

    for (i = 0; i < LISTERS && !found; i++) {
        lister_t *each = &slot->listers[i];

        found = memcmp(each->email, hash, 16) || !each->rate.last ? NULL : each;
        stalest = each->rate.last < stalest->rate.last ? each : stalest;
    }
    if (!found) {
        memset(stalest, 0, sizeof(*stalest));
        memcpy(stalest->email, hash, 16);
        found = stalest;
    }
    return found;
}

int okey_shm_may_list(server_rec *s, const char *email, apr_int64_t *retry_after)
{
    ipc_t *ipc;
    slot_t *slot = lock_slot(s, &ipc);
    unsigned char hash[16];
    int allowed = 1;

    *retry_after = 0;
    email_hash(email, hash);
    if (slot) {
        allowed = okey_rate_take(&lister_of(slot, hash)->rate, apr_time_now(),
                                 LISTING_BURST, LISTING_REFILL, retry_after);
        unlock_slot(ipc);
    }
    return allowed;
}
