/* The ledger of one process: hash tables under one mutex. Plain rather
 * than fast, it is the reference the shared-memory and Redis ledgers are
 * held to. */
#include "ledger.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <string.h>

#include "lease.h"
#include "name.h"

/* Deleted keys are remembered this long before a fill's start: no listing
 * takes longer. */
#define GONE_KEEP apr_time_from_sec(3600)
/* Entries removed or replaced beyond the live ones, and this many more,
 * before a table's memory is made again. */
#define SLACK 64

/* --- tables whose memory is made again as entries go -------------------------- */

typedef void *copy_fn(apr_pool_t *pool, const void *value);

typedef struct {
    apr_pool_t *parent;
    apr_pool_t *pool;   /* keys and values; replaced when dead outgrows the rest */
    apr_hash_t *hash;
    copy_fn *copy;
    int dead;           /* entries removed or replaced since pool was made */
} table_t;

/* A number with, for projects, a text. */
typedef struct {
    apr_int64_t number;
    const char *text;
} entry_t;

static void *copy_entry(apr_pool_t *pool, const void *value)
{
    const entry_t *from = value;
    entry_t *entry = apr_pmemdup(pool, from, sizeof(*from));

    entry->text = from->text ? apr_pstrdup(pool, from->text) : NULL;
    return entry;
}

static apr_status_t table_init(table_t *table, apr_pool_t *parent, copy_fn *copy)
{
    apr_status_t rv = apr_pool_create(&table->pool, parent);

    table->parent = parent;
    table->hash = rv == APR_SUCCESS ? apr_hash_make(table->pool) : NULL;
    table->copy = copy;
    table->dead = 0;
    return rv;
}

static void *table_get(const table_t *table, const void *key, apr_ssize_t klen)
{
    return apr_hash_get(table->hash, key, klen);
}

/* Stores value, made in table->pool, under a copy of key. */
static void table_put(table_t *table, const void *key, apr_ssize_t klen, void *value)
{
    apr_size_t len = klen == APR_HASH_KEY_STRING ? strlen(key) + 1 : (apr_size_t)klen;

    if (apr_hash_get(table->hash, key, klen)) {
        table->dead++;
        apr_hash_set(table->hash, key, klen, value);
    }
    else {
        apr_hash_set(table->hash, apr_pmemdup(table->pool, key, len), klen, value);
    }
}

/* Makes the table's memory again, with only the entries it holds. */
static void table_compact(table_t *table)
{
    table_t fresh;
    apr_hash_index_t *hi;

    if (table->dead > (int)apr_hash_count(table->hash) + SLACK &&
        table_init(&fresh, table->parent, table->copy) == APR_SUCCESS) {
        for (hi = apr_hash_first(NULL, table->hash); hi; hi = apr_hash_next(hi)) {
            const void *key;
            apr_ssize_t klen;
            void *value;

            apr_hash_this(hi, &key, &klen, &value);
            table_put(&fresh, key, klen, table->copy(fresh.pool, value));
        }
        apr_pool_destroy(table->pool);
        *table = fresh;
    }
}

static void table_remove(table_t *table, const void *key, apr_ssize_t klen)
{
    if (apr_hash_get(table->hash, key, klen)) {
        apr_hash_set(table->hash, key, klen, NULL);
        table->dead++;
        table_compact(table);
    }
}

/* Stores number (and text) under key, in place when key is there. */
static void table_set(table_t *table, const void *key, apr_ssize_t klen,
                      apr_int64_t number, const char *text)
{
    entry_t *entry = table_get(table, key, klen);

    if (entry && !text) {
        entry->number = number;
    }
    else {
        entry = apr_pcalloc(table->pool, sizeof(*entry));
        entry->number = number;
        entry->text = text ? apr_pstrdup(table->pool, text) : NULL;
        table_put(table, key, klen, entry);
        table_compact(table);
    }
}

/* Removes the entries whose number is below floor. */
static void table_drop_below(table_t *table, apr_int64_t floor)
{
    apr_hash_index_t *hi;

    /* Deleting the entry an iteration is at is safe. */
    for (hi = apr_hash_first(NULL, table->hash); hi; hi = apr_hash_next(hi)) {
        const void *key;
        apr_ssize_t klen;
        void *value;

        apr_hash_this(hi, &key, &klen, &value);
        if (((const entry_t *)value)->number < floor) {
            apr_hash_set(table->hash, key, klen, NULL);
            table->dead++;
        }
    }
    table_compact(table);
}

/* Drops the entries below floor once the table has grown enough since
 * it last did, so that expired entries cost time in proportion. */
static void table_expire(table_t *table, int *prune_at, apr_int64_t floor)
{
    if ((int)apr_hash_count(table->hash) >= *prune_at) {
        table_drop_below(table, floor);
        *prune_at = 2 * (int)apr_hash_count(table->hash) + SLACK;
    }
}

/* --- the ledger ------------------------------------------------------------------ */

/* A recorded key: whose (okey_ledger_person), which, where, until when. */
typedef struct {
    unsigned char person[16];
    const char *id;
    const char *project_id;
    const char *tag;        /* of its name; empty: an untagged name */
    apr_int64_t named;      /* the expiry its name gives */
    apr_int64_t created_at;
    apr_int64_t expires;
    apr_time_t added;       /* by record, when; 0: by a fill */
} record_t;

static void *copy_record(apr_pool_t *pool, const void *value)
{
    const record_t *from = value;
    record_t *record = apr_pmemdup(pool, from, sizeof(*from));

    record->id = apr_pstrdup(pool, from->id);
    record->project_id = apr_pstrdup(pool, from->project_id);
    record->tag = apr_pstrdup(pool, from->tag);
    return record;
}

typedef struct {
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *unlocked;  /* a project lock was given back */
    apr_pool_t *pool;
    table_t projects;   /* project -> its id (text) */
    table_t locks;      /* project -> until when its lock is held */
    table_t suspects;   /* service account name -> when due (Unix seconds) */
    table_t records;    /* service account id -> record_t */
    table_t gone;       /* service account id -> when forgotten */
    table_t marks;      /* what -> until when it is marked */
    table_t listers;    /* person -> when it last listed */
    table_t store[OKEY_STORE_KINDS]; /* name -> its text */
    int marks_prune_at, listers_prune_at;
    int filled;         /* a fill has made the records answer */
    okey_ledger_lease_t lease;  /* token empty: none held */
    apr_time_t last_claim;      /* 0: never */
    int reap_requested;
    char token_prefix[17];      /* drawn at creation: tokens unique across ledgers */
    apr_uint64_t claims;
} memory_t;

#define PERSON_LEN 16

/* --- project ids ---------------------------------------------------------------------- */

static apr_status_t project_get(void *baton, apr_pool_t *pool, const char *project,
                                const char **id)
{
    memory_t *m = baton;
    const entry_t *entry;

    apr_thread_mutex_lock(m->mutex);
    entry = table_get(&m->projects, project, APR_HASH_KEY_STRING);
    *id = entry ? apr_pstrdup(pool, entry->text) : NULL;
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t project_set(void *baton, const char *project, const char *id,
                                const char *stale)
{
    memory_t *m = baton;
    const entry_t *entry;

    apr_thread_mutex_lock(m->mutex);
    entry = table_get(&m->projects, project, APR_HASH_KEY_STRING);
    if (id && !(entry && !strcmp(entry->text, id))) {
        table_set(&m->projects, project, APR_HASH_KEY_STRING, 0, id);
    }
    else if (!id && entry && stale && !strcmp(entry->text, stale)) {
        table_remove(&m->projects, project, APR_HASH_KEY_STRING);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t project_lock(void *baton, const char *project, apr_interval_time_t wait,
                                 apr_interval_time_t length, int *taken)
{
    memory_t *m = baton;
    apr_time_t now = apr_time_now();
    apr_time_t deadline = now + (wait > 0 ? wait : 0);
    const entry_t *held;

    apr_thread_mutex_lock(m->mutex);
    held = table_get(&m->locks, project, APR_HASH_KEY_STRING);
    /* Bounded by the deadline: each turn waits out what is left of it. */
    while (held && held->number > now && now < deadline) {
        apr_thread_cond_timedwait(m->unlocked, m->mutex, deadline - now);
        now = apr_time_now();
        held = table_get(&m->locks, project, APR_HASH_KEY_STRING);
    }
    *taken = !held || held->number <= now;
    if (*taken) {
        table_set(&m->locks, project, APR_HASH_KEY_STRING, now + length, NULL);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t project_unlock(void *baton, const char *project)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    table_remove(&m->locks, project, APR_HASH_KEY_STRING);
    apr_thread_cond_broadcast(m->unlocked);
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* --- the reap lease ---------------------------------------------------------------- */

/* Whole seconds from now until at, rounded up; 0 when at is not ahead. */
static apr_int64_t seconds_until(apr_time_t at, apr_time_t now)
{
    return at > now ? (at - now + APR_USEC_PER_SEC - 1) / APR_USEC_PER_SEC : 0;
}

/* Seconds until a reap is due, whether or not a lease is held. */
static apr_int64_t due_in(memory_t *m, apr_time_t now, apr_int64_t interval)
{
    apr_int64_t wait = 0;
    apr_hash_index_t *hi;

    if (!m->reap_requested && m->last_claim && now + OKEY_LEASE_SKEW >= m->last_claim) {
        wait = seconds_until(m->last_claim + apr_time_from_sec(interval), now);
    }
    for (hi = apr_hash_first(NULL, m->suspects.hash); hi && wait > 0; hi = apr_hash_next(hi)) {
        const entry_t *suspect = apr_hash_this_val(hi);
        apr_int64_t until = suspect->number - apr_time_sec(now);

        wait = until < wait ? (until > 0 ? until : 0) : wait;
    }
    return wait;
}

static apr_status_t lease_claim(void *baton, apr_time_t now, apr_int64_t interval,
                                apr_interval_time_t length, int force,
                                okey_ledger_lease_t *lease, int *claimed)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    *claimed = (!m->lease.token[0] || okey_lease_free(m->lease.expires, now, length)) &&
               (force || !due_in(m, now, interval));
    if (*claimed) {
        apr_snprintf(m->lease.token, sizeof(m->lease.token), "%s-%" APR_UINT64_T_HEX_FMT,
                     m->token_prefix, ++m->claims);
        m->lease.expires = now + length;
        m->last_claim = now;
        m->reap_requested = 0;
        *lease = m->lease;
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* Whether lease is the one held at now. */
static int holds(const memory_t *m, const okey_ledger_lease_t *lease, apr_time_t now,
                 apr_interval_time_t length)
{
    return m->lease.token[0] && !strcmp(m->lease.token, lease->token) &&
           !okey_lease_free(m->lease.expires, now, length);
}

static apr_status_t lease_renew(void *baton, okey_ledger_lease_t *lease, apr_time_t now,
                                apr_interval_time_t length, int *held)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    *held = holds(m, lease, now, length);
    if (*held) {
        m->lease.expires = now + length;
        lease->expires = m->lease.expires;
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t lease_release(void *baton, const okey_ledger_lease_t *lease)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    if (m->lease.token[0] && !strcmp(m->lease.token, lease->token)) {
        memset(&m->lease, 0, sizeof(m->lease));
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t lease_due_in(void *baton, apr_time_t now, apr_int64_t interval,
                                 apr_int64_t *seconds, int *held)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    *seconds = due_in(m, now, interval);
    /* No length is known here: the longest a lease may be. */
    *held = m->lease.token[0] && !okey_lease_free(m->lease.expires, now, OKEY_LEASE_MAX);
    if (*held) {
        /* Due again when the lease lapses, should its holder stop. */
        apr_int64_t lapse = seconds_until(m->lease.expires, now);

        *seconds = lapse > *seconds ? lapse : *seconds;
        *seconds = *seconds > interval ? interval : *seconds;
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t reap_request(void *baton)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    m->reap_requested = 1;
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* --- orphan checks ---------------------------------------------------------------- */

static apr_status_t suspect_add(void *baton, const char *name, apr_int64_t due)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    table_set(&m->suspects, name, APR_HASH_KEY_STRING, due, NULL);
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t suspects_due(void *baton, apr_pool_t *pool, apr_int64_t now,
                                 apr_hash_t **names)
{
    memory_t *m = baton;
    apr_hash_index_t *hi;

    *names = NULL;
    apr_thread_mutex_lock(m->mutex);
    for (hi = apr_hash_first(NULL, m->suspects.hash); hi; hi = apr_hash_next(hi)) {
        const entry_t *suspect = apr_hash_this_val(hi);

        if (suspect->number <= now) {
            *names = *names ? *names : apr_hash_make(pool);
            apr_hash_set(*names, apr_pstrdup(pool, apr_hash_this_key(hi)),
                         APR_HASH_KEY_STRING, apr_pcalloc(pool, sizeof(int)));
        }
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t suspects_drop(void *baton, apr_hash_t *names)
{
    memory_t *m = baton;
    apr_hash_index_t *hi;

    apr_thread_mutex_lock(m->mutex);
    for (hi = names ? apr_hash_first(NULL, names) : NULL; hi; hi = apr_hash_next(hi)) {
        table_remove(&m->suspects, apr_hash_this_key(hi), APR_HASH_KEY_STRING);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* --- records of issued keys -------------------------------------------------------- */

/* A record of key for email (NULL: the address its name gives), made in
 * pool; NULL when its name is not ours. */
static record_t *make_record(apr_pool_t *pool, const char *email, const okey_owned_key_t *key,
                             apr_time_t added)
{
    record_t *record = apr_pcalloc(pool, sizeof(*record));
    const char *owner = NULL;
    const char *tag = okey_keys_name_tag(pool, key->name);

    if (!tag || !okey_keys_parse_name(pool, key->name, &record->named, &owner)) {
        return NULL;
    }
    okey_ledger_person(email ? email : owner, record->person);
    record->id = apr_pstrdup(pool, key->service_account_id);
    record->project_id = apr_pstrdup(pool, key->project_id);
    record->tag = tag;
    record->created_at = key->created_at;
    record->expires = key->expires;
    record->added = added;
    return record;
}

static okey_owned_key_t *push_key(apr_pool_t *pool, apr_array_header_t *keys,
                                  const record_t *record, const char *email)
{
    okey_owned_key_t *key = apr_array_push(keys);

    key->service_account_id = apr_pstrdup(pool, record->id);
    key->name = okey_ledger_name(pool, email, record->named, record->tag);
    key->project_id = apr_pstrdup(pool, record->project_id);
    key->created_at = record->created_at;
    key->expires = record->expires;
    key->rank = okey_terms_rank(record->added, record->created_at);
    return key;
}

/* The highest rank among the records of person; 0 when none. */
static apr_int64_t newest_rank(memory_t *m, const unsigned char *person)
{
    apr_int64_t newest = 0;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, m->records.hash); hi; hi = apr_hash_next(hi)) {
        const record_t *record = apr_hash_this_val(hi);
        apr_int64_t rank = okey_terms_rank(record->added, record->created_at);

        if (!memcmp(record->person, person, PERSON_LEN) && rank > newest) {
            newest = rank;
        }
    }
    return newest;
}

/* email's records in project_id (NULL: any) that expire after after
 * (Unix seconds), oldest first. */
static apr_array_header_t *view(memory_t *m, apr_pool_t *pool, const char *email,
                                const char *project_id, apr_int64_t after)
{
    apr_array_header_t *keys = apr_array_make(pool, 4, sizeof(okey_owned_key_t));
    unsigned char person[PERSON_LEN];
    apr_hash_index_t *hi;

    okey_ledger_person(email, person);
    for (hi = apr_hash_first(NULL, m->records.hash); hi; hi = apr_hash_next(hi)) {
        const record_t *record = apr_hash_this_val(hi);

        if (!memcmp(record->person, person, PERSON_LEN) && record->expires > after &&
            (!project_id || !strcmp(record->project_id, project_id))) {
            push_key(pool, keys, record, email);
        }
    }
    okey_terms_sort(keys);
    return keys;
}

static apr_status_t fill(void *baton, apr_pool_t *pool, const apr_array_header_t *live,
                         apr_time_t started)
{
    memory_t *m = baton;
    table_t fresh;
    apr_hash_index_t *hi;
    apr_status_t rv;
    int i;

    apr_thread_mutex_lock(m->mutex);
    rv = table_init(&fresh, m->pool, copy_record);
    /* Keys recorded since the listing began may be missing from it. */
    for (hi = rv ? NULL : apr_hash_first(NULL, m->records.hash); hi; hi = apr_hash_next(hi)) {
        const record_t *record = apr_hash_this_val(hi);

        if (record->added >= started) {
            table_put(&fresh, record->id, APR_HASH_KEY_STRING, copy_record(fresh.pool, record));
        }
    }
    for (i = 0; rv == APR_SUCCESS && i < live->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(live, i, okey_owned_key_t);
        const entry_t *gone = table_get(&m->gone, key->service_account_id,
                                        APR_HASH_KEY_STRING);
        const record_t *recorded = table_get(&m->records, key->service_account_id,
                                             APR_HASH_KEY_STRING);
        record_t *record = NULL;

        /* A recorded key keeps its rank. */
        if (!table_get(&fresh, key->service_account_id, APR_HASH_KEY_STRING) &&
            !(gone && gone->number >= started)) {
            record = make_record(pool, NULL, key, recorded ? recorded->added : 0);
        }
        if (record) {
            table_put(&fresh, record->id, APR_HASH_KEY_STRING,
                      copy_record(fresh.pool, record));
        }
    }
    if (rv == APR_SUCCESS) {
        apr_pool_destroy(m->records.pool);
        m->records = fresh;
        m->filled = 1;
        table_drop_below(&m->gone, started - GONE_KEEP);
    }
    apr_thread_mutex_unlock(m->mutex);
    return rv;
}

static apr_status_t record(void *baton, apr_pool_t *pool, const char *email,
                           const okey_owned_key_t *key, apr_time_t now,
                           apr_array_header_t **keys, int *complete)
{
    memory_t *m = baton;
    record_t *made = make_record(pool, email, key, now);

    apr_thread_mutex_lock(m->mutex);
    if (made) {
        made->added = okey_ledger_added(now, newest_rank(m, made->person));
        table_put(&m->records, made->id, APR_HASH_KEY_STRING,
                  copy_record(m->records.pool, made));
        table_compact(&m->records);
    }
    *keys = view(m, pool, email, key->project_id, apr_time_sec(now));
    /* A key whose name is not ours is not in the view. */
    *complete = m->filled && made;
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t forget(void *baton, const char *email, const char *project_id,
                           const char *service_account_id, apr_time_t now)
{
    memory_t *m = baton;
    const record_t *record;
    const entry_t *gone;
    unsigned char person[PERSON_LEN];

    okey_ledger_person(email, person);
    apr_thread_mutex_lock(m->mutex);
    record = table_get(&m->records, service_account_id, APR_HASH_KEY_STRING);
    if (record && !memcmp(record->person, person, PERSON_LEN) &&
        (!project_id || !strcmp(record->project_id, project_id))) {
        table_remove(&m->records, service_account_id, APR_HASH_KEY_STRING);
    }
    gone = table_get(&m->gone, service_account_id, APR_HASH_KEY_STRING);
    if (!gone || gone->number < now) {
        table_set(&m->gone, service_account_id, APR_HASH_KEY_STRING, now, NULL);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t keys_of(void *baton, apr_pool_t *pool, const char *email,
                            const char *project_id, apr_array_header_t **keys,
                            int *complete)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    /* Expired ones too: they work until the reaper deletes them. */
    *keys = view(m, pool, email, project_id, APR_INT64_MIN);
    *complete = m->filled;
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t count(void *baton, apr_int64_t *records)
{
    memory_t *m = baton;

    apr_thread_mutex_lock(m->mutex);
    *records = (apr_int64_t)apr_hash_count(m->records.hash);
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* --- one-time marks and rates -------------------------------------------------------- */

static apr_status_t mark_once(void *baton, const char *what, apr_time_t now,
                              apr_time_t expires, int *first)
{
    memory_t *m = baton;
    const entry_t *mark;

    apr_thread_mutex_lock(m->mutex);
    table_expire(&m->marks, &m->marks_prune_at, now + 1);
    mark = table_get(&m->marks, what, APR_HASH_KEY_STRING);
    *first = !mark || mark->number <= now;
    if (*first) {
        table_set(&m->marks, what, APR_HASH_KEY_STRING, expires, NULL);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

static apr_status_t may_list(void *baton, const char *email, apr_time_t now,
                             apr_interval_time_t every, int *allowed,
                             apr_int64_t *retry_after)
{
    memory_t *m = baton;
    unsigned char person[PERSON_LEN];
    const entry_t *lister;

    okey_ledger_person(email, person);
    apr_thread_mutex_lock(m->mutex);
    /* Who listed an every ago or earlier may list: forgetting them is no loss. */
    table_expire(&m->listers, &m->listers_prune_at, now - every + 1);
    lister = table_get(&m->listers, person, PERSON_LEN);
    /* A clock set back does not hold anyone off for longer than every. */
    *allowed = !lister || now - lister->number >= every || now < lister->number;
    *retry_after = *allowed ? 0 : seconds_until(lister->number + every, now);
    if (*allowed) {
        table_set(&m->listers, person, PERSON_LEN, now, NULL);
    }
    apr_thread_mutex_unlock(m->mutex);
    return APR_SUCCESS;
}

/* --- what outlives a stop -------------------------------------------------------------- */

static int storable(okey_store_e kind, const char *name, const char *text)
{
    return (unsigned)kind < OKEY_STORE_KINDS && okey_store_name_valid(name) &&
           (!text || strlen(text) <= OKEY_STORE_TEXT_MAX);
}

/* Whether every entry of entries (name -> text) may be stored. */
static int all_storable(okey_store_e kind, apr_hash_t *entries)
{
    apr_hash_index_t *hi;
    int ok = (unsigned)kind < OKEY_STORE_KINDS;

    for (hi = entries ? apr_hash_first(NULL, entries) : NULL; hi && ok; hi = apr_hash_next(hi)) {
        ok = apr_hash_this_val(hi) &&
             storable(kind, apr_hash_this_key(hi), apr_hash_this_val(hi));
    }
    return ok;
}

static apr_status_t store_put(void *baton, okey_store_e kind, const char *name,
                              const char *text)
{
    memory_t *m = baton;
    apr_status_t rv = text && storable(kind, name, text) ? APR_SUCCESS : APR_EINVAL;

    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(m->mutex);
        table_set(&m->store[kind], name, APR_HASH_KEY_STRING, 0, text);
        apr_thread_mutex_unlock(m->mutex);
    }
    return rv;
}

static apr_status_t store_get(void *baton, apr_pool_t *pool, okey_store_e kind,
                              const char *name, const char **text)
{
    memory_t *m = baton;
    apr_status_t rv = storable(kind, name, NULL) ? APR_SUCCESS : APR_EINVAL;
    const entry_t *entry;

    *text = NULL;
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(m->mutex);
        entry = table_get(&m->store[kind], name, APR_HASH_KEY_STRING);
        *text = entry ? apr_pstrdup(pool, entry->text) : NULL;
        apr_thread_mutex_unlock(m->mutex);
    }
    return rv;
}

static apr_status_t store_all(void *baton, apr_pool_t *pool, okey_store_e kind,
                              apr_hash_t **entries)
{
    memory_t *m = baton;
    apr_status_t rv = (unsigned)kind < OKEY_STORE_KINDS ? APR_SUCCESS : APR_EINVAL;
    apr_hash_index_t *hi;

    *entries = apr_hash_make(pool);
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(m->mutex);
        for (hi = apr_hash_first(NULL, m->store[kind].hash); hi; hi = apr_hash_next(hi)) {
            const entry_t *entry = apr_hash_this_val(hi);

            apr_hash_set(*entries, apr_pstrdup(pool, apr_hash_this_key(hi)),
                         APR_HASH_KEY_STRING, apr_pstrdup(pool, entry->text));
        }
        apr_thread_mutex_unlock(m->mutex);
    }
    return rv;
}

static apr_status_t store_drop(void *baton, okey_store_e kind, apr_hash_t *names)
{
    memory_t *m = baton;
    apr_hash_index_t *hi;
    apr_status_t rv = (unsigned)kind < OKEY_STORE_KINDS ? APR_SUCCESS : APR_EINVAL;

    for (hi = names ? apr_hash_first(NULL, names) : NULL; hi && rv == APR_SUCCESS;
         hi = apr_hash_next(hi)) {
        rv = okey_store_name_valid(apr_hash_this_key(hi)) ? APR_SUCCESS : APR_EINVAL;
    }
    if (rv == APR_SUCCESS && names) {
        apr_thread_mutex_lock(m->mutex);
        for (hi = apr_hash_first(NULL, names); hi; hi = apr_hash_next(hi)) {
            table_remove(&m->store[kind], apr_hash_this_key(hi), APR_HASH_KEY_STRING);
        }
        apr_thread_mutex_unlock(m->mutex);
    }
    return rv;
}

static apr_status_t store_replace(void *baton, okey_store_e kind, apr_hash_t *entries)
{
    memory_t *m = baton;
    apr_status_t rv = all_storable(kind, entries) ? APR_SUCCESS : APR_EINVAL;
    apr_hash_index_t *hi;
    table_t fresh;

    /* Made aside, then swapped in under the mutex: readers see one or the other. */
    if (rv == APR_SUCCESS) {
        rv = table_init(&fresh, m->pool, copy_entry);
    }
    for (hi = rv == APR_SUCCESS && entries ? apr_hash_first(NULL, entries) : NULL; hi;
         hi = apr_hash_next(hi)) {
        table_set(&fresh, apr_hash_this_key(hi), APR_HASH_KEY_STRING, 0,
                  apr_hash_this_val(hi));
    }
    if (rv == APR_SUCCESS) {
        apr_thread_mutex_lock(m->mutex);
        apr_pool_destroy(m->store[kind].pool);
        m->store[kind] = fresh;
        apr_thread_mutex_unlock(m->mutex);
    }
    return rv;
}

static const okey_ledger_ops_t memory_ops = {
    "memory",
    project_get, project_set, project_lock, project_unlock,
    lease_claim, lease_renew, lease_release, lease_due_in, reap_request,
    suspect_add, suspects_due, suspects_drop,
    fill, record, forget, keys_of, count,
    mark_once, may_list,
    store_put, store_get, store_all, store_drop, store_replace
};

static apr_status_t init_tables(memory_t *m)
{
    table_t *tables[] = {&m->projects, &m->locks, &m->suspects, &m->gone, &m->marks,
                         &m->listers};
    apr_status_t rv = table_init(&m->records, m->pool, copy_record);
    apr_size_t i;

    for (i = 0; rv == APR_SUCCESS && i < sizeof(tables) / sizeof(tables[0]); i++) {
        rv = table_init(tables[i], m->pool, copy_entry);
    }
    for (i = 0; rv == APR_SUCCESS && i < OKEY_STORE_KINDS; i++) {
        rv = table_init(&m->store[i], m->pool, copy_entry);
    }
    m->marks_prune_at = SLACK;
    m->listers_prune_at = SLACK;
    return rv;
}

apr_status_t okey_ledger_memory_create(apr_pool_t *pool, okey_ledger_t **ledger)
{
    memory_t *m = apr_pcalloc(pool, sizeof(*m));
    unsigned char drawn[8];
    apr_status_t rv = apr_pool_create(&m->pool, pool);
    apr_size_t i;

    *ledger = NULL;
    if (rv == APR_SUCCESS) {
        rv = apr_thread_mutex_create(&m->mutex, APR_THREAD_MUTEX_DEFAULT, m->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&m->unlocked, m->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = init_tables(m);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_generate_random_bytes(drawn, sizeof(drawn));
    }
    for (i = 0; rv == APR_SUCCESS && i < sizeof(drawn); i++) {
        apr_snprintf(m->token_prefix + 2 * i, 3, "%02x", drawn[i]);
    }
    if (rv == APR_SUCCESS) {
        *ledger = apr_pcalloc(pool, sizeof(**ledger));
        (*ledger)->ops = &memory_ops;
        (*ledger)->baton = m;
    }
    return rv;
}
