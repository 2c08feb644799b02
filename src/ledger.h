/* The ledger: everything a key server keeps beyond one request, behind one
 * interface. Project ids, the reap lease, the records of issued keys (the
 * cap's view of each person's live keys), pending orphan checks, one-time
 * marks, and how often each person may list. OpenAI stays the record of
 * which keys exist: a ledger that is lost or stale is rebuilt from the next
 * full listing (okey_ledger_fill), and no key is lost with it.
 *
 * A ledger is a table of operations and a baton. Three backends implement
 * it: memory (one process, for tests), shared memory (the children of one
 * server) and Redis (a fleet). okey_ledger_* calls the backend and, when a
 * fallback is set, turns to it when the backend fails: a fleet whose Redis
 * is down goes on with each server's own shared memory. Callers never know
 * the backend. */
#ifndef OKEY_LEDGER_H
#define OKEY_LEDGER_H

#include <apr_errno.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "okey.h"
#include "terms.h"

/* A held reap lease. token names the holder: unique per claim, fleet-wide. */
typedef struct okey_ledger_lease_t {
    char token[40];
    apr_time_t expires;
} okey_ledger_lease_t;

/* What the ledger keeps beyond a stop (Redis; shm: files under
 * OpenAIKeyStateDir; memory: the process), in two kinds of named texts:
 *   OKEY_STORE_KEYS   a key id (key_...) -> the attribution of that key
 *                     (spend.h): whose it was, which account, which project
 *   OKEY_STORE_SPEND  "index", or a person (okey_ledger_person, hexed) ->
 *                     a spend document (spend.h)
 * A name is 1 to OKEY_STORE_NAME_MAX of [A-Za-z0-9_.-]; a text holds no NUL
 * and at most OKEY_STORE_TEXT_MAX bytes. Where others may write (Redis) each
 * text is stored with a MAC under the ledger's key, and one that fails it
 * reads as absent. */
#define OKEY_STORE_NAME_MAX 64
/* The index of every person's spend is the largest text: 16 MiB holds
 * some 25 000 people who spent on many days. */
#define OKEY_STORE_TEXT_MAX (16 * 1024 * 1024)
typedef enum { OKEY_STORE_KEYS, OKEY_STORE_SPEND, OKEY_STORE_KINDS } okey_store_e;

/* The operations of a backend. Each returns APR_SUCCESS, or an error when
 * the backend could not be reached or answered nonsense: then nothing it
 * was asked to change is assumed changed, and the outputs are unset. */
typedef struct okey_ledger_ops_t {
    const char *name; /* "memory", "shm", "redis": for messages */

    /* --- project ids, per configured project (a name or proj_...) --- */
    /* *id: the stored id, or NULL. */
    apr_status_t (*project_get)(void *baton, apr_pool_t *pool, const char *project,
                                const char **id);
    /* Stores id; or, when id is NULL, forgets stale if it is still stored. */
    apr_status_t (*project_set)(void *baton, const char *project, const char *id,
                                const char *stale);
    /* Takes the lock that lets one creator at a time find or create the
     * project, waiting at most wait; *taken 0 when it was not taken. A lock
     * lapses after length should its holder die. */
    apr_status_t (*project_lock)(void *baton, const char *project, apr_interval_time_t wait,
                                 apr_interval_time_t length, int *taken);
    apr_status_t (*project_unlock)(void *baton, const char *project);

    /* --- the reap lease --- */
    /* Claims the reap when none is held (a lapsed lease is free) and it is
     * due: forced, requested, interval seconds since the last claim, or an
     * orphan check due. Sets *lease, holding it for length. */
    apr_status_t (*lease_claim)(void *baton, apr_time_t now, apr_int64_t interval,
                                apr_interval_time_t length, int force,
                                okey_ledger_lease_t *lease, int *claimed);
    /* Extends a held lease by length from now; *held 0 when it was lost. */
    apr_status_t (*lease_renew)(void *baton, okey_ledger_lease_t *lease, apr_time_t now,
                                apr_interval_time_t length, int *held);
    /* Gives the lease back, if still held by lease's holder. */
    apr_status_t (*lease_release)(void *baton, const okey_ledger_lease_t *lease);
    /* Seconds until a claim would succeed (0: now); *held whether a lease
     * is held at now. */
    apr_status_t (*lease_due_in)(void *baton, apr_time_t now, apr_int64_t interval,
                                 apr_int64_t *seconds, int *held);
    /* Asks for a reap as soon as a reaper can claim one. */
    apr_status_t (*reap_request)(void *baton);

    /* --- creations without a clear answer (orphan checks) --- */
    apr_status_t (*suspect_add)(void *baton, const char *name, apr_int64_t due);
    /* The names due by now (each mapped to an int, 0), or NULL when none. */
    apr_status_t (*suspects_due)(void *baton, apr_pool_t *pool, apr_int64_t now,
                                 apr_hash_t **names);
    /* Forgets the names a finished reap looked for. */
    apr_status_t (*suspects_drop)(void *baton, apr_hash_t *names);

    /* --- records of issued keys --- */
    /* Replaces the records with a full listing of every project (live, of
     * okey_owned_key_t, names as listed) that began at started: records
     * added since started stay, keys forgotten since started are not
     * brought back. The ledger answers for every person afterwards, unless
     * it had no room. */
    apr_status_t (*fill)(void *baton, apr_pool_t *pool, const apr_array_header_t *live,
                         apr_time_t started);
    /* Records a key just issued to email, after every record before it,
     * ranked (okey_ledger_added) after every key of email it holds, and
     * gives, in the same atomic step, email's keys in key's project that
     * expire after now (key among them, the newest, when there was room).
     * *complete: whether that is every such key (a fill has made the
     * ledger answer). A fill keeps the rank of a key recorded before. */
    apr_status_t (*record)(void *baton, apr_pool_t *pool, const char *email,
                           const okey_owned_key_t *key, apr_time_t now,
                           apr_array_header_t **keys, int *complete);
    /* Forgets a key that was deleted; a fill that began before now does
     * not bring it back. */
    apr_status_t (*forget)(void *baton, const char *email, const char *project_id,
                           const char *service_account_id, apr_time_t now);
    /* email's recorded keys (of okey_owned_key_t) in project_id, or in
     * every project when NULL, expired ones too. *complete as for record. */
    apr_status_t (*keys_of)(void *baton, apr_pool_t *pool, const char *email,
                            const char *project_id, apr_array_header_t **keys,
                            int *complete);
    /* How many keys are recorded. */
    apr_status_t (*count)(void *baton, apr_int64_t *records);

    /* --- one-time marks and rates --- */
    /* Marks what (a short string) as used until expires; *first 1 the first
     * time, 0 when it was marked already. */
    apr_status_t (*mark_once)(void *baton, const char *what, apr_time_t now,
                              apr_time_t expires, int *first);
    /* Whether email may have the projects listed now, at most once per
     * every; else *retry_after the whole seconds until it may. */
    apr_status_t (*may_list)(void *baton, const char *email, apr_time_t now,
                             apr_interval_time_t every, int *allowed,
                             apr_int64_t *retry_after);

    /* --- what outlives a stop (see okey_store_e) --- */
    /* Stores text under name, replacing what it held. */
    apr_status_t (*store_put)(void *baton, okey_store_e kind, const char *name,
                              const char *text);
    /* *text: what name holds, or NULL. */
    apr_status_t (*store_get)(void *baton, apr_pool_t *pool, okey_store_e kind,
                              const char *name, const char **text);
    /* Every entry of kind: name -> text (const char *). */
    apr_status_t (*store_all)(void *baton, apr_pool_t *pool, okey_store_e kind,
                              apr_hash_t **entries);
    /* Removes the names (the keys of names) from kind. */
    apr_status_t (*store_drop)(void *baton, okey_store_e kind, apr_hash_t *names);
    /* Makes entries (name -> text) all that kind holds, in one step as
     * readers see it: a reader gets all of the old or all of the new. */
    apr_status_t (*store_replace)(void *baton, okey_store_e kind, apr_hash_t *entries);
} okey_ledger_ops_t;

/* What a ledger has been through, for /status and /metrics. */
typedef struct okey_ledger_health_t {
    int up;                     /* the backend answered the last call */
    apr_uint64_t errors;        /* calls it failed, since startup */
    apr_time_t last_complaint;  /* the last time a failure was logged */
} okey_ledger_health_t;

typedef struct okey_ledger_t okey_ledger_t;
struct okey_ledger_t {
    const okey_ledger_ops_t *ops;
    void *baton;
    okey_ledger_t *fallback;      /* used when ops fail; NULL: none */
    okey_ledger_health_t *health; /* NULL: not kept */
    const okey_logger_t *logger;  /* failures, at most one line a minute */
};

/* --- calls ------------------------------------------------------------------
 * Each calls the backend, and on its failure the fallback (when there is
 * one), logging at most one line a minute. Each returns whether some ledger
 * answered; when none did, outputs hold their safe defaults (nothing
 * stored, not claimed, not complete, marked already not known: first 1). */

int okey_ledger_project_get(okey_ledger_t *ledger, apr_pool_t *pool, const char *project,
                            const char **id);
int okey_ledger_project_set(okey_ledger_t *ledger, const char *project, const char *id,
                            const char *stale);
int okey_ledger_project_lock(okey_ledger_t *ledger, const char *project,
                             apr_interval_time_t wait, apr_interval_time_t length,
                             int *taken);
int okey_ledger_project_unlock(okey_ledger_t *ledger, const char *project);

int okey_ledger_lease_claim(okey_ledger_t *ledger, apr_time_t now, apr_int64_t interval,
                            apr_interval_time_t length, int force,
                            okey_ledger_lease_t *lease, int *claimed);
int okey_ledger_lease_renew(okey_ledger_t *ledger, okey_ledger_lease_t *lease,
                            apr_time_t now, apr_interval_time_t length, int *held);
int okey_ledger_lease_release(okey_ledger_t *ledger, const okey_ledger_lease_t *lease);
int okey_ledger_lease_due_in(okey_ledger_t *ledger, apr_time_t now, apr_int64_t interval,
                             apr_int64_t *seconds, int *held);
int okey_ledger_reap_request(okey_ledger_t *ledger);

int okey_ledger_suspect_add(okey_ledger_t *ledger, const char *name, apr_int64_t due);
int okey_ledger_suspects_due(okey_ledger_t *ledger, apr_pool_t *pool, apr_int64_t now,
                             apr_hash_t **names);
int okey_ledger_suspects_drop(okey_ledger_t *ledger, apr_hash_t *names);

int okey_ledger_fill(okey_ledger_t *ledger, apr_pool_t *pool, const apr_array_header_t *live,
                     apr_time_t started);
int okey_ledger_record(okey_ledger_t *ledger, apr_pool_t *pool, const char *email,
                       const okey_owned_key_t *key, apr_time_t now,
                       apr_array_header_t **keys, int *complete);
int okey_ledger_forget(okey_ledger_t *ledger, const char *email, const char *project_id,
                       const char *service_account_id, apr_time_t now);
int okey_ledger_keys_of(okey_ledger_t *ledger, apr_pool_t *pool, const char *email,
                        const char *project_id, apr_array_header_t **keys, int *complete);
int okey_ledger_count(okey_ledger_t *ledger, apr_int64_t *records);

int okey_ledger_mark_once(okey_ledger_t *ledger, const char *what, apr_time_t now,
                          apr_time_t expires, int *first);
int okey_ledger_may_list(okey_ledger_t *ledger, const char *email, apr_time_t now,
                         apr_interval_time_t every, int *allowed, apr_int64_t *retry_after);

int okey_ledger_store_put(okey_ledger_t *ledger, okey_store_e kind, const char *name,
                          const char *text);
int okey_ledger_store_get(okey_ledger_t *ledger, apr_pool_t *pool, okey_store_e kind,
                          const char *name, const char **text);
int okey_ledger_store_all(okey_ledger_t *ledger, apr_pool_t *pool, okey_store_e kind,
                          apr_hash_t **entries);
int okey_ledger_store_drop(okey_ledger_t *ledger, okey_store_e kind, apr_hash_t *names);
int okey_ledger_store_replace(okey_ledger_t *ledger, okey_store_e kind, apr_hash_t *entries);

/* Whether name may name an entry of the store. */
int okey_store_name_valid(const char *name);

/* --- helpers the backends share ---------------------------------------------- */

/* The first 16 bytes of SHA-256 of email in lower case: how every backend
 * files a person, so that no address is stored where a hash will do. */
void okey_ledger_person(const char *email, unsigned char hash[16]);

/* When a record made at now is said to be added, so that it ranks after
 * newest, the highest rank among its owner's keys: now, or just after. */
apr_time_t okey_ledger_added(apr_time_t now, apr_int64_t newest);

/* key's name for email, rebuilt from what a record holds: the expiry its
 * name gives (named) and its tag (empty: an untagged name). */
const char *okey_ledger_name(apr_pool_t *pool, const char *email, apr_int64_t named,
                             const char *tag);

/* --- backends ------------------------------------------------------------------ */

/* One process's ledger, in pool, safe between its threads: for tests, and
 * as the reference the others are held to. */
apr_status_t okey_ledger_memory_create(apr_pool_t *pool, okey_ledger_t **ledger);

/* The shared-memory ledger of one key server, for the children of one
 * httpd. Its segment, of okey_ledger_shm_size bytes for capacity records,
 * is made once by its owner, zeroed (as fresh shared memory is), set up
 * once with okey_ledger_shm_init (which touches only its header), and
 * attached to by each configuration; mutex guards it (a pointer to the
 * owner's, which child_init may reopen). A segment of another layout
 * (okey_ledger_shm_layout) is refused: APR_EINVAL. What outlives a stop
 * is kept in files under state_dir, made by whoever first writes there
 * (the children: the server's User); NULL: the store answers APR_ENOTIMPL. */
apr_size_t okey_ledger_shm_size(apr_uint32_t capacity);
/* The records a segment holds for a key server whose listing may hold
 * live_keys (OpenAIKeyLedgerSize): an eighth more, so that the sign-ins
 * between two reaps of a project that full still find room. */
apr_uint32_t okey_ledger_shm_capacity(apr_int64_t live_keys);
const char *okey_ledger_shm_layout(apr_pool_t *pool);
void okey_ledger_shm_init(void *base, apr_uint32_t capacity, const char *layout);
apr_status_t okey_ledger_shm_attach(apr_pool_t *pool, void *base, apr_size_t size,
                                    apr_global_mutex_t **mutex, const char *state_dir,
                                    const okey_logger_t *logger, okey_ledger_t **ledger);

#endif
