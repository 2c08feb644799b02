/* Calls to a ledger, its fallback when it fails, and the helpers the
 * backends share. */
#include "ledger.h"

#include <apr_atomic.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

#include "name.h"

/* Ledgers tried per call: a fallback's own fallback, and no further, so
 * that a chain tied into a loop still ends. */
#define CHAIN_MAX 4
#define COMPLAINT_EVERY apr_time_from_sec(60)

/* Whether this failure is the first of its minute: only one ledger call of
 * all the threads that fail at once wins the exchange. */
static int complaint_due(okey_ledger_health_t *health, apr_time_t now)
{
    volatile apr_uint64_t *last = (volatile apr_uint64_t *)&health->last_complaint;
    apr_uint64_t seen = apr_atomic_read64(last);
    apr_time_t since = now - (apr_time_t)seen;

    /* A clock set back does not silence the ledger for good. */
    return (since >= COMPLAINT_EVERY || since < 0) &&
           apr_atomic_cas64(last, (apr_uint64_t)now, seen) == seen;
}

static void complain(const okey_ledger_t *ledger, const char *op, apr_status_t rv)
{
    apr_pool_t *pool = NULL;
    char cause[120];

    if (apr_pool_create(&pool, NULL) == APR_SUCCESS) {
        okey_log(ledger->logger, OKEY_LOG_ERR, pool,
                 OKEY_LOGNO(400) "ledger %s: %s failed (%s); %s",
                 ledger->ops->name, op, apr_strerror(rv, cause, sizeof(cause)),
                 ledger->fallback ? apr_pstrcat(pool, "using the ",
                                                ledger->fallback->ops->name,
                                                " ledger meanwhile", NULL)
                                  : "going on without it");
        apr_pool_destroy(pool);
    }
}

/* Whether ledger answered op with rv; keeps its health either way. A
 * health shared with a ledger that failed this call (failed) stays down:
 * the fallback answering does not make the ledger asked first up. */
static int heard(okey_ledger_t *ledger, const char *op, apr_status_t rv,
                 okey_ledger_health_t **failed)
{
    okey_ledger_health_t *health = ledger->health;

    if (health && rv == APR_SUCCESS && health != *failed) {
        apr_atomic_set32((volatile apr_uint32_t *)&health->up, 1);
    }
    if (health && rv != APR_SUCCESS) {
        *failed = health;
        apr_atomic_inc64(&health->errors);
        apr_atomic_set32((volatile apr_uint32_t *)&health->up, 0);
        if (ledger->logger && complaint_due(health, apr_time_now())) {
            complain(ledger, op, rv);
        }
    }
    return rv == APR_SUCCESS;
}

/* The next ledger to try after each failed, n tried so far; NULL: none. */
static okey_ledger_t *next_of(okey_ledger_t *each, int n)
{
    return n < CHAIN_MAX ? each : NULL;
}

/* Walks the chain: for each ledger until one answers, run call, named op,
 * whose outputs were reset by reset. */
#define OKEY_LEDGER_TRY(ledger, answered, op, reset, call)                          \
    do {                                                                          \
        okey_ledger_t *each = (ledger);                                           \
        okey_ledger_health_t *failed = NULL;                                      \
        int tried = 0;                                                            \
        for ((answered) = 0; each && !(answered);                                 \
             each = next_of(each->fallback, ++tried)) {                           \
            reset;                                                                \
            (answered) = heard(each, op, each->ops->call, &failed);               \
        }                                                                         \
        if (!(answered)) {                                                        \
            reset;                                                                \
        }                                                                         \
    } while (0)

int okey_ledger_project_get(okey_ledger_t *ledger, apr_pool_t *pool, const char *project,
                            const char **id)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "project_get", *id = NULL,
                    project_get(each->baton, pool, project, id));
    return answered;
}

int okey_ledger_project_set(okey_ledger_t *ledger, const char *project, const char *id,
                            const char *stale)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "project_set", (void)0,
                    project_set(each->baton, project, id, stale));
    return answered;
}

int okey_ledger_project_lock(okey_ledger_t *ledger, const char *project,
                             apr_interval_time_t wait, apr_interval_time_t length,
                             int *taken)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "project_lock", *taken = 0,
                    project_lock(each->baton, project, wait, length, taken));
    return answered;
}

int okey_ledger_project_unlock(okey_ledger_t *ledger, const char *project)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "project_unlock", (void)0,
                    project_unlock(each->baton, project));
    return answered;
}

int okey_ledger_lease_claim(okey_ledger_t *ledger, apr_time_t now, apr_int64_t interval,
                            apr_interval_time_t length, int force,
                            okey_ledger_lease_t *lease, int *claimed)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "lease_claim", *claimed = 0,
                    lease_claim(each->baton, now, interval, length, force, lease, claimed));
    return answered;
}

int okey_ledger_lease_renew(okey_ledger_t *ledger, okey_ledger_lease_t *lease,
                            apr_time_t now, apr_interval_time_t length, int *held)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "lease_renew", *held = 0,
                    lease_renew(each->baton, lease, now, length, held));
    return answered;
}

int okey_ledger_lease_release(okey_ledger_t *ledger, const okey_ledger_lease_t *lease)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "lease_release", (void)0,
                    lease_release(each->baton, lease));
    return answered;
}

int okey_ledger_lease_due_in(okey_ledger_t *ledger, apr_time_t now, apr_int64_t interval,
                             apr_int64_t *seconds, int *held)
{
    int answered;

    /* Unknown, the next claim is tried an interval from now. */
    OKEY_LEDGER_TRY(ledger, answered, "lease_due_in", (*seconds = interval, *held = 0),
                    lease_due_in(each->baton, now, interval, seconds, held));
    return answered;
}

int okey_ledger_reap_request(okey_ledger_t *ledger)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "reap_request", (void)0,
                    reap_request(each->baton));
    return answered;
}

int okey_ledger_suspect_add(okey_ledger_t *ledger, const char *name, apr_int64_t due)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "suspect_add", (void)0,
                    suspect_add(each->baton, name, due));
    return answered;
}

int okey_ledger_suspects_due(okey_ledger_t *ledger, apr_pool_t *pool, apr_int64_t now,
                             apr_hash_t **names)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "suspects_due", *names = NULL,
                    suspects_due(each->baton, pool, now, names));
    return answered;
}

int okey_ledger_suspects_drop(okey_ledger_t *ledger, apr_hash_t *names)
{
    int answered = 1;

    if (names) {
        OKEY_LEDGER_TRY(ledger, answered, "suspects_drop", (void)0,
                        suspects_drop(each->baton, names));
    }
    return answered;
}

int okey_ledger_fill(okey_ledger_t *ledger, apr_pool_t *pool, const apr_array_header_t *live,
                     apr_time_t started)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "fill", (void)0,
                    fill(each->baton, pool, live, started));
    return answered;
}

int okey_ledger_record(okey_ledger_t *ledger, apr_pool_t *pool, const char *email,
                       const okey_owned_key_t *key, apr_time_t now,
                       apr_array_header_t **keys, int *complete)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "record",
                    (*keys = apr_array_make(pool, 1, sizeof(okey_owned_key_t)),
                     *complete = 0),
                    record(each->baton, pool, email, key, now, keys, complete));
    return answered;
}

int okey_ledger_forget(okey_ledger_t *ledger, const char *email, const char *project_id,
                       const char *service_account_id, apr_time_t now)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "forget", (void)0,
                    forget(each->baton, email, project_id, service_account_id, now));
    return answered;
}

int okey_ledger_keys_of(okey_ledger_t *ledger, apr_pool_t *pool, const char *email,
                        const char *project_id, apr_array_header_t **keys, int *complete)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "keys_of",
                    (*keys = apr_array_make(pool, 1, sizeof(okey_owned_key_t)),
                     *complete = 0),
                    keys_of(each->baton, pool, email, project_id, keys, complete));
    return answered;
}

int okey_ledger_count(okey_ledger_t *ledger, apr_int64_t *records)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "count", *records = 0,
                    count(each->baton, records));
    return answered;
}

int okey_ledger_mark_once(okey_ledger_t *ledger, const char *what, apr_time_t now,
                          apr_time_t expires, int *first)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "mark_once", *first = 1,
                    mark_once(each->baton, what, now, expires, first));
    return answered;
}

int okey_ledger_may_list(okey_ledger_t *ledger, const char *email, apr_time_t now,
                         apr_interval_time_t every, int *allowed, apr_int64_t *retry_after)
{
    int answered;

    /* Unknown, listing is the person's right: OpenAI limits it anyway. */
    OKEY_LEDGER_TRY(ledger, answered, "may_list", (*allowed = 1, *retry_after = 0),
                    may_list(each->baton, email, now, every, allowed, retry_after));
    return answered;
}

int okey_ledger_store_put(okey_ledger_t *ledger, okey_store_e kind, const char *name,
                          const char *text)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "store_put", (void)0,
                    store_put(each->baton, kind, name, text));
    return answered;
}

int okey_ledger_store_get(okey_ledger_t *ledger, apr_pool_t *pool, okey_store_e kind,
                          const char *name, const char **text)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "store_get", *text = NULL,
                    store_get(each->baton, pool, kind, name, text));
    return answered;
}

int okey_ledger_store_all(okey_ledger_t *ledger, apr_pool_t *pool, okey_store_e kind,
                          apr_hash_t **entries)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "store_all", *entries = apr_hash_make(pool),
                    store_all(each->baton, pool, kind, entries));
    return answered;
}

int okey_ledger_store_drop(okey_ledger_t *ledger, okey_store_e kind, apr_hash_t *names)
{
    int answered = 1;

    if (names) {
        OKEY_LEDGER_TRY(ledger, answered, "store_drop", (void)0,
                        store_drop(each->baton, kind, names));
    }
    return answered;
}

int okey_ledger_store_replace(okey_ledger_t *ledger, okey_store_e kind, apr_hash_t *entries)
{
    int answered;

    OKEY_LEDGER_TRY(ledger, answered, "store_replace", (void)0,
                    store_replace(each->baton, kind, entries));
    return answered;
}

int okey_store_name_valid(const char *name)
{
    apr_size_t len = name ? strlen(name) : 0;
    int valid = len > 0 && len <= OKEY_STORE_NAME_MAX && name[0] != '.';
    apr_size_t i;

    /* No leading dot also rules out "." and "..": a name is a file's in shm. */
    for (i = 0; valid && i < len; i++) {
        char c = name[i];

        /* By range, not isalnum: a locale must not widen what a file may be named. */
        valid = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
    }
    return valid;
}

/* --- helpers the backends share ------------------------------------------------ */

void okey_ledger_person(const char *email, unsigned char hash[16])
{
    apr_pool_t *pool = NULL;
    unsigned char digest[32];
    apr_size_t len = strlen(email);
    char small[256];
    char *lower = len < sizeof(small) ? small : NULL;
    apr_size_t i;

    /* Addresses are short: the pool is for one that is not. */
    if (!lower && apr_pool_create(&pool, NULL) == APR_SUCCESS) {
        lower = apr_palloc(pool, len + 1);
    }
    memset(digest, 0, sizeof(digest));
    for (i = 0; lower && i < len; i++) {
        lower[i] = (char)apr_tolower(email[i]);
    }
    if (lower) {
        okey_sha256(lower, len, digest);
    }
    memcpy(hash, digest, 16);
    if (pool) {
        apr_pool_destroy(pool);
    }
}

apr_time_t okey_ledger_added(apr_time_t now, apr_int64_t newest)
{
    return newest >= now && newest < APR_INT64_MAX ? newest + 1 : now;
}

const char *okey_ledger_name(apr_pool_t *pool, const char *email, apr_int64_t named,
                             const char *tag)
{
    /* Names carry the address in lower case, and a tag checks against it. */
    const char *lower = okey_lower(pool, email);

    return tag && tag[0]
           ? okey_keys_name_tagged(pool, named, tag, lower)
           : apr_psprintf(pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%s", named, lower);
}
