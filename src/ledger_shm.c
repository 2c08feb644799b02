/* The shared-memory ledger: one segment per key server, shared by the
 * children of one httpd under a global mutex. Records sit in a fixed array
 * with two chained hash indexes (by service account id, by person), so
 * that every operation a sign-in makes costs the same at 1 000 records as
 * at 100 000. Whoever owns the segment sizes it with okey_ledger_shm_size,
 * keeps it across restarts, and attaches to it once per configuration. */
#include "ledger.h"
#include "lease.h"
#include "name.h"

#include <apr_atomic.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#define ID_MAX 48
#define PROJECT_MAX 128
#define PROJECTS 16
#define SUSPECTS 64
#define SUSPECT_NAME_MAX 288
#define GONE 256
#define LISTERS 1024
#define MARKS 4096
#define MARK_PROBES 16
#define NIL 0             /* records are numbered from 1: zeroed memory is empty */

typedef enum {
    STATE_EMPTY,   /* no fill yet: the ledger cannot answer for anyone */
    STATE_FILLED,
    STATE_OVERFLOW /* more keys than room: it cannot answer until a fill fits */
} ledger_state_e;

typedef struct {
    char id[ID_MAX];              /* empty: free */
    char project_id[ID_MAX];
    unsigned char person[16];
    char tag[OKEY_KEYS_TAG_LEN + 1];
    apr_int64_t named, created_at, expires;
    apr_time_t added;             /* by record, when; 0: by a fill */
    apr_uint32_t next_by_id, next_by_person; /* chains; next free when free */
} record_t;

typedef struct {
    char project[PROJECT_MAX];    /* empty: unused */
    char id[PROJECT_MAX];
    apr_time_t lock_expires;
    apr_interval_time_t lock_length;
} project_t;

typedef struct {
    char name[SUSPECT_NAME_MAX];  /* empty: unused */
    apr_int64_t due;
} suspect_t;

typedef struct {
    char id[ID_MAX];
    apr_time_t at;
} gone_t;

typedef struct {
    unsigned char person[16];
    apr_time_t last;              /* 0: unused */
} lister_t;

typedef struct {
    unsigned char what[16];
    apr_time_t expires;           /* 0: unused */
} mark_t;

typedef struct {
    char layout[64];
    apr_uint32_t capacity, buckets;
    ledger_state_e state;
    apr_int32_t count;
    apr_uint32_t free_head;       /* a freed record, or NIL */
    apr_uint32_t used;            /* records 1..used were ever taken */
    apr_uint64_t next_token;
    okey_ledger_lease_t lease;
    apr_interval_time_t lease_length;
    apr_int64_t last_claim;       /* Unix seconds */
    int requested;
    project_t projects[PROJECTS];
    suspect_t suspects[SUSPECTS];
    gone_t gone[GONE];            /* a ring, the oldest overwritten */
    int next_gone;
    lister_t listers[LISTERS];
    mark_t marks[MARKS];
} header_t;

typedef struct {
    header_t *header;
    record_t *records;
    apr_uint32_t *by_id, *by_person;
    apr_global_mutex_t **mutex;
    const okey_logger_t *logger;
    const char *state_dir;        /* NULL: nothing outlives a stop */
} shm_ledger_t;

/* Buckets: a power of two at least the capacity. */
static apr_uint32_t buckets_for(apr_uint32_t capacity)
{
    apr_uint32_t buckets = 64;

    while (buckets < capacity && buckets < (1u << 30)) {
        buckets <<= 1;
    }
    return buckets;
}

static apr_size_t align8(apr_size_t size)
{
    return (size + 7) & ~(apr_size_t)7;
}

apr_uint32_t okey_ledger_shm_capacity(apr_int64_t live_keys)
{
    apr_int64_t capacity = live_keys + live_keys / 8;

    return capacity > 0 && capacity < (apr_int64_t)(1u << 30) ? (apr_uint32_t)capacity
                                                               : 1u << 30;
}

apr_size_t okey_ledger_shm_size(apr_uint32_t capacity)
{
    return align8(sizeof(header_t)) + align8(sizeof(record_t) * capacity) +
           2 * align8(sizeof(apr_uint32_t) * buckets_for(capacity));
}

static const char *hex(apr_pool_t *pool, const unsigned char *bytes, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *text = apr_palloc(pool, 2 * len + 1);
    apr_size_t i;

    for (i = 0; i < len; i++) {
        text[2 * i] = digits[bytes[i] >> 4];
        text[2 * i + 1] = digits[bytes[i] & 15];
    }
    text[2 * len] = '\0';
    return text;
}

/* The layout's version, from the structure itself: a build whose records
 * or header differ in any size or place reads as another layout. */
const char *okey_ledger_shm_layout(apr_pool_t *pool)
{
    unsigned char digest[32];
    const char *shape = apr_psprintf(
        pool, "h%lu r%lu %lu %lu %lu %lu %lu %lu %lu %lu %lu p%lu s%lu g%lu l%lu m%lu "
        "%d %d %d %d %d",
        (unsigned long)sizeof(header_t), (unsigned long)sizeof(record_t),
        (unsigned long)offsetof(record_t, project_id), (unsigned long)offsetof(record_t, person),
        (unsigned long)offsetof(record_t, tag), (unsigned long)offsetof(record_t, named),
        (unsigned long)offsetof(record_t, added), (unsigned long)offsetof(record_t, next_by_id),
        (unsigned long)offsetof(header_t, lease), (unsigned long)offsetof(header_t, projects),
        (unsigned long)offsetof(header_t, marks),
        (unsigned long)sizeof(project_t), (unsigned long)sizeof(suspect_t),
        (unsigned long)sizeof(gone_t), (unsigned long)sizeof(lister_t),
        (unsigned long)sizeof(mark_t), PROJECTS, SUSPECTS, GONE, LISTERS, MARKS);

    okey_sha256(shape, strlen(shape), digest);
    return apr_pstrcat(pool, "okey-ledger-shm-", hex(pool, digest, 8), NULL);
}

static void lock(shm_ledger_t *ledger)
{
    apr_global_mutex_lock(*ledger->mutex);
}

static void unlock(shm_ledger_t *ledger)
{
    apr_global_mutex_unlock(*ledger->mutex);
}

static apr_uint32_t bucket_of(const shm_ledger_t *ledger, const void *bytes, apr_size_t len)
{
    const unsigned char *each = bytes;
    apr_uint32_t hash = 2166136261u;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        hash = (hash ^ each[i]) * 16777619u;
    }
    return hash & (ledger->header->buckets - 1);
}

static apr_uint32_t id_bucket(const shm_ledger_t *ledger, const char *id)
{
    return bucket_of(ledger, id, strlen(id));
}

static apr_uint32_t person_bucket(const shm_ledger_t *ledger, const unsigned char person[16])
{
    return bucket_of(ledger, person, 16);
}

void okey_ledger_shm_init(void *base, apr_uint32_t capacity, const char *layout)
{
    header_t *header = base;

    /* The rest is zero, as fresh shared memory is: every chain empty. */
    memset(header, 0, sizeof(*header));
    apr_cpystrn(header->layout, layout, sizeof(header->layout));
    header->capacity = capacity;
    header->buckets = buckets_for(capacity);
    header->state = STATE_EMPTY;
}

static record_t *rec(const shm_ledger_t *ledger, apr_uint32_t at)
{
    return &ledger->records[at - 1];
}

static apr_uint32_t find_id(const shm_ledger_t *ledger, const char *id)
{
    apr_uint32_t at = ledger->by_id[id_bucket(ledger, id)];
    apr_uint32_t steps = 0;

    while (at != NIL && strcmp(rec(ledger, at)->id, id) &&
           steps++ < ledger->header->capacity) {
        at = rec(ledger, at)->next_by_id;
    }
    return at;
}

/* Puts a copy of entry in a free record, chained; NIL when none is free. */
static apr_uint32_t insert(shm_ledger_t *ledger, const record_t *entry)
{
    header_t *header = ledger->header;
    apr_uint32_t at = header->free_head ? header->free_head
                      : header->used < header->capacity ? header->used + 1 : NIL;
    record_t *record = at != NIL ? rec(ledger, at) : NULL;

    if (record) {
        apr_uint32_t by_id = id_bucket(ledger, entry->id);
        apr_uint32_t by_person = person_bucket(ledger, entry->person);

        header->free_head = at == header->free_head ? record->next_by_person
                                                    : header->free_head;
        header->used = at > header->used ? at : header->used;
        *record = *entry;
        record->next_by_id = ledger->by_id[by_id];
        ledger->by_id[by_id] = at;
        record->next_by_person = ledger->by_person[by_person];
        ledger->by_person[by_person] = at;
        header->count++;
    }
    return at;
}

/* Unlinks the record at from chain *head through the link at offset. */
static void unchain(shm_ledger_t *ledger, apr_uint32_t *head, apr_uint32_t at, size_t link)
{
    apr_uint32_t *next = head;
    apr_uint32_t steps = 0;

    while (*next != NIL && *next != at && steps++ < ledger->header->capacity) {
        next = (apr_uint32_t *)((char *)rec(ledger, *next) + link);
    }
    if (*next == at) {
        *next = *(apr_uint32_t *)((char *)rec(ledger, at) + link);
    }
}

static void remove_at(shm_ledger_t *ledger, apr_uint32_t at)
{
    record_t *record = rec(ledger, at);

    unchain(ledger, &ledger->by_id[id_bucket(ledger, record->id)], at,
            offsetof(record_t, next_by_id));
    unchain(ledger, &ledger->by_person[person_bucket(ledger, record->person)], at,
            offsetof(record_t, next_by_person));
    record->id[0] = '\0';
    record->next_by_id = NIL;
    record->next_by_person = ledger->header->free_head;
    ledger->header->free_head = at;
    ledger->header->count--;
}

/* A record of key for email, in entry; 0 when it does not fit one or its
 * name is not one of ours. */
static int make_entry(apr_pool_t *pool, const char *email, const okey_owned_key_t *key,
                      apr_time_t added, record_t *entry)
{
    const char *tag = okey_keys_name_tag(pool, key->name);
    apr_int64_t named = 0;
    const char *owner = NULL;
    int fits = key->service_account_id[0] && strlen(key->service_account_id) < ID_MAX &&
               strlen(key->project_id) < ID_MAX && tag &&
               strlen(tag) <= OKEY_KEYS_TAG_LEN &&
               okey_keys_parse_name(pool, key->name, &named, &owner);

    memset(entry, 0, sizeof(*entry));
    if (fits) {
        okey_ledger_person(email ? email : owner, entry->person);
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

static void push_key(apr_pool_t *pool, apr_array_header_t *keys, const record_t *record,
                     const char *email)
{
    okey_owned_key_t *key = apr_array_push(keys);

    key->service_account_id = apr_pstrdup(pool, record->id);
    key->name = okey_ledger_name(pool, email, record->named, record->tag);
    key->project_id = apr_pstrdup(pool, record->project_id);
    key->created_at = record->created_at;
    key->expires = record->expires;
    key->rank = okey_terms_rank(record->added, record->created_at);
}

/* The highest rank among the records of person; 0 when none. */
static apr_int64_t newest_rank(shm_ledger_t *ledger, const unsigned char *person)
{
    apr_int64_t newest = 0;
    apr_uint32_t at = ledger->by_person[person_bucket(ledger, person)];
    apr_uint32_t steps = 0;

    while (at != NIL && steps++ < ledger->header->capacity) {
        const record_t *record = rec(ledger, at);
        apr_int64_t rank = okey_terms_rank(record->added, record->created_at);

        if (!memcmp(record->person, person, 16) && rank > newest) {
            newest = rank;
        }
        at = record->next_by_person;
    }
    return newest;
}

/* The person's records in project_id (NULL: any) expiring after now (0:
 * expired ones too). */
static apr_array_header_t *person_keys(shm_ledger_t *ledger, apr_pool_t *pool,
                                       const char *email, const char *project_id,
                                       apr_int64_t now)
{
    apr_array_header_t *keys = apr_array_make(pool, 4, sizeof(okey_owned_key_t));
    unsigned char person[16];
    apr_uint32_t at;
    apr_uint32_t steps = 0;

    okey_ledger_person(email, person);
    at = ledger->by_person[person_bucket(ledger, person)];
    while (at != NIL && steps++ < ledger->header->capacity) {
        const record_t *record = rec(ledger, at);

        if (!memcmp(record->person, person, 16) && (!now || record->expires > now) &&
            (!project_id || !strcmp(record->project_id, project_id))) {
            push_key(pool, keys, record, email);
        }
        at = record->next_by_person;
    }
    okey_terms_sort(keys);
    return keys;
}

/* --- project ids ----------------------------------------------------------- */

static project_t *project_of(header_t *header, const char *project, int make)
{
    project_t *found = NULL;
    int i;

    for (i = 0; i < PROJECTS && !found; i++) {
        found = !strcmp(header->projects[i].project, project) ? &header->projects[i] : NULL;
    }
    for (i = 0; make && i < PROJECTS && !found && strlen(project) < PROJECT_MAX; i++) {
        if (!header->projects[i].project[0]) {
            found = &header->projects[i];
            memset(found, 0, sizeof(*found));
            apr_cpystrn(found->project, project, sizeof(found->project));
        }
    }
    return found;
}

static apr_status_t shm_project_get(void *baton, apr_pool_t *pool, const char *project,
                                    const char **id)
{
    shm_ledger_t *ledger = baton;
    project_t *entry;

    lock(ledger);
    entry = project_of(ledger->header, project, 0);
    *id = entry && entry->id[0] ? apr_pstrdup(pool, entry->id) : NULL;
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_project_set(void *baton, const char *project, const char *id,
                                    const char *stale)
{
    shm_ledger_t *ledger = baton;
    project_t *entry;

    lock(ledger);
    entry = project_of(ledger->header, project, id != NULL);
    if (entry && id && strlen(id) < sizeof(entry->id)) {
        apr_cpystrn(entry->id, id, sizeof(entry->id));
    }
    else if (entry && !id && stale && !strcmp(entry->id, stale)) {
        entry->id[0] = '\0';
    }
    unlock(ledger);
    return APR_SUCCESS;
}

/* Takes the project's creation lock once free; tries until wait is over. */
static apr_status_t shm_project_lock(void *baton, const char *project, apr_interval_time_t wait,
                                     apr_interval_time_t length, int *taken)
{
    shm_ledger_t *ledger = baton;
    apr_time_t give_up = apr_time_now() + wait;
    apr_time_t now;
    int tries = 0;

    *taken = 0;
    do {
        project_t *entry;

        if (tries++) {
            apr_sleep(apr_time_from_msec(10));
        }
        /* Read under the lock: a time read before it may be older than the
         * holder's, and would make its lock look taken under a clock set back. */
        lock(ledger);
        now = apr_time_now();
        entry = project_of(ledger->header, project, 1);
        if (entry && okey_lease_free(entry->lock_expires, now, entry->lock_length)) {
            entry->lock_expires = now + length;
            entry->lock_length = length;
            *taken = 1;
        }
        unlock(ledger);
    } while (!*taken && now < give_up && tries < 100000);
    return APR_SUCCESS;
}

static apr_status_t shm_project_unlock(void *baton, const char *project)
{
    shm_ledger_t *ledger = baton;
    project_t *entry;

    lock(ledger);
    entry = project_of(ledger->header, project, 0);
    if (entry) {
        entry->lock_expires = 0;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

/* --- the reap lease ---------------------------------------------------------- */

static apr_int64_t due_in(const header_t *header, apr_int64_t interval, apr_int64_t now)
{
    apr_int64_t since = now - header->last_claim;
    apr_int64_t wait = (header->requested || since < -apr_time_sec(OKEY_LEASE_SKEW) ||
                        since >= interval)
                       ? 0 : interval - since;
    int i;

    for (i = 0; i < SUSPECTS; i++) {
        if (header->suspects[i].name[0] && header->suspects[i].due - now < wait) {
            wait = header->suspects[i].due > now ? header->suspects[i].due - now : 0;
        }
    }
    return wait;
}

static int lease_held(const header_t *header, apr_time_t now)
{
    return header->lease.token[0] &&
           !okey_lease_free(header->lease.expires, now, header->lease_length);
}

static apr_status_t shm_lease_claim(void *baton, apr_time_t now, apr_int64_t interval,
                                    apr_interval_time_t length, int force,
                                    okey_ledger_lease_t *lease, int *claimed)
{
    shm_ledger_t *ledger = baton;
    header_t *header = ledger->header;

    lock(ledger);
    *claimed = !lease_held(header, now) &&
               (force || !due_in(header, interval, apr_time_sec(now)));
    if (*claimed) {
        apr_snprintf(lease->token, sizeof(lease->token), "shm-%ld-%" APR_UINT64_T_FMT,
                     (long)getpid(), ++header->next_token);
        lease->expires = now + length;
        header->lease = *lease;
        header->lease_length = length;
        header->last_claim = apr_time_sec(now);
        header->requested = 0;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_lease_renew(void *baton, okey_ledger_lease_t *lease, apr_time_t now,
                                    apr_interval_time_t length, int *held)
{
    shm_ledger_t *ledger = baton;
    header_t *header = ledger->header;

    lock(ledger);
    *held = !strcmp(header->lease.token, lease->token) && header->lease.expires > now;
    if (*held) {
        header->lease.expires = lease->expires = now + length;
        header->lease_length = length;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_lease_release(void *baton, const okey_ledger_lease_t *lease)
{
    shm_ledger_t *ledger = baton;

    lock(ledger);
    if (!strcmp(ledger->header->lease.token, lease->token)) {
        memset(&ledger->header->lease, 0, sizeof(ledger->header->lease));
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_lease_due_in(void *baton, apr_time_t now, apr_int64_t interval,
                                     apr_int64_t *seconds, int *held)
{
    shm_ledger_t *ledger = baton;
    header_t *header = ledger->header;

    lock(ledger);
    *seconds = due_in(header, interval, apr_time_sec(now));
    *held = lease_held(header, now);
    if (*held) {
        /* Due again when the lease lapses, should its holder stop. */
        apr_int64_t lapse = apr_time_sec(header->lease.expires - now) + 1;

        *seconds = lapse > *seconds ? lapse : *seconds;
        *seconds = *seconds > interval ? interval : *seconds;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_reap_request(void *baton)
{
    shm_ledger_t *ledger = baton;

    lock(ledger);
    ledger->header->requested = 1;
    unlock(ledger);
    return APR_SUCCESS;
}

/* --- orphan checks --------------------------------------------------------- */

/* Written into a line of its own: the op has no pool to spend on it. */
static void dropped_suspect(const okey_logger_t *logger, const char *name)
{
    char line[512];

    if (logger && logger->fn && (!logger->wants || logger->wants(logger->baton,
                                                                 OKEY_LOG_WARNING))) {
        apr_snprintf(line, sizeof(line), OKEY_LOGNO(039) "more creations without a clear "
                     "answer than can be checked: service account %s is not looked for, "
                     "and if it was made lives until the expiry its name carries", name);
        logger->fn(logger->baton, __FILE__, __LINE__, OKEY_LOG_WARNING, line);
    }
}

/* The place for name: its own, a free one, else the one due first. */
static suspect_t *suspect_place(suspect_t *suspects, const char *name)
{
    suspect_t *pick = NULL;
    int i;

    for (i = 0; i < SUSPECTS && !(pick && !strcmp(pick->name, name)); i++) {
        if (!pick || !suspects[i].name[0] || !strcmp(suspects[i].name, name) ||
            (pick->name[0] && suspects[i].due < pick->due)) {
            pick = pick && !pick->name[0] && strcmp(suspects[i].name, name) ? pick
                                                                            : &suspects[i];
        }
    }
    return pick;
}

static apr_status_t shm_suspect_add(void *baton, const char *name, apr_int64_t due)
{
    shm_ledger_t *ledger = baton;
    apr_status_t rv = strlen(name) < SUSPECT_NAME_MAX ? APR_SUCCESS : APR_EINVAL;
    suspect_t *place;

    if (rv == APR_SUCCESS) {
        lock(ledger);
        place = suspect_place(ledger->header->suspects, name);
        if (place->name[0] && strcmp(place->name, name)) {
            dropped_suspect(ledger->logger, place->name);
        }
        apr_cpystrn(place->name, name, SUSPECT_NAME_MAX);
        place->due = due;
        unlock(ledger);
    }
    return rv;
}

static apr_status_t shm_suspects_due(void *baton, apr_pool_t *pool, apr_int64_t now,
                                     apr_hash_t **names)
{
    shm_ledger_t *ledger = baton;
    suspect_t *suspects = ledger->header->suspects;
    int i;

    *names = NULL;
    lock(ledger);
    for (i = 0; i < SUSPECTS; i++) {
        if (suspects[i].name[0] && suspects[i].due <= now) {
            *names = *names ? *names : apr_hash_make(pool);
            apr_hash_set(*names, apr_pstrdup(pool, suspects[i].name), APR_HASH_KEY_STRING,
                         apr_pcalloc(pool, sizeof(int)));
        }
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_suspects_drop(void *baton, apr_hash_t *names)
{
    shm_ledger_t *ledger = baton;
    suspect_t *suspects = ledger->header->suspects;
    int i;

    lock(ledger);
    for (i = 0; names && i < SUSPECTS; i++) {
        if (suspects[i].name[0] && apr_hash_get(names, suspects[i].name, APR_HASH_KEY_STRING)) {
            suspects[i].name[0] = '\0';
        }
    }
    unlock(ledger);
    return APR_SUCCESS;
}

/* --- records ------------------------------------------------------------------ */

static int gone_since(const header_t *header, const char *id, apr_time_t since)
{
    int gone = 0;
    int i;

    for (i = 0; i < GONE && !gone; i++) {
        gone = header->gone[i].at >= since && !strcmp(header->gone[i].id, id);
    }
    return gone;
}

/* The listing's records, made outside the lock. */
static record_t *fill_entries(apr_pool_t *pool, const apr_array_header_t *live, int *made)
{
    record_t *entries = apr_palloc(pool, sizeof(record_t) * (apr_size_t)(live->nelts + 1));
    int i;

    *made = 0;
    for (i = 0; i < live->nelts; i++) {
        *made += make_entry(pool, NULL, &APR_ARRAY_IDX(live, i, okey_owned_key_t), 0,
                            &entries[*made]);
    }
    return entries;
}

static apr_status_t shm_fill(void *baton, apr_pool_t *pool, const apr_array_header_t *live,
                             apr_time_t started)
{
    shm_ledger_t *ledger = baton;
    header_t *header = ledger->header;
    int made = 0;
    record_t *entries = fill_entries(pool, live, &made);
    int fits = 1;
    apr_uint32_t at;
    int i;

    lock(ledger);
    /* A recorded key keeps its rank. */
    for (i = 0; i < made; i++) {
        at = find_id(ledger, entries[i].id);
        entries[i].added = at != NIL ? rec(ledger, at)->added : 0;
    }
    /* Records added since the listing began may be missing from it. */
    for (at = 1; at <= header->used; at++) {
        if (rec(ledger, at)->id[0] && rec(ledger, at)->added < started) {
            remove_at(ledger, at);
        }
    }
    for (i = 0; i < made && fits; i++) {
        if (find_id(ledger, entries[i].id) == NIL &&
            !gone_since(header, entries[i].id, started)) {
            fits = insert(ledger, &entries[i]) != NIL;
        }
    }
    header->state = fits ? STATE_FILLED : STATE_OVERFLOW;
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_record(void *baton, apr_pool_t *pool, const char *email,
                               const okey_owned_key_t *key, apr_time_t now,
                               apr_array_header_t **keys, int *complete)
{
    shm_ledger_t *ledger = baton;
    record_t entry;
    int fits = make_entry(pool, email, key, now, &entry);
    apr_uint32_t at;

    lock(ledger);
    entry.added = okey_ledger_added(now, newest_rank(ledger, entry.person));
    at = fits ? find_id(ledger, entry.id) : NIL;
    if (at != NIL) {
        /* Filled from a listing before its sign-in got here: it ranks as
         * recorded now, as a new record would. */
        rec(ledger, at)->added = entry.added;
    }
    else if (fits && insert(ledger, &entry) == NIL) {
        ledger->header->state = STATE_OVERFLOW;
        fits = 0;
    }
    *complete = fits && ledger->header->state == STATE_FILLED;
    *keys = person_keys(ledger, pool, email, key->project_id, apr_time_sec(now));
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_forget(void *baton, const char *email, const char *project_id,
                               const char *service_account_id, apr_time_t now)
{
    shm_ledger_t *ledger = baton;
    header_t *header = ledger->header;
    apr_uint32_t at;

    (void)email;
    (void)project_id;
    lock(ledger);
    if (strlen(service_account_id) < ID_MAX) {
        gone_t *gone = &header->gone[header->next_gone];

        apr_cpystrn(gone->id, service_account_id, sizeof(gone->id));
        gone->at = now;
        header->next_gone = (header->next_gone + 1) % GONE;
    }
    at = find_id(ledger, service_account_id);
    if (at != NIL) {
        remove_at(ledger, at);
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_keys_of(void *baton, apr_pool_t *pool, const char *email,
                                const char *project_id, apr_array_header_t **keys,
                                int *complete)
{
    shm_ledger_t *ledger = baton;

    lock(ledger);
    *keys = person_keys(ledger, pool, email, project_id, 0);
    *complete = ledger->header->state == STATE_FILLED;
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_count(void *baton, apr_int64_t *records)
{
    shm_ledger_t *ledger = baton;

    lock(ledger);
    *records = ledger->header->count;
    unlock(ledger);
    return APR_SUCCESS;
}

/* --- marks and rates ------------------------------------------------------- */

static apr_status_t shm_mark_once(void *baton, const char *what, apr_time_t now,
                                  apr_time_t expires, int *first)
{
    shm_ledger_t *ledger = baton;
    mark_t *marks = ledger->header->marks;
    unsigned char digest[32];
    apr_uint32_t start;
    mark_t *pick = NULL;
    int i;

    okey_sha256(what, strlen(what), digest);
    start = ((apr_uint32_t)digest[0] << 8 | digest[1]) % MARKS;
    lock(ledger);
    *first = 1;
    for (i = 0; i < MARK_PROBES && *first; i++) {
        mark_t *each = &marks[(start + (apr_uint32_t)i) % MARKS];

        *first = !(each->expires > now && !memcmp(each->what, digest, 16));
        /* A free or lapsed place, else the one lapsing first. */
        if (!pick || (pick->expires > now && each->expires < pick->expires)) {
            pick = each;
        }
    }
    if (*first) {
        memcpy(pick->what, digest, 16);
        pick->expires = expires;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

static apr_status_t shm_may_list(void *baton, const char *email, apr_time_t now,
                                 apr_interval_time_t every, int *allowed,
                                 apr_int64_t *retry_after)
{
    shm_ledger_t *ledger = baton;
    lister_t *listers = ledger->header->listers;
    unsigned char person[16];
    lister_t *found = NULL;
    lister_t *stalest = &listers[0];
    int i;

    okey_ledger_person(email, person);
    lock(ledger);
    for (i = 0; i < LISTERS && !found; i++) {
        found = listers[i].last && !memcmp(listers[i].person, person, 16) ? &listers[i] : NULL;
        stalest = listers[i].last < stalest->last ? &listers[i] : stalest;
    }
    *allowed = !found || now - found->last >= every || now < found->last;
    *retry_after = *allowed ? 0 : (found->last + every - now + APR_USEC_PER_SEC - 1) /
                                  APR_USEC_PER_SEC;
    if (*allowed) {
        found = found ? found : stalest;
        memcpy(found->person, person, 16);
        found->last = now;
    }
    unlock(ledger);
    return APR_SUCCESS;
}

/* --- what outlives a stop: files under the state directory ------------------
 *
 * Each kind is a symbolic link, <state_dir>/keys or spend, to the
 * directory of its current generation, <kind>.<generation>, which holds
 * one file per name. A put writes a file beside its name and renames it
 * in; a replace writes a whole new generation, then renames a new link
 * over the kind's, and removes the old generation. Generations are never
 * named again, so a reader that finds the link naming the generation it
 * read, after reading, read a generation that was current throughout: it
 * saw all of the old or all of the new, and otherwise reads again.
 *
 * Puts and the swap of a link hold the mutex: a put never writes into a
 * generation already swapped out, where it would be lost. Readers, drops
 * and the writing of a new generation do not. */

/* Reads that met a replace, tried again: each try that fails lost to
 * another replace, and a reader meets far fewer than this at once. */
#define READ_TRIES 64
/* Files one generation may hold, read or removed: far beyond the key
 * attributions and spend documents of any key server. */
#define FILES_MAX (4 * 1024 * 1024)
#define GENERATION_MAX 96

static const char *const kind_names[OKEY_STORE_KINDS] = {"keys", "spend"};

static volatile apr_uint32_t generations_made;

static int storable(okey_store_e kind, const char *name, const char *text)
{
    return (unsigned)kind < OKEY_STORE_KINDS && okey_store_name_valid(name) &&
           (!text || strlen(text) <= OKEY_STORE_TEXT_MAX);
}

static apr_status_t store_usable(const shm_ledger_t *ledger, okey_store_e kind)
{
    return !ledger->state_dir ? APR_ENOTIMPL
           : (unsigned)kind < OKEY_STORE_KINDS ? APR_SUCCESS : APR_EINVAL;
}

static apr_pool_t *scratch(void)
{
    apr_pool_t *pool = NULL;

    return apr_pool_create(&pool, NULL) == APR_SUCCESS ? pool : NULL;
}

static const char *in_state(apr_pool_t *pool, const shm_ledger_t *ledger, const char *name)
{
    return apr_pstrcat(pool, ledger->state_dir, "/", name, NULL);
}

/* The generation kind's link names; *generation NULL when there is none. */
static apr_status_t current(apr_pool_t *pool, const shm_ledger_t *ledger, okey_store_e kind,
                            const char **generation)
{
    const char *link = in_state(pool, ledger, kind_names[kind]);
    apr_size_t prefix = strlen(kind_names[kind]);
    char target[GENERATION_MAX + 1];
    ssize_t len = readlink(link, target, sizeof(target));
    apr_status_t rv = APR_SUCCESS;

    *generation = NULL;
    if (len < 0 && errno != ENOENT) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    else if (len >= 0) {
        target[len < (ssize_t)sizeof(target) ? len : 0] = '\0';
        /* Only a generation of kind's own, beside the link. */
        rv = len > (ssize_t)prefix + 1 && len < (ssize_t)sizeof(target) &&
             !strncmp(target, kind_names[kind], prefix) && target[prefix] == '.' &&
             !strchr(target, '/') ? APR_SUCCESS : APR_EGENERAL;
        *generation = rv == APR_SUCCESS ? apr_pstrdup(pool, target) : NULL;
    }
    return rv;
}

/* A new generation's name, never given before: its time, process and turn. */
static const char *new_generation(apr_pool_t *pool, okey_store_e kind)
{
    return apr_psprintf(pool, "%s.%" APR_UINT64_T_HEX_FMT "-%lx-%x", kind_names[kind],
                        (apr_uint64_t)apr_time_now(), (unsigned long)getpid(),
                        apr_atomic_inc32(&generations_made));
}

/* Writes text into a new file at path, readable by the server's User alone. */
static apr_status_t write_file(apr_pool_t *pool, const char *path, const char *text)
{
    apr_file_t *file = NULL;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE |
                                    APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY,
                                    APR_FPROT_UREAD | APR_FPROT_UWRITE, pool);
    apr_status_t closed;

    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(file, text, strlen(text), NULL);
        closed = apr_file_close(file);
        rv = rv == APR_SUCCESS ? closed : rv;
    }
    if (rv != APR_SUCCESS && file) {
        apr_file_remove(path, pool);
    }
    return rv;
}

/* The text in the file at path; *text NULL when there is none, or what is
 * there is no text the store could have written (too long, or a NUL in
 * it). *missing when there was no file. */
static apr_status_t read_file(apr_pool_t *pool, const char *path, const char **text,
                              int *missing)
{
    apr_file_t *file = NULL;
    apr_finfo_t info;
    apr_status_t rv = apr_file_open(&file, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, pool);
    char *read = NULL;

    *text = NULL;
    *missing = APR_STATUS_IS_ENOENT(rv);
    rv = *missing ? APR_SUCCESS : rv;
    if (file) {
        rv = apr_file_info_get(&info, APR_FINFO_SIZE | APR_FINFO_TYPE, file);
    }
    if (file && rv == APR_SUCCESS && info.filetype == APR_REG && info.size == 0) {
        *text = "";
    }
    else if (file && rv == APR_SUCCESS && info.filetype == APR_REG &&
             info.size <= OKEY_STORE_TEXT_MAX) {
        read = apr_palloc(pool, (apr_size_t)info.size + 1);
        rv = apr_file_read_full(file, read, (apr_size_t)info.size, NULL);
        read[rv == APR_SUCCESS ? info.size : 0] = '\0';
        *text = rv == APR_SUCCESS && strlen(read) == (apr_size_t)info.size ? read : NULL;
    }
    if (file) {
        apr_file_close(file);
    }
    return rv;
}

/* Points kind's link at generation, in one rename. */
static apr_status_t swap_link(apr_pool_t *pool, const shm_ledger_t *ledger, okey_store_e kind,
                              const char *generation)
{
    const char *link = in_state(pool, ledger, kind_names[kind]);
    const char *made = in_state(pool, ledger, apr_pstrcat(pool, ".", generation, ".link",
                                                          NULL));
    apr_status_t rv = symlink(generation, made) ? APR_FROM_OS_ERROR(errno) : APR_SUCCESS;

    if (rv == APR_SUCCESS && rename(made, link)) {
        rv = APR_FROM_OS_ERROR(errno);
        unlink(made);
    }
    return rv;
}

static apr_status_t make_generation_dir(apr_pool_t *pool, const shm_ledger_t *ledger,
                                        const char *generation)
{
    apr_fileperms_t owner = APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE;
    apr_status_t rv = apr_dir_make_recursive(ledger->state_dir, owner, pool);

    return rv == APR_SUCCESS ? apr_dir_make(in_state(pool, ledger, generation), owner, pool)
                             : rv;
}

/* Removes the files of generation, then it; what cannot go stays. */
static void remove_generation(apr_pool_t *pool, const shm_ledger_t *ledger,
                              const char *generation)
{
    const char *dir = in_state(pool, ledger, generation);
    apr_dir_t *each = NULL;
    apr_finfo_t info;
    int n = 0;

    if (apr_dir_open(&each, dir, pool) == APR_SUCCESS) {
        while (n++ < FILES_MAX && apr_dir_read(&info, APR_FINFO_NAME, each) == APR_SUCCESS) {
            if (strcmp(info.name, ".") && strcmp(info.name, "..")) {
                apr_file_remove(apr_pstrcat(pool, dir, "/", info.name, NULL), pool);
            }
        }
        apr_dir_close(each);
    }
    apr_dir_remove(dir, pool);
}

/* Under the mutex: the current generation, made (empty) when there is none. */
static apr_status_t current_or_new(apr_pool_t *pool, const shm_ledger_t *ledger,
                                   okey_store_e kind, const char **generation)
{
    apr_status_t rv = current(pool, ledger, kind, generation);

    if (rv == APR_SUCCESS && !*generation) {
        *generation = new_generation(pool, kind);
        rv = make_generation_dir(pool, ledger, *generation);
        rv = rv == APR_SUCCESS ? swap_link(pool, ledger, kind, *generation) : rv;
    }
    return rv;
}

static apr_status_t shm_store_put(void *baton, okey_store_e kind, const char *name,
                                  const char *text)
{
    shm_ledger_t *ledger = baton;
    apr_pool_t *pool = NULL;
    const char *generation = NULL;
    apr_status_t rv = store_usable(ledger, kind);

    rv = rv == APR_SUCCESS && !(text && storable(kind, name, text)) ? APR_EINVAL : rv;
    pool = rv == APR_SUCCESS ? scratch() : NULL;
    rv = rv == APR_SUCCESS && !pool ? APR_ENOMEM : rv;
    if (rv == APR_SUCCESS) {
        lock(ledger);
        rv = current_or_new(pool, ledger, kind, &generation);
        if (rv == APR_SUCCESS) {
            const char *dir = in_state(pool, ledger, generation);
            const char *made = apr_psprintf(pool, "%s/.put-%lx-%s", dir,
                                            (unsigned long)getpid(), name);

            rv = write_file(pool, made, text);
            rv = rv == APR_SUCCESS
                 ? apr_file_rename(made, apr_pstrcat(pool, dir, "/", name, NULL), pool) : rv;
            if (rv != APR_SUCCESS) {
                apr_file_remove(made, pool);
            }
        }
        unlock(ledger);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* Whether kind's link still names generation: what was read of it is one
 * generation's, when it does. */
static int still_current(apr_pool_t *pool, const shm_ledger_t *ledger, okey_store_e kind,
                         const char *generation, apr_status_t *rv)
{
    const char *now = NULL;

    *rv = current(pool, ledger, kind, &now);
    return *rv == APR_SUCCESS && now && !strcmp(now, generation);
}

static apr_status_t shm_store_get(void *baton, apr_pool_t *pool, okey_store_e kind,
                                  const char *name, const char **text)
{
    shm_ledger_t *ledger = baton;
    apr_status_t rv = store_usable(ledger, kind);
    const char *generation = NULL;
    int done = 0, tries = 0, missing = 0;

    *text = NULL;
    rv = rv == APR_SUCCESS && !storable(kind, name, NULL) ? APR_EINVAL : rv;
    while (rv == APR_SUCCESS && !done && tries++ < READ_TRIES) {
        rv = current(pool, ledger, kind, &generation);
        done = rv == APR_SUCCESS && !generation;
        if (rv == APR_SUCCESS && generation) {
            rv = read_file(pool, apr_pstrcat(pool, ledger->state_dir, "/", generation, "/",
                                             name, NULL), text, &missing);
            /* A file opened is read whole, whatever is renamed over it after. */
            done = rv == APR_SUCCESS &&
                   (!missing || still_current(pool, ledger, kind, generation, &rv));
        }
    }
    return rv == APR_SUCCESS && !done ? APR_EAGAIN : rv;
}

/* Adds the files of generation to entries; ones that went meanwhile are
 * left out. */
static apr_status_t read_generation(apr_pool_t *pool, const shm_ledger_t *ledger,
                                    const char *generation, apr_hash_t *entries)
{
    const char *dir = in_state(pool, ledger, generation);
    apr_dir_t *each = NULL;
    apr_finfo_t info;
    apr_status_t rv = apr_dir_open(&each, dir, pool);
    int n = 0;

    /* A generation removed under the reader: the link says so, after. */
    rv = APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    while (each && rv == APR_SUCCESS && n++ < FILES_MAX &&
           apr_dir_read(&info, APR_FINFO_NAME, each) == APR_SUCCESS) {
        const char *text = NULL;
        int missing = 0;

        /* Names never begin with a dot: what does is a put under way. */
        if (okey_store_name_valid(info.name)) {
            rv = read_file(pool, apr_pstrcat(pool, dir, "/", info.name, NULL), &text,
                           &missing);
        }
        if (text) {
            apr_hash_set(entries, apr_pstrdup(pool, info.name), APR_HASH_KEY_STRING, text);
        }
    }
    if (each) {
        apr_dir_close(each);
    }
    return rv;
}

static apr_status_t shm_store_all(void *baton, apr_pool_t *pool, okey_store_e kind,
                                  apr_hash_t **entries)
{
    shm_ledger_t *ledger = baton;
    apr_status_t rv = store_usable(ledger, kind);
    const char *generation = NULL;
    int done = 0, tries = 0;

    *entries = apr_hash_make(pool);
    while (rv == APR_SUCCESS && !done && tries++ < READ_TRIES) {
        rv = current(pool, ledger, kind, &generation);
        done = rv == APR_SUCCESS && !generation;
        if (rv == APR_SUCCESS && generation) {
            apr_hash_clear(*entries);
            rv = read_generation(pool, ledger, generation, *entries);
            done = rv == APR_SUCCESS && still_current(pool, ledger, kind, generation, &rv);
        }
    }
    if (rv == APR_SUCCESS && !done) {
        rv = APR_EAGAIN;
    }
    if (rv != APR_SUCCESS) {
        *entries = apr_hash_make(pool);
    }
    return rv;
}

static apr_status_t shm_store_drop(void *baton, okey_store_e kind, apr_hash_t *names)
{
    shm_ledger_t *ledger = baton;
    apr_status_t rv = store_usable(ledger, kind);
    apr_pool_t *pool = NULL;
    const char *generation = NULL;
    apr_hash_index_t *hi;

    for (hi = names && rv == APR_SUCCESS ? apr_hash_first(NULL, names) : NULL;
         hi && rv == APR_SUCCESS; hi = apr_hash_next(hi)) {
        rv = storable(kind, apr_hash_this_key(hi), NULL) ? APR_SUCCESS : APR_EINVAL;
    }
    pool = rv == APR_SUCCESS ? scratch() : NULL;
    rv = rv == APR_SUCCESS && !pool ? APR_ENOMEM : rv;
    if (rv == APR_SUCCESS) {
        rv = current(pool, ledger, kind, &generation);
    }
    /* A name dropped from a generation a replace swapped out meanwhile is
     * one dropped before the replace. */
    for (hi = rv == APR_SUCCESS && generation && names ? apr_hash_first(NULL, names) : NULL;
         hi && rv == APR_SUCCESS; hi = apr_hash_next(hi)) {
        rv = apr_file_remove(apr_pstrcat(pool, ledger->state_dir, "/", generation, "/",
                                         (const char *)apr_hash_this_key(hi), NULL), pool);
        rv = APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static int all_storable(okey_store_e kind, apr_hash_t *entries)
{
    apr_hash_index_t *hi;
    int ok = 1;

    for (hi = entries ? apr_hash_first(NULL, entries) : NULL; hi && ok; hi = apr_hash_next(hi)) {
        ok = apr_hash_this_val(hi) &&
             storable(kind, apr_hash_this_key(hi), apr_hash_this_val(hi));
    }
    return ok;
}

/* Writes entries into generation, a new directory no reader knows yet. */
static apr_status_t write_generation(apr_pool_t *pool, const shm_ledger_t *ledger,
                                     const char *generation, apr_hash_t *entries)
{
    apr_status_t rv = make_generation_dir(pool, ledger, generation);
    const char *dir = in_state(pool, ledger, generation);
    apr_hash_index_t *hi;

    for (hi = rv == APR_SUCCESS && entries ? apr_hash_first(NULL, entries) : NULL;
         hi && rv == APR_SUCCESS; hi = apr_hash_next(hi)) {
        rv = write_file(pool, apr_pstrcat(pool, dir, "/", (const char *)apr_hash_this_key(hi),
                                          NULL), apr_hash_this_val(hi));
    }
    return rv;
}

static apr_status_t shm_store_replace(void *baton, okey_store_e kind, apr_hash_t *entries)
{
    shm_ledger_t *ledger = baton;
    apr_status_t rv = store_usable(ledger, kind);
    apr_pool_t *pool = NULL;
    const char *generation = NULL;
    const char *old = NULL;

    rv = rv == APR_SUCCESS && !all_storable(kind, entries) ? APR_EINVAL : rv;
    pool = rv == APR_SUCCESS ? scratch() : NULL;
    rv = rv == APR_SUCCESS && !pool ? APR_ENOMEM : rv;
    if (rv == APR_SUCCESS) {
        generation = new_generation(pool, kind);
        rv = write_generation(pool, ledger, generation, entries);
    }
    if (rv == APR_SUCCESS) {
        lock(ledger);
        rv = current(pool, ledger, kind, &old);
        rv = rv == APR_SUCCESS ? swap_link(pool, ledger, kind, generation) : rv;
        unlock(ledger);
    }
    /* Whichever is not the kind's now. */
    if (rv == APR_SUCCESS ? old != NULL : generation != NULL) {
        remove_generation(pool, ledger, rv == APR_SUCCESS ? old : generation);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static const okey_ledger_ops_t shm_ops = {
    "shm",
    shm_project_get, shm_project_set, shm_project_lock, shm_project_unlock,
    shm_lease_claim, shm_lease_renew, shm_lease_release, shm_lease_due_in, shm_reap_request,
    shm_suspect_add, shm_suspects_due, shm_suspects_drop,
    shm_fill, shm_record, shm_forget, shm_keys_of, shm_count,
    shm_mark_once, shm_may_list,
    shm_store_put, shm_store_get, shm_store_all, shm_store_drop, shm_store_replace
};

apr_status_t okey_ledger_shm_attach(apr_pool_t *pool, void *base, apr_size_t size,
                                    apr_global_mutex_t **mutex, const char *state_dir,
                                    const okey_logger_t *logger, okey_ledger_t **out)
{
    header_t *header = base;
    apr_status_t rv = size >= sizeof(header_t) &&
                      !strcmp(header->layout, okey_ledger_shm_layout(pool)) &&
                      okey_ledger_shm_size(header->capacity) <= size
                      ? APR_SUCCESS : APR_EINVAL;
    shm_ledger_t *ledger = apr_pcalloc(pool, sizeof(*ledger));

    *out = NULL;
    if (rv == APR_SUCCESS) {
        ledger->header = header;
        ledger->records = (record_t *)((char *)base + align8(sizeof(header_t)));
        ledger->by_id = (apr_uint32_t *)((char *)ledger->records +
                                         align8(sizeof(record_t) * header->capacity));
        ledger->by_person = ledger->by_id +
                            align8(sizeof(apr_uint32_t) * header->buckets) / sizeof(apr_uint32_t);
        ledger->mutex = mutex;
        ledger->logger = logger;
        ledger->state_dir = state_dir ? apr_pstrdup(pool, state_dir) : NULL;
        *out = apr_pcalloc(pool, sizeof(**out));
        (*out)->ops = &shm_ops;
        (*out)->baton = ledger;
    }
    return rv;
}
