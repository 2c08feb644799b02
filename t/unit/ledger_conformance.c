/* The conformance suite of the ledger's backends (ledger_conformance.h). */
#include "ledger_conformance.h"

#include "testutil.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "lease.h"

#define SEC(n) apr_time_from_sec(n)
#define INTERVAL 600            /* seconds between reaps */
#define LENGTH SEC(30)          /* of a lease */
#define RACERS 8                /* threads in a race */
#define ROUNDS 12               /* races of each kind */
#define RECORDS_EACH 6          /* keys each racer records */
#define BARRIER_WAIT SEC(20)    /* the longest a racer waits for the others */

typedef struct {
    const char *name;
    okey_ledger_make_fn *make;
    void *arg;
} backend_t;

/* Filled before any test runs, read only afterwards: a loop test's index
 * is the backend's. */
static backend_t backends[OKEY_LEDGER_CONFORMANCE_MAX];
static int backends_added;

/* --- fixtures ---------------------------------------------------------------------- */

/* The wall clock at the start of the test, in whole seconds. */
static apr_time_t start_time(void)
{
    return SEC(apr_time_sec(apr_time_now()));
}

static okey_ledger_t *fresh(int backend)
{
    okey_ledger_t *ledger = backends[backend].make(test_pool, backends[backend].arg);

    ck_assert_msg(ledger != NULL, "%s: make gave no ledger", backends[backend].name);
    ck_assert_msg(ledger->fallback == NULL, "%s: a ledger under test has no fallback",
                  backends[backend].name);
    return ledger;
}

/* A key of email as a sign-in issues it: a tagged name, or an untagged one
 * (drawn NULL) as releases 1 and 2 named them. */
static okey_owned_key_t key_of(const char *email, const char *id, const char *project_id,
                               apr_int64_t created_at, apr_int64_t expires, const char *drawn)
{
    okey_owned_key_t key;

    key.service_account_id = apr_pstrdup(test_pool, id);
    key.name = drawn ? okey_keys_name(test_pool, expires, drawn, email)
                     : apr_psprintf(test_pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%s",
                                    expires, okey_lower(test_pool, email));
    key.project_id = apr_pstrdup(test_pool, project_id);
    key.created_at = created_at;
    key.expires = expires;
    key.rank = okey_terms_rank(0, created_at);
    return key;
}

static apr_array_header_t *listing(void)
{
    return apr_array_make(test_pool, 4, sizeof(okey_owned_key_t));
}

static int has_key(const apr_array_header_t *keys, const char *id)
{
    int found = 0;
    int i;

    for (i = 0; i < keys->nelts && !found; i++) {
        found = !strcmp(APR_ARRAY_IDX(keys, i, okey_owned_key_t).service_account_id, id);
    }
    return found;
}

static const okey_owned_key_t *find_key(const apr_array_header_t *keys, const char *id)
{
    const okey_owned_key_t *found = NULL;
    int i;

    for (i = 0; i < keys->nelts && !found; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(keys, i, okey_owned_key_t);

        found = strcmp(key->service_account_id, id) ? NULL : key;
    }
    return found;
}

/* Whether keys are in okey_owned_key_t's order: rank, then id. */
static int in_order(const apr_array_header_t *keys)
{
    int ordered = 1;
    int i;

    for (i = 1; i < keys->nelts && ordered; i++) {
        const okey_owned_key_t *a = &APR_ARRAY_IDX(keys, i - 1, okey_owned_key_t);
        const okey_owned_key_t *b = &APR_ARRAY_IDX(keys, i, okey_owned_key_t);

        ordered = a->rank < b->rank ||
                  (a->rank == b->rank &&
                   strcmp(a->service_account_id, b->service_account_id) < 0);
    }
    return ordered;
}

static apr_array_header_t *keys_of(okey_ledger_t *ledger, const char *email,
                                   const char *project_id, int *complete)
{
    apr_array_header_t *keys = NULL;
    int done = -1;

    ck_assert(okey_ledger_keys_of(ledger, test_pool, email, project_id, &keys, &done));
    ck_assert_ptr_nonnull(keys);
    ck_assert(in_order(keys));
    if (complete) {
        *complete = done;
    }
    return keys;
}

static apr_array_header_t *record(okey_ledger_t *ledger, const char *email,
                                  const okey_owned_key_t *key, apr_time_t now, int *complete)
{
    apr_array_header_t *keys = NULL;
    int done = -1;

    ck_assert(okey_ledger_record(ledger, test_pool, email, key, now, &keys, &done));
    ck_assert_ptr_nonnull(keys);
    ck_assert(in_order(keys));
    if (complete) {
        *complete = done;
    }
    return keys;
}

static apr_int64_t count(okey_ledger_t *ledger)
{
    apr_int64_t records = -1;

    ck_assert(okey_ledger_count(ledger, &records));
    return records;
}

static void fill(okey_ledger_t *ledger, const apr_array_header_t *live, apr_time_t started)
{
    ck_assert(okey_ledger_fill(ledger, test_pool, live, started));
}

static int claim(okey_ledger_t *ledger, apr_time_t now, int force, okey_ledger_lease_t *lease)
{
    okey_ledger_lease_t ignored;
    int claimed = -1;

    memset(&ignored, 0, sizeof(ignored));
    ck_assert(okey_ledger_lease_claim(ledger, now, INTERVAL, LENGTH, force,
                                      lease ? lease : &ignored, &claimed));
    ck_assert(claimed == 0 || claimed == 1);
    return claimed;
}

static int renew(okey_ledger_t *ledger, okey_ledger_lease_t *lease, apr_time_t now)
{
    int held = -1;

    ck_assert(okey_ledger_lease_renew(ledger, lease, now, LENGTH, &held));
    ck_assert(held == 0 || held == 1);
    return held;
}

static apr_int64_t due_in(okey_ledger_t *ledger, apr_time_t now, int *held)
{
    apr_int64_t seconds = -1;
    int is_held = -1;

    ck_assert(okey_ledger_lease_due_in(ledger, now, INTERVAL, &seconds, &is_held));
    ck_assert(is_held == 0 || is_held == 1);
    if (held) {
        *held = is_held;
    }
    return seconds;
}

static int mark(okey_ledger_t *ledger, const char *what, apr_time_t now, apr_time_t expires)
{
    int first = -1;

    ck_assert(okey_ledger_mark_once(ledger, what, now, expires, &first));
    ck_assert(first == 0 || first == 1);
    return first;
}

static int may_list(okey_ledger_t *ledger, const char *email, apr_time_t now,
                    apr_interval_time_t every, apr_int64_t *retry_after)
{
    int allowed = -1;

    ck_assert(okey_ledger_may_list(ledger, email, now, every, &allowed, retry_after));
    ck_assert(allowed == 0 || allowed == 1);
    return allowed;
}

static apr_hash_t *suspects_due(okey_ledger_t *ledger, apr_int64_t now)
{
    apr_hash_t *names = NULL;

    ck_assert(okey_ledger_suspects_due(ledger, test_pool, now, &names));
    return names;
}

/* --- races ---------------------------------------------------------------------------- */

typedef struct race_t race_t;

/* One thread of a race: what it was given, and what it saw. */
typedef struct {
    race_t *race;
    apr_pool_t *pool;           /* its own */
    int index;
    int answered;               /* every call it made was answered */
    int won;                    /* claimed, marked first, allowed, ... */
    okey_ledger_lease_t lease;
    apr_array_header_t *views;  /* of apr_array_header_t *: what each record gave */
    apr_array_header_t *ids;    /* of const char *: the keys it recorded */
    int incomplete;             /* views that were not complete */
    int overlaps;               /* times another held the lock with it */
} racer_t;

typedef void race_fn(racer_t *racer);

struct race_t {
    okey_ledger_t *ledger;
    race_fn *run;
    apr_time_t now;
    const char *what;           /* a mark, an address */
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *all_there;
    int waiting;
    int n;
    volatile apr_uint32_t inside; /* racers holding the project lock */
    volatile apr_uint32_t replaces; /* store races: one at each start and end of a replace */
    racer_t racers[RACERS];
};

/* Holds every racer until all have come, so that their calls meet. */
static void barrier(race_t *race)
{
    apr_time_t deadline = apr_time_now() + BARRIER_WAIT;

    apr_thread_mutex_lock(race->mutex);
    if (++race->waiting == race->n) {
        apr_thread_cond_broadcast(race->all_there);
    }
    while (race->waiting < race->n && apr_time_now() < deadline) {
        apr_thread_cond_timedwait(race->all_there, race->mutex, deadline - apr_time_now());
    }
    apr_thread_mutex_unlock(race->mutex);
}

static void *APR_THREAD_FUNC racer_main(apr_thread_t *thread, void *data)
{
    racer_t *racer = data;

    barrier(racer->race);
    racer->race->run(racer);
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

/* Runs run in n threads at once against ledger; their findings are in
 * race->racers once all have ended. */
static race_t *race(okey_ledger_t *ledger, int n, race_fn *run, apr_time_t now,
                    const char *what)
{
    race_t *race = apr_pcalloc(test_pool, sizeof(*race));
    apr_thread_t *threads[RACERS];
    apr_status_t rv;
    int i;

    ck_assert_int_le(n, RACERS);
    race->ledger = ledger;
    race->run = run;
    race->now = now;
    race->what = what;
    race->n = n;
    ck_assert_int_eq(apr_thread_mutex_create(&race->mutex, APR_THREAD_MUTEX_DEFAULT,
                                             test_pool), APR_SUCCESS);
    ck_assert_int_eq(apr_thread_cond_create(&race->all_there, test_pool), APR_SUCCESS);
    for (i = 0; i < n; i++) {
        racer_t *racer = &race->racers[i];

        racer->race = race;
        racer->index = i;
        racer->answered = 1;
        ck_assert_int_eq(apr_pool_create(&racer->pool, test_pool), APR_SUCCESS);
        racer->views = apr_array_make(racer->pool, RECORDS_EACH, sizeof(apr_array_header_t *));
        racer->ids = apr_array_make(racer->pool, RECORDS_EACH, sizeof(const char *));
    }
    for (i = 0; i < n; i++) {
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, racer_main, &race->racers[i],
                                           test_pool), APR_SUCCESS);
    }
    for (i = 0; i < n; i++) {
        apr_thread_join(&rv, threads[i]);
    }
    for (i = 0; i < n; i++) {
        ck_assert_msg(race->racers[i].answered, "racer %d had a call unanswered", i);
    }
    return race;
}

static int winners(const race_t *race)
{
    int won = 0;
    int i;

    for (i = 0; i < race->n; i++) {
        won += race->racers[i].won;
    }
    return won;
}

/* --- project ids ------------------------------------------------------------------------- */

static const char *project_id(okey_ledger_t *ledger, const char *project)
{
    const char *id = "unset";

    ck_assert(okey_ledger_project_get(ledger, test_pool, project, &id));
    return id;
}

START_TEST(project_ids_are_kept_per_project)
{
    okey_ledger_t *ledger = fresh(_i);

    ck_assert_ptr_null(project_id(ledger, "team"));
    ck_assert(okey_ledger_project_set(ledger, "team", "proj_1", NULL));
    ck_assert(okey_ledger_project_set(ledger, "proj_other", "proj_other", NULL));
    ck_assert_str_eq(project_id(ledger, "team"), "proj_1");
    ck_assert_str_eq(project_id(ledger, "proj_other"), "proj_other");
    ck_assert_ptr_null(project_id(ledger, "team2"));
    /* A newer id replaces the stored one. */
    ck_assert(okey_ledger_project_set(ledger, "team", "proj_2", NULL));
    ck_assert_str_eq(project_id(ledger, "team"), "proj_2");
}
END_TEST

START_TEST(a_stale_project_id_is_forgotten_only_while_it_is_stored)
{
    okey_ledger_t *ledger = fresh(_i);

    ck_assert(okey_ledger_project_set(ledger, "team", "proj_2", NULL));
    ck_assert(okey_ledger_project_set(ledger, "other", "proj_1", NULL));
    /* Another server found proj_1 stale, after this one stored proj_2. */
    ck_assert(okey_ledger_project_set(ledger, "team", NULL, "proj_1"));
    ck_assert_str_eq(project_id(ledger, "team"), "proj_2");
    ck_assert(okey_ledger_project_set(ledger, "team", NULL, "proj_2"));
    ck_assert_ptr_null(project_id(ledger, "team"));
    ck_assert_str_eq(project_id(ledger, "other"), "proj_1");
}
END_TEST

static int lock(okey_ledger_t *ledger, const char *project, apr_interval_time_t wait,
                apr_interval_time_t length)
{
    int taken = -1;

    ck_assert(okey_ledger_project_lock(ledger, project, wait, length, &taken));
    ck_assert(taken == 0 || taken == 1);
    return taken;
}

START_TEST(a_project_lock_excludes_until_unlocked)
{
    okey_ledger_t *ledger = fresh(_i);

    ck_assert(lock(ledger, "team", 0, SEC(600)));
    ck_assert(!lock(ledger, "team", 0, SEC(600)));
    ck_assert(!lock(ledger, "team", apr_time_from_msec(50), SEC(600)));
    /* Per project. */
    ck_assert(lock(ledger, "other", 0, SEC(600)));
    ck_assert(okey_ledger_project_unlock(ledger, "team"));
    ck_assert(lock(ledger, "team", 0, SEC(600)));
}
END_TEST

START_TEST(a_project_lock_lapses_after_its_length)
{
    okey_ledger_t *ledger = fresh(_i);

    /* Its holder died: the next creator waits out the length, no more. */
    ck_assert(lock(ledger, "team", 0, apr_time_from_msec(100)));
    ck_assert(lock(ledger, "team", SEC(15), SEC(600)));
    ck_assert(!lock(ledger, "team", 0, SEC(600)));
}
END_TEST

/* Adds one to a number kept as a project's id, as a creator finds what
 * the last one stored and stores anew: no update is lost to another. */
static void count_up(racer_t *racer)
{
    okey_ledger_t *ledger = racer->race->ledger;
    const char *id = NULL;
    int n;

    racer->answered &= okey_ledger_project_get(ledger, racer->pool, "count", &id);
    n = id ? atoi(id) : 0;
    apr_thread_yield();
    racer->answered &= okey_ledger_project_set(ledger, "count",
                                               apr_itoa(racer->pool, n + 1), NULL);
}

static void lock_and_look(racer_t *racer)
{
    race_t *race = racer->race;
    int taken = 0;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        racer->answered &= okey_ledger_project_lock(race->ledger, "team", SEC(20), SEC(600),
                                                    &taken);
        racer->won += taken;
        if (taken) {
            racer->overlaps += apr_atomic_inc32(&race->inside) != 0;
            count_up(racer);
            apr_atomic_dec32(&race->inside);
            racer->answered &= okey_ledger_project_unlock(race->ledger, "team");
        }
    }
}

START_TEST(one_creator_at_a_time_holds_a_project_lock)
{
    okey_ledger_t *ledger = fresh(_i);
    race_t *run = race(ledger, RACERS, lock_and_look, 0, NULL);
    int i;

    for (i = 0; i < RACERS; i++) {
        ck_assert_int_eq(run->racers[i].overlaps, 0);
    }
    /* Each waited its turn, within its wait. */
    ck_assert_int_eq(winners(run), RACERS * ROUNDS);
    ck_assert_int_eq(atoi(project_id(ledger, "count")), RACERS * ROUNDS);
}
END_TEST

/* --- the reap lease ------------------------------------------------------------------------ */

START_TEST(a_lease_is_claimed_when_due_and_held_by_one)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t first, second;

    /* Never reaped: due. */
    ck_assert(claim(ledger, t0, 0, &first));
    ck_assert(first.token[0]);
    ck_assert_int_eq(first.expires, t0 + LENGTH);
    /* Held: not even forced. */
    ck_assert(!claim(ledger, t0 + SEC(1), 0, NULL));
    ck_assert(!claim(ledger, t0 + SEC(1), 1, NULL));
    ck_assert(okey_ledger_lease_release(ledger, &first));
    /* Released, it is not due again until the interval has passed. */
    ck_assert(!claim(ledger, t0 + SEC(2), 0, NULL));
    ck_assert(!claim(ledger, t0 + SEC(INTERVAL) - 1, 0, NULL));
    ck_assert(claim(ledger, t0 + SEC(INTERVAL), 0, &second));
    ck_assert_str_ne(first.token, second.token);
}
END_TEST

START_TEST(forced_and_requested_claims_need_only_a_free_lease)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;

    ck_assert(claim(ledger, t0, 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(claim(ledger, t0 + SEC(1), 1, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(!claim(ledger, t0 + SEC(2), 0, NULL));
    ck_assert(okey_ledger_reap_request(ledger));
    ck_assert(claim(ledger, t0 + SEC(3), 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    /* The claim answered the request. */
    ck_assert(!claim(ledger, t0 + SEC(4), 0, NULL));
    /* A request while a lease is held waits for its release. */
    ck_assert(claim(ledger, t0 + SEC(5), 1, &lease));
    ck_assert(okey_ledger_reap_request(ledger));
    ck_assert(!claim(ledger, t0 + SEC(6), 0, NULL));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(claim(ledger, t0 + SEC(7), 0, NULL));
}
END_TEST

START_TEST(a_renewed_lease_lasts_its_length_from_the_renewal)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;

    ck_assert(claim(ledger, t0, 1, &lease));
    ck_assert(renew(ledger, &lease, t0 + SEC(20)));
    ck_assert_int_eq(lease.expires, t0 + SEC(20) + LENGTH);
    ck_assert(!claim(ledger, t0 + SEC(20) + LENGTH - 1, 1, NULL));
    ck_assert(renew(ledger, &lease, t0 + SEC(40)));
    ck_assert(!claim(ledger, t0 + SEC(40) + LENGTH - 1, 1, NULL));
    ck_assert(claim(ledger, t0 + SEC(40) + LENGTH, 1, NULL));
}
END_TEST

START_TEST(a_lapsed_lease_is_taken_over_and_its_holder_loses_it)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t old, taker;

    ck_assert(claim(ledger, t0, 0, &old));
    /* Its holder stopped renewing. */
    ck_assert(claim(ledger, t0 + LENGTH, 1, &taker));
    ck_assert_str_ne(old.token, taker.token);
    ck_assert(!renew(ledger, &old, t0 + LENGTH + SEC(1)));
    /* Its release gives back nothing of the taker's. */
    ck_assert(okey_ledger_lease_release(ledger, &old));
    ck_assert(!claim(ledger, t0 + LENGTH + SEC(2), 1, NULL));
    ck_assert(renew(ledger, &taker, t0 + LENGTH + SEC(3)));
    ck_assert(okey_ledger_lease_release(ledger, &taker));
    ck_assert(claim(ledger, t0 + LENGTH + SEC(4), 1, NULL));
}
END_TEST

START_TEST(a_lease_left_to_lapse_cannot_be_renewed)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;

    ck_assert(claim(ledger, t0, 0, &lease));
    /* Any claimer could have taken it meanwhile: its holder must stop. */
    ck_assert(!renew(ledger, &lease, t0 + LENGTH));
    ck_assert(claim(ledger, t0 + LENGTH + SEC(1), 1, NULL));
}
END_TEST

START_TEST(reapers_that_read_the_clock_a_moment_apart_do_not_both_claim)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;

    /* Two reapers read the time; the one that read it later claims first.
     * To the other the lease ends a moment further ahead than one lasts,
     * and it is held all the same. */
    ck_assert(claim(ledger, t0, 0, &lease));
    ck_assert(!claim(ledger, t0 - 1000, 0, NULL));
    ck_assert(!claim(ledger, t0 - 1000, 1, NULL));
    /* Released, the reap it did is not due again a moment before it began. */
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(!claim(ledger, t0 - 1000, 0, NULL));
}
END_TEST

START_TEST(a_lease_from_a_clock_set_back_is_free)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();

    ck_assert(claim(ledger, t0, 0, NULL));
    /* Now is an hour earlier: the lease ends further ahead than one lasts. */
    ck_assert(claim(ledger, t0 - SEC(3600), 1, NULL));
}
END_TEST

START_TEST(due_in_says_when_a_claim_succeeds)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;
    apr_int64_t seconds;
    int held = -1;

    ck_assert_int_eq(due_in(ledger, t0, &held), 0);
    ck_assert(!held);
    ck_assert(claim(ledger, t0, 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert_int_eq(due_in(ledger, t0 + SEC(10), &held), INTERVAL - 10);
    ck_assert(!held);
    /* Rounded up: not due a moment early. */
    ck_assert_int_eq(due_in(ledger, t0 + SEC(10) + 1, NULL), INTERVAL - 10);
    ck_assert(!claim(ledger, t0 + SEC(INTERVAL) - 1, 0, NULL));
    ck_assert_int_eq(due_in(ledger, t0 + SEC(INTERVAL), NULL), 0);
    ck_assert(claim(ledger, t0 + SEC(INTERVAL), 0, &lease));
    /* Held, and requested: due when the lease would lapse, no earlier. */
    ck_assert(okey_ledger_reap_request(ledger));
    seconds = due_in(ledger, t0 + SEC(INTERVAL + 10), &held);
    ck_assert(held);
    ck_assert_int_ge(seconds, 20);
    ck_assert_int_le(seconds, 21);
    ck_assert(!claim(ledger, t0 + SEC(INTERVAL + 29), 0, NULL));
    ck_assert(claim(ledger, t0 + SEC(INTERVAL + 10 + seconds), 0, NULL));
}
END_TEST

START_TEST(an_orphan_check_due_makes_a_reap_due)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    okey_ledger_lease_t lease;

    ck_assert(claim(ledger, t0, 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(okey_ledger_suspect_add(ledger, "okey-1-abcdefgh-a@example.com",
                                      apr_time_sec(t0) + 50));
    ck_assert_int_eq(due_in(ledger, t0 + SEC(10), NULL), 40);
    ck_assert(!claim(ledger, t0 + SEC(49), 0, NULL));
    ck_assert(claim(ledger, t0 + SEC(50), 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    /* Until the reap that looked for it drops it. */
    ck_assert(claim(ledger, t0 + SEC(51), 0, &lease));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    ck_assert(okey_ledger_suspects_drop(ledger, suspects_due(ledger, apr_time_sec(t0) + 51)));
    ck_assert(!claim(ledger, t0 + SEC(52), 0, NULL));
}
END_TEST

static void claim_now(racer_t *racer)
{
    race_t *race = racer->race;
    int claimed = 0;

    racer->answered = okey_ledger_lease_claim(race->ledger, race->now, INTERVAL, LENGTH, 0,
                                              &racer->lease, &claimed);
    racer->won = claimed;
}

START_TEST(one_of_concurrent_claimers_wins)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_hash_t *tokens = apr_hash_make(test_pool);
    int round, i;

    for (round = 0; round < ROUNDS; round++) {
        /* Each round an interval later: due, and the last lease lapsed. */
        race_t *run = race(ledger, RACERS, claim_now, t0 + SEC(INTERVAL) * round, NULL);

        ck_assert_int_eq(winners(run), 1);
        for (i = 0; i < RACERS; i++) {
            if (run->racers[i].won) {
                ck_assert_ptr_null(apr_hash_get(tokens, run->racers[i].lease.token,
                                                APR_HASH_KEY_STRING));
                apr_hash_set(tokens, apr_pstrdup(test_pool, run->racers[i].lease.token),
                             APR_HASH_KEY_STRING, "");
            }
        }
    }
}
END_TEST

/* --- orphan checks ------------------------------------------------------------------------- */

START_TEST(suspects_are_due_from_their_time_until_dropped)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_hash_t *due;
    apr_hash_t *drop = apr_hash_make(test_pool);

    ck_assert_ptr_null(suspects_due(ledger, 1000));
    ck_assert(okey_ledger_suspect_add(ledger, "okey-1-a@example.com", 100));
    ck_assert(okey_ledger_suspect_add(ledger, "okey-2-b@example.com", 200));
    ck_assert_ptr_null(suspects_due(ledger, 99));
    due = suspects_due(ledger, 100);
    ck_assert_ptr_nonnull(due);
    ck_assert_int_eq(apr_hash_count(due), 1);
    ck_assert_ptr_nonnull(apr_hash_get(due, "okey-1-a@example.com", APR_HASH_KEY_STRING));
    ck_assert_int_eq(*(int *)apr_hash_get(due, "okey-1-a@example.com", APR_HASH_KEY_STRING),
                     0);
    ck_assert_int_eq(apr_hash_count(suspects_due(ledger, 200)), 2);
    apr_hash_set(drop, "okey-1-a@example.com", APR_HASH_KEY_STRING, "");
    ck_assert(okey_ledger_suspects_drop(ledger, drop));
    due = suspects_due(ledger, 300);
    ck_assert_int_eq(apr_hash_count(due), 1);
    ck_assert_ptr_nonnull(apr_hash_get(due, "okey-2-b@example.com", APR_HASH_KEY_STRING));
    ck_assert(okey_ledger_suspects_drop(ledger, due));
    ck_assert_ptr_null(suspects_due(ledger, 300));
}
END_TEST

/* --- records of issued keys ----------------------------------------------------------------- */

#define ALICE "alice@example.com"
#define BOB "bobby@example.com"   /* as long as ALICE */

START_TEST(records_answer_for_everyone_once_a_fill_has_run)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    okey_owned_key_t a2 = key_of(ALICE, "sa_a2", "proj_1", now + 1, now + 3600, "aaaab");
    apr_array_header_t *keys;
    int complete = -1;

    keys = record(ledger, ALICE, &a1, t0, &complete);
    ck_assert(!complete);
    ck_assert(has_key(keys, "sa_a1"));
    keys_of(ledger, ALICE, NULL, &complete);
    ck_assert(!complete);
    keys_of(ledger, BOB, NULL, &complete);
    ck_assert(!complete);
    fill(ledger, listing(), t0);
    keys_of(ledger, BOB, NULL, &complete);
    ck_assert(complete);
    keys = record(ledger, ALICE, &a2, t0 + SEC(1), &complete);
    ck_assert(complete);
    /* a1 was recorded when the listing began: it stays. */
    ck_assert_int_eq(keys->nelts, 2);
}
END_TEST

START_TEST(a_fill_replaces_stale_records)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now - 60, now + 3600, "aaaaa");
    okey_owned_key_t a2 = key_of(ALICE, "sa_a2", "proj_1", now - 50, now + 3600, "aaaab");
    okey_owned_key_t b1 = key_of(BOB, "sa_b1", "proj_1", now - 40, now + 7200, NULL);
    okey_owned_key_t a2_listed = a2;
    apr_array_header_t *live = listing();
    apr_array_header_t *keys;

    record(ledger, ALICE, &a1, t0 - SEC(60), NULL);
    record(ledger, ALICE, &a2, t0 - SEC(50), NULL);
    /* The listing, begun after both, no longer has a1, and has a2 as it is. */
    a2_listed.expires = now + 1800;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = a2_listed;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = b1;
    fill(ledger, live, t0);
    keys = keys_of(ledger, ALICE, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_a2");
    ck_assert_int_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).expires, now + 1800);
    keys = keys_of(ledger, BOB, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).name, b1.name);
    ck_assert_int_eq(count(ledger), 2);
    /* A second fill replaces the first. */
    fill(ledger, listing(), t0 + SEC(10));
    ck_assert_int_eq(count(ledger), 0);
}
END_TEST

START_TEST(a_fill_keeps_what_was_recorded_since_it_began)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t before = key_of(ALICE, "sa_before", "proj_1", now - 1, now + 3600,
                                     "aaaaa");
    okey_owned_key_t at = key_of(ALICE, "sa_at", "proj_1", now, now + 3600, "aaaab");
    okey_owned_key_t since = key_of(ALICE, "sa_since", "proj_1", now + 5, now + 3600, "aaaac");
    apr_array_header_t *keys;

    record(ledger, ALICE, &before, t0 - 1, NULL);
    record(ledger, ALICE, &at, t0, NULL);
    record(ledger, ALICE, &since, t0 + SEC(5), NULL);
    /* The listing began at t0 and saw none of them. */
    fill(ledger, listing(), t0);
    keys = keys_of(ledger, ALICE, "proj_1", NULL);
    ck_assert(!has_key(keys, "sa_before"));
    ck_assert(has_key(keys, "sa_at"));
    ck_assert(has_key(keys, "sa_since"));
    ck_assert_int_eq(count(ledger), 2);
}
END_TEST

START_TEST(a_fill_does_not_bring_back_keys_forgotten_since_it_began)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    apr_array_header_t *live = listing();

    APR_ARRAY_PUSH(live, okey_owned_key_t) = a1;
    fill(ledger, live, t0);
    ck_assert(has_key(keys_of(ledger, ALICE, NULL, NULL), "sa_a1"));
    ck_assert(okey_ledger_forget(ledger, ALICE, "proj_1", "sa_a1", t0 + SEC(10)));
    ck_assert(!has_key(keys_of(ledger, ALICE, NULL, NULL), "sa_a1"));
    /* Listed before it was deleted. */
    fill(ledger, live, t0 + SEC(5));
    ck_assert(!has_key(keys_of(ledger, ALICE, NULL, NULL), "sa_a1"));
    fill(ledger, live, t0 + SEC(10));
    ck_assert(!has_key(keys_of(ledger, ALICE, NULL, NULL), "sa_a1"));
    /* Listed after: it is there after all. */
    fill(ledger, live, t0 + SEC(11));
    ck_assert(has_key(keys_of(ledger, ALICE, NULL, NULL), "sa_a1"));
}
END_TEST

START_TEST(a_fill_skips_names_not_ours)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t mine = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    okey_owned_key_t foreign = mine;
    okey_owned_key_t bare = mine;
    apr_array_header_t *live = listing();

    foreign.service_account_id = "sa_foreign";
    foreign.name = "ci-bot";
    bare.service_account_id = "sa_bare";
    bare.name = ALICE;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = foreign;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = mine;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = bare;
    fill(ledger, live, t0);
    ck_assert_int_eq(count(ledger), 1);
    ck_assert_int_eq(keys_of(ledger, ALICE, NULL, NULL)->nelts, 1);
}
END_TEST

START_TEST(names_are_given_back_as_they_were)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t tagged = key_of("Alice@Example.com", "sa_1", "proj_1", now, now + 3600,
                                     "x0x0x");
    okey_owned_key_t untagged = key_of(ALICE, "sa_2", "proj_1", now + 1, now + 7200, NULL);
    apr_array_header_t *live = listing();
    apr_array_header_t *keys;

    APR_ARRAY_PUSH(live, okey_owned_key_t) = untagged;
    fill(ledger, live, t0);
    record(ledger, "Alice@Example.com", &tagged, t0 + SEC(1), NULL);
    keys = keys_of(ledger, ALICE, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(find_key(keys, "sa_1")->name, tagged.name);
    ck_assert_str_eq(find_key(keys, "sa_2")->name, untagged.name);
    ck_assert_str_eq(find_key(keys, "sa_1")->project_id, "proj_1");
    ck_assert_int_eq(find_key(keys, "sa_1")->created_at, now);
    ck_assert_int_eq(find_key(keys, "sa_1")->expires, now + 3600);
    /* The address in any case is the same person's. */
    keys = keys_of(ledger, "ALICE@EXAMPLE.COM", NULL, NULL);
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(find_key(keys, "sa_1")->name, tagged.name);
}
END_TEST

START_TEST(no_one_sees_another_persons_keys)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    okey_owned_key_t b1 = key_of(BOB, "sa_b1", "proj_1", now, now + 3600, "bbbbb");
    okey_owned_key_t c1 = key_of("alice@example.co", "sa_c1", "proj_1", now, now + 3600,
                                 "ccccc");
    apr_array_header_t *keys;

    fill(ledger, listing(), t0);
    record(ledger, ALICE, &a1, t0, NULL);
    keys = record(ledger, BOB, &b1, t0, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_b1");
    keys = record(ledger, "alice@example.co", &c1, t0, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    keys = keys_of(ledger, ALICE, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_a1");
    ck_assert_int_eq(keys_of(ledger, "carol@example.com", NULL, NULL)->nelts, 0);
    ck_assert_int_eq(count(ledger), 3);
}
END_TEST

START_TEST(a_record_sees_the_live_keys_of_its_project)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t old = key_of(ALICE, "sa_old", "proj_1", now - 7200, now - 1, "aaaaa");
    okey_owned_key_t ends = key_of(ALICE, "sa_ends", "proj_1", now - 3600, now, "aaaab");
    okey_owned_key_t other = key_of(ALICE, "sa_other", "proj_2", now - 60, now + 3600, "aaaac");
    okey_owned_key_t live_b = key_of(ALICE, "sa_b", "proj_1", now - 30, now + 3600, "aaaad");
    okey_owned_key_t live_a = key_of(ALICE, "sa_a", "proj_1", now - 30, now + 60, "aaaae");
    okey_owned_key_t fresh_key = key_of(ALICE, "sa_fresh", "proj_1", now, now + 3600,
                                        "aaaaf");
    apr_array_header_t *keys;
    int complete = -1;

    fill(ledger, listing(), t0 - SEC(7200));
    record(ledger, ALICE, &old, t0 - SEC(7200), NULL);
    record(ledger, ALICE, &ends, t0 - SEC(3600), NULL);
    record(ledger, ALICE, &other, t0 - SEC(60), NULL);
    record(ledger, ALICE, &live_b, t0 - SEC(30), NULL);
    record(ledger, ALICE, &live_a, t0 - SEC(30), NULL);
    keys = record(ledger, ALICE, &fresh_key, t0, &complete);
    ck_assert(complete);
    /* Expired keys count against nobody; other projects' are not the cap's.
     * Recorded in one microsecond, sa_b then sa_a rank in that order. */
    ck_assert_int_eq(keys->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_b");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 1, okey_owned_key_t).service_account_id, "sa_a");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 2, okey_owned_key_t).service_account_id, "sa_fresh");
    /* keys_of has them all, expired too, in the same order. */
    keys = keys_of(ledger, ALICE, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 6);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_old");
    keys = keys_of(ledger, ALICE, "proj_1", NULL);
    ck_assert_int_eq(keys->nelts, 5);
    ck_assert(!has_key(keys, "sa_other"));
    keys = keys_of(ledger, ALICE, "proj_2", NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_int_eq(keys_of(ledger, ALICE, "proj_3", NULL)->nelts, 0);
    ck_assert_int_eq(count(ledger), 6);
}
END_TEST

START_TEST(a_record_ranks_after_every_key_of_its_owner_whatever_the_clocks)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    /* late was created a second after early but reaches the ledger first;
     * then a server whose clock is behind records slow. */
    okey_owned_key_t late = key_of(ALICE, "sa_late", "proj_1", now + 1, now + 3600, "aaaaa");
    okey_owned_key_t early = key_of(ALICE, "sa_early", "proj_1", now, now + 3600, "aaaab");
    okey_owned_key_t slow = key_of(ALICE, "sa_slow", "proj_1", now, now + 3600, "aaaac");
    okey_owned_key_t bob = key_of(BOB, "sa_bob", "proj_1", now + 9, now + 3600, "aaaad");
    apr_array_header_t *keys;

    fill(ledger, listing(), t0 - SEC(60));
    record(ledger, BOB, &bob, t0 + SEC(9), NULL);
    record(ledger, ALICE, &late, t0 + SEC(1), NULL);
    keys = record(ledger, ALICE, &early, t0 + SEC(1), NULL);
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 1, okey_owned_key_t).service_account_id, "sa_early");
    keys = record(ledger, ALICE, &slow, t0 - SEC(30), NULL);
    ck_assert_int_eq(keys->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_late");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 2, okey_owned_key_t).service_account_id, "sa_slow");
    /* Another person's keys do not push hers along. */
    ck_assert_int_lt(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).rank, SEC(now + 9));
    /* keys_of gives them in the same order. */
    keys = keys_of(ledger, ALICE, "proj_1", NULL);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_late");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 2, okey_owned_key_t).service_account_id, "sa_slow");
}
END_TEST

START_TEST(a_fill_keeps_the_rank_of_a_recorded_key)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t late = key_of(ALICE, "sa_late", "proj_1", now - 9, now + 3600, "aaaaa");
    okey_owned_key_t early = key_of(ALICE, "sa_early", "proj_1", now - 10, now + 3600,
                                    "aaaab");
    okey_owned_key_t listed_only = key_of(ALICE, "sa_listed", "proj_1", now - 5, now + 3600,
                                          "aaaac");
    apr_array_header_t *live = listing();
    apr_array_header_t *keys;

    record(ledger, ALICE, &late, t0 - SEC(8), NULL);
    record(ledger, ALICE, &early, t0 - SEC(8), NULL);
    /* A listing that saw all three, ranked by their creation. */
    APR_ARRAY_PUSH(live, okey_owned_key_t) = early;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = late;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = listed_only;
    fill(ledger, live, t0);
    keys = keys_of(ledger, ALICE, "proj_1", NULL);
    ck_assert_int_eq(keys->nelts, 3);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_late");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 1, okey_owned_key_t).service_account_id, "sa_early");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 2, okey_owned_key_t).service_account_id, "sa_listed");
    ck_assert_int_eq(APR_ARRAY_IDX(keys, 2, okey_owned_key_t).rank, SEC(now - 5));
    ck_assert_int_eq(count(ledger), 3);
}
END_TEST

START_TEST(a_key_a_fill_saw_first_ranks_as_recorded_when_its_sign_in_records_it)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    /* One second, and ids that put sa_a first: the listing of a reap saw
     * sa_a before its sign-in recorded it, and sa_b was recorded between. */
    okey_owned_key_t a = key_of(ALICE, "sa_a", "proj_1", now, now + 3600, "aaaaa");
    okey_owned_key_t b = key_of(ALICE, "sa_b", "proj_1", now, now + 3600, "aaaab");
    apr_array_header_t *live = listing();
    apr_array_header_t *keys;

    APR_ARRAY_PUSH(live, okey_owned_key_t) = a;
    fill(ledger, live, t0 - SEC(1));
    record(ledger, ALICE, &b, t0 + SEC(1), NULL);
    keys = record(ledger, ALICE, &a, t0 + SEC(1), NULL);
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 1, okey_owned_key_t).service_account_id, "sa_a");
    ck_assert_int_eq(count(ledger), 2);
}
END_TEST

START_TEST(a_key_recorded_again_is_recorded_once)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    apr_array_header_t *keys;

    record(ledger, ALICE, &a1, t0, NULL);
    keys = record(ledger, ALICE, &a1, t0 + SEC(1), NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_int_eq(keys_of(ledger, ALICE, NULL, NULL)->nelts, 1);
    ck_assert_int_eq(count(ledger), 1);
}
END_TEST

START_TEST(forget_removes_one_key)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t now = apr_time_sec(t0);
    okey_owned_key_t a1 = key_of(ALICE, "sa_a1", "proj_1", now, now + 3600, "aaaaa");
    okey_owned_key_t a2 = key_of(ALICE, "sa_a2", "proj_1", now + 1, now + 3600, "aaaab");
    apr_array_header_t *keys;

    record(ledger, ALICE, &a1, t0, NULL);
    record(ledger, ALICE, &a2, t0, NULL);
    ck_assert_int_eq(count(ledger), 2);
    ck_assert(okey_ledger_forget(ledger, ALICE, "proj_1", "sa_a1", t0 + SEC(1)));
    keys = keys_of(ledger, ALICE, NULL, NULL);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_a2");
    ck_assert_int_eq(count(ledger), 1);
    /* A key not recorded: nothing to forget, and no failure. */
    ck_assert(okey_ledger_forget(ledger, ALICE, "proj_1", "sa_none", t0 + SEC(1)));
    ck_assert_int_eq(count(ledger), 1);
}
END_TEST

/* Records RECORDS_EACH keys of one person, in one project. */
static void record_keys(racer_t *racer)
{
    race_t *race = racer->race;
    apr_int64_t now = apr_time_sec(race->now);
    int i;

    for (i = 0; i < RECORDS_EACH; i++) {
        /* Some created in the same second: the id breaks the tie. */
        okey_owned_key_t key;
        apr_array_header_t *view = NULL;
        int complete = 0;

        key.service_account_id = apr_psprintf(racer->pool, "sa_%d_%d", racer->index, i);
        key.project_id = "proj_1";
        key.created_at = now + (racer->index + i) % 3;
        key.expires = now + 3600;
        key.name = okey_keys_name(racer->pool, key.expires, "zzzzz", race->what);
        racer->answered &= okey_ledger_record(race->ledger, racer->pool, race->what, &key,
                                              race->now, &view, &complete);
        APR_ARRAY_PUSH(racer->ids, const char *) = key.service_account_id;
        APR_ARRAY_PUSH(racer->views, apr_array_header_t *) = view;
        racer->incomplete += !complete;
    }
}

/* How many of the keys of by_size[total] no view's cap of cap takes, each
 * view keeping its own key, the newest; asserts the last cap recorded are
 * among them. */
static int survivors_of_cap(const apr_array_header_t *const *by_size, int total,
                            apr_int64_t cap)
{
    apr_hash_t *taken = apr_hash_make(test_pool);
    const apr_array_header_t *all = by_size[total];
    int left = 0;
    int k, i;

    for (k = 1; k <= total; k++) {
        const apr_array_header_t *view = by_size[k];
        const char *own = APR_ARRAY_IDX(view, view->nelts - 1,
                                        okey_owned_key_t).service_account_id;
        apr_array_header_t *victims = okey_terms_over_cap(test_pool, cap, view, own);

        for (i = 0; i < victims->nelts; i++) {
            apr_hash_set(taken, APR_ARRAY_IDX(victims, i, okey_owned_key_t).service_account_id,
                         APR_HASH_KEY_STRING, "");
        }
    }
    for (i = 0; i < all->nelts; i++) {
        const char *id = APR_ARRAY_IDX(all, i, okey_owned_key_t).service_account_id;
        int survives = !apr_hash_get(taken, id, APR_HASH_KEY_STRING);

        ck_assert_msg(survives || i < all->nelts - cap, "the cap took %s, among the newest", id);
        left += survives;
    }
    return left;
}

START_TEST(each_record_sees_every_record_before_it)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    const apr_array_header_t *by_size[RACERS * RECORDS_EACH + 1];
    race_t *run;
    int total = RACERS * RECORDS_EACH;
    int i, j, k;

    fill(ledger, listing(), t0 - SEC(60));
    run = race(ledger, RACERS, record_keys, t0, ALICE);
    memset(by_size, 0, sizeof(by_size));
    for (i = 0; i < RACERS; i++) {
        ck_assert_int_eq(run->racers[i].incomplete, 0);
        for (j = 0; j < RECORDS_EACH; j++) {
            const apr_array_header_t *view = APR_ARRAY_IDX(run->racers[i].views, j,
                                                           apr_array_header_t *);

            ck_assert_ptr_nonnull(view);
            ck_assert(in_order(view));
            /* Each record's own key is the newest of its view. */
            ck_assert_str_eq(APR_ARRAY_IDX(view, view->nelts - 1,
                                           okey_owned_key_t).service_account_id,
                             APR_ARRAY_IDX(run->racers[i].ids, j, const char *));
            /* One record at a time: each view one larger than the last. */
            ck_assert_int_ge(view->nelts, 1);
            ck_assert_int_le(view->nelts, total);
            ck_assert_msg(!by_size[view->nelts], "two views of %d keys", view->nelts);
            by_size[view->nelts] = view;
        }
    }
    /* And each holds the one before it. */
    for (k = 2; k <= total; k++) {
        for (j = 0; j < by_size[k - 1]->nelts; j++) {
            ck_assert(has_key(by_size[k], APR_ARRAY_IDX(by_size[k - 1], j,
                                                        okey_owned_key_t).service_account_id));
        }
    }
    ck_assert_int_eq(keys_of(ledger, ALICE, "proj_1", NULL)->nelts, total);
    /* Under a cap of two, what every sign-in takes from its view leaves
     * exactly the last two recorded. */
    ck_assert_int_eq(survivors_of_cap(by_size, total, 2), 2);
}
END_TEST

/* Racer 0 fills again and again with a listing begun before the others
 * record; the others record. */
static void fill_or_record(racer_t *racer)
{
    race_t *race = racer->race;
    int i;

    for (i = 0; racer->index == 0 && i < ROUNDS; i++) {
        racer->answered &= okey_ledger_fill(race->ledger, racer->pool,
                                            apr_array_make(racer->pool, 1,
                                                           sizeof(okey_owned_key_t)),
                                            race->now - SEC(1));
    }
    if (racer->index) {
        record_keys(racer);
    }
}

START_TEST(a_fill_never_loses_a_record_made_while_it_listed)
{
    okey_ledger_t *ledger = fresh(_i);
    race_t *run = race(ledger, RACERS, fill_or_record, start_time(), ALICE);
    apr_array_header_t *keys = keys_of(ledger, ALICE, NULL, NULL);
    int i, j;

    ck_assert_int_eq(keys->nelts, (RACERS - 1) * RECORDS_EACH);
    for (i = 1; i < RACERS; i++) {
        for (j = 0; j < RECORDS_EACH; j++) {
            ck_assert(has_key(keys, APR_ARRAY_IDX(run->racers[i].ids, j, const char *)));
        }
    }
}
END_TEST

/* --- one-time marks and rates ------------------------------------------------------------ */

START_TEST(a_mark_is_first_once_until_it_expires)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();

    ck_assert(mark(ledger, "state-1", t0, t0 + SEC(600)));
    ck_assert(!mark(ledger, "state-1", t0 + SEC(1), t0 + SEC(601)));
    ck_assert(mark(ledger, "state-2", t0 + SEC(1), t0 + SEC(601)));
    ck_assert(!mark(ledger, "state-1", t0 + SEC(600) - 1, t0 + SEC(1200)));
    /* Expired, what it marked can no longer be used anyway. */
    ck_assert(mark(ledger, "state-1", t0 + SEC(600), t0 + SEC(1200)));
    ck_assert(!mark(ledger, "state-1", t0 + SEC(601), t0 + SEC(1200)));
}
END_TEST

static void mark_now(racer_t *racer)
{
    race_t *race = racer->race;
    int first = 0;

    racer->answered = okey_ledger_mark_once(race->ledger, race->what, race->now,
                                            race->now + SEC(600), &first);
    racer->won = first;
}

START_TEST(one_of_concurrent_markers_is_first)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    int round;

    for (round = 0; round < ROUNDS; round++) {
        const char *what = apr_psprintf(test_pool, "state-%d", round);

        ck_assert_int_eq(winners(race(ledger, RACERS, mark_now, t0, what)), 1);
    }
}
END_TEST

START_TEST(a_person_may_list_once_per_every)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    apr_int64_t retry = -1;

    ck_assert(may_list(ledger, ALICE, t0, SEC(60), &retry));
    ck_assert_int_eq(retry, 0);
    ck_assert(!may_list(ledger, ALICE, t0 + SEC(1), SEC(60), &retry));
    ck_assert_int_eq(retry, 59);
    /* Rounded up to whole seconds. */
    ck_assert(!may_list(ledger, "Alice@Example.COM", t0 + SEC(59) + 1, SEC(60), &retry));
    ck_assert_int_eq(retry, 1);
    /* Someone else is not held back. */
    ck_assert(may_list(ledger, BOB, t0 + SEC(2), SEC(60), &retry));
    ck_assert(may_list(ledger, ALICE, t0 + SEC(60), SEC(60), &retry));
    ck_assert_int_eq(retry, 0);
    ck_assert(!may_list(ledger, ALICE, t0 + SEC(61), SEC(60), &retry));
    ck_assert_int_eq(retry, 59);
}
END_TEST

static void list_now(racer_t *racer)
{
    race_t *race = racer->race;
    apr_int64_t retry = 0;
    int allowed = 0;

    racer->answered = okey_ledger_may_list(race->ledger, race->what, race->now, SEC(60),
                                           &allowed, &retry);
    racer->won = allowed;
}

START_TEST(one_of_concurrent_listings_is_allowed)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_time_t t0 = start_time();
    int round;

    for (round = 0; round < ROUNDS; round++) {
        ck_assert_int_eq(winners(race(ledger, RACERS, list_now, t0 + SEC(60) * round, ALICE)),
                         1);
    }
}
END_TEST

/* --- what outlives a stop ------------------------------------------------------------------ */

#define STORE_SET 12            /* names a replace in the races writes */
#define STORE_REPLACES 24       /* replaces in a race */
#define STORE_READS_MAX 4000    /* reads each reader makes at most */
#define STORE_PUTS_AFTER 4      /* puts each putter makes after the last replace */
#define STORE_PUTS_MAX 1000000  /* puts each putter makes at most */
#define STORE_PUT_NAMES 64      /* names each putter cycles through */

static const char *got(okey_ledger_t *ledger, okey_store_e kind, const char *name)
{
    const char *text = "unset";

    ck_assert_msg(okey_ledger_store_get(ledger, test_pool, kind, name, &text),
                  "store_get %s unanswered", name);
    return text;
}

static apr_hash_t *all_of(okey_ledger_t *ledger, okey_store_e kind)
{
    apr_hash_t *entries = NULL;

    ck_assert(okey_ledger_store_all(ledger, test_pool, kind, &entries));
    ck_assert_ptr_nonnull(entries);
    return entries;
}

static apr_hash_t *names_of(const char *first, ...)
{
    apr_hash_t *names = apr_hash_make(test_pool);
    const char *each;
    va_list args;

    va_start(args, first);
    for (each = first; each; each = va_arg(args, const char *)) {
        apr_hash_set(names, each, APR_HASH_KEY_STRING, "");
    }
    va_end(args);
    return names;
}

START_TEST(a_stored_text_is_read_back_until_overwritten)
{
    okey_ledger_t *ledger = fresh(_i);

    ck_assert_ptr_null(got(ledger, OKEY_STORE_KEYS, "key_a"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "{\"email\":\"a\"}"));
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a"), "{\"email\":\"a\"}");
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "second|with a bar"));
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a"), "second|with a bar");
    /* The kinds are apart. */
    ck_assert_ptr_null(got(ledger, OKEY_STORE_SPEND, "key_a"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "index", ""));
    ck_assert_str_eq(got(ledger, OKEY_STORE_SPEND, "index"), "");
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a"), "second|with a bar");
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_KEYS)), 1);
}
END_TEST

START_TEST(all_gives_every_entry_and_drop_removes_only_the_names)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_hash_t *entries;

    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_SPEND)), 0);
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "index", "i"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "0a1b", "p1"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "2c3d", "p2"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_x", "k"));
    entries = all_of(ledger, OKEY_STORE_SPEND);
    ck_assert_int_eq(apr_hash_count(entries), 3);
    ck_assert_str_eq(apr_hash_get(entries, "index", APR_HASH_KEY_STRING), "i");
    ck_assert_str_eq(apr_hash_get(entries, "0a1b", APR_HASH_KEY_STRING), "p1");
    ck_assert_str_eq(apr_hash_get(entries, "2c3d", APR_HASH_KEY_STRING), "p2");
    ck_assert(okey_ledger_store_drop(ledger, OKEY_STORE_SPEND,
                                     names_of("0a1b", "never-stored", NULL)));
    entries = all_of(ledger, OKEY_STORE_SPEND);
    ck_assert_int_eq(apr_hash_count(entries), 2);
    ck_assert_ptr_null(apr_hash_get(entries, "0a1b", APR_HASH_KEY_STRING));
    ck_assert_ptr_null(got(ledger, OKEY_STORE_SPEND, "0a1b"));
    ck_assert_str_eq(got(ledger, OKEY_STORE_SPEND, "2c3d"), "p2");
    ck_assert(okey_ledger_store_drop(ledger, OKEY_STORE_SPEND, NULL));
    ck_assert(okey_ledger_store_drop(ledger, OKEY_STORE_SPEND, apr_hash_make(test_pool)));
    /* Dropping from one kind leaves the other. */
    ck_assert(okey_ledger_store_drop(ledger, OKEY_STORE_SPEND, names_of("key_x", NULL)));
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_x"), "k");
}
END_TEST

START_TEST(a_replace_makes_its_entries_all_the_kind_holds)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_hash_t *entries = apr_hash_make(test_pool);
    apr_hash_t *seen;

    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "old", "o"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "kept", "k1"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "a"));
    apr_hash_set(entries, "kept", APR_HASH_KEY_STRING, "k2");
    apr_hash_set(entries, "new", APR_HASH_KEY_STRING, "n");
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, entries));
    seen = all_of(ledger, OKEY_STORE_SPEND);
    ck_assert_int_eq(apr_hash_count(seen), 2);
    ck_assert_str_eq(apr_hash_get(seen, "kept", APR_HASH_KEY_STRING), "k2");
    ck_assert_str_eq(apr_hash_get(seen, "new", APR_HASH_KEY_STRING), "n");
    ck_assert_ptr_null(got(ledger, OKEY_STORE_SPEND, "old"));
    /* A put after a replace lands in what the replace made. */
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "later", "l"));
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_SPEND)), 3);
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a"), "a");
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, apr_hash_make(test_pool)));
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_SPEND)), 0);
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, entries));
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_SPEND)), 2);
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a"), "a");
}
END_TEST

START_TEST(names_that_are_not_names_are_refused)
{
    okey_ledger_t *ledger = fresh(_i);
    const char *bad[] = {"", ".", "..", ".hidden", "a/b", "../up", "a b", "sp\xc3\xa9nd",
                         "a\\b", NULL, NULL};
    char longest[OKEY_STORE_NAME_MAX + 2];
    apr_hash_t *entries = apr_hash_make(test_pool);
    int i;

    memset(longest, 'n', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    bad[9] = longest;
    for (i = 0; bad[i]; i++) {
        const char *text = "unset";

        ck_assert_msg(!okey_store_name_valid(bad[i]), "\"%s\" is valid", bad[i]);
        ck_assert_msg(!okey_ledger_store_put(ledger, OKEY_STORE_KEYS, bad[i], "t"),
                      "\"%s\" stored", bad[i]);
        ck_assert(!okey_ledger_store_get(ledger, test_pool, OKEY_STORE_KEYS, bad[i], &text));
        ck_assert_ptr_null(text);
    }
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_KEYS)), 0);
    /* The longest name is one shorter; dots inside a name are fine. */
    longest[OKEY_STORE_NAME_MAX] = '\0';
    ck_assert(okey_store_name_valid(longest));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, longest, "t"));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a.b-c_D9", "u"));
    ck_assert_str_eq(got(ledger, OKEY_STORE_KEYS, "key_a.b-c_D9"), "u");
    /* A replace with one bad name changes nothing. */
    apr_hash_set(entries, "good", APR_HASH_KEY_STRING, "g");
    apr_hash_set(entries, "../bad", APR_HASH_KEY_STRING, "b");
    ck_assert(!okey_ledger_store_replace(ledger, OKEY_STORE_KEYS, entries));
    ck_assert(!okey_ledger_store_drop(ledger, OKEY_STORE_KEYS, names_of("..", NULL)));
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_KEYS)), 2);
    ck_assert_ptr_null(got(ledger, OKEY_STORE_KEYS, "good"));
}
END_TEST

START_TEST(texts_longer_than_the_most_are_refused)
{
    okey_ledger_t *ledger = fresh(_i);
    char *text = apr_palloc(test_pool, OKEY_STORE_TEXT_MAX + 2);
    apr_hash_t *entries = apr_hash_make(test_pool);
    const char *back;
    int i;

    for (i = 0; i <= OKEY_STORE_TEXT_MAX; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[OKEY_STORE_TEXT_MAX + 1] = '\0';
    ck_assert(!okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "big", text));
    ck_assert_ptr_null(got(ledger, OKEY_STORE_SPEND, "big"));
    apr_hash_set(entries, "small", APR_HASH_KEY_STRING, "s");
    apr_hash_set(entries, "big", APR_HASH_KEY_STRING, text);
    ck_assert(!okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, entries));
    ck_assert_int_eq(apr_hash_count(all_of(ledger, OKEY_STORE_SPEND)), 0);
    /* As long as may be is kept whole. */
    text[OKEY_STORE_TEXT_MAX] = '\0';
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "big", text));
    back = got(ledger, OKEY_STORE_SPEND, "big");
    ck_assert_ptr_nonnull(back);
    ck_assert_uint_eq(strlen(back), OKEY_STORE_TEXT_MAX);
    ck_assert(!memcmp(back, text, OKEY_STORE_TEXT_MAX));
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, entries));
    ck_assert_uint_eq(strlen(apr_hash_get(all_of(ledger, OKEY_STORE_SPEND), "big",
                                          APR_HASH_KEY_STRING)), OKEY_STORE_TEXT_MAX);
}
END_TEST

START_TEST(many_entries_are_replaced_and_read_whole)
{
    okey_ledger_t *ledger = fresh(_i);
    apr_hash_t *entries = apr_hash_make(test_pool);
    apr_hash_t *seen;
    int i;

    for (i = 0; i < 1000; i++) {
        apr_hash_set(entries, apr_psprintf(test_pool, "key_%04d", i), APR_HASH_KEY_STRING,
                     apr_psprintf(test_pool, "text %d", i));
    }
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_KEYS, entries));
    seen = all_of(ledger, OKEY_STORE_KEYS);
    ck_assert_int_eq(apr_hash_count(seen), 1000);
    for (i = 0; i < 1000; i += 111) {
        ck_assert_str_eq(apr_hash_get(seen, apr_psprintf(test_pool, "key_%04d", i),
                                      APR_HASH_KEY_STRING),
                         apr_psprintf(test_pool, "text %d", i));
    }
}
END_TEST

/* The set a replace of generation g writes: each text names g. */
static apr_hash_t *generation_set(apr_pool_t *pool, int g)
{
    apr_hash_t *entries = apr_hash_make(pool);
    int i;

    for (i = 0; i < STORE_SET; i++) {
        apr_hash_set(entries, apr_psprintf(pool, "n%02d", i), APR_HASH_KEY_STRING,
                     apr_psprintf(pool, "g=%d;n=%d", g, i));
    }
    return entries;
}

/* The generation text names, or -1 when it is none of generation_set's. */
static int generation_of(const char *text, const char *name)
{
    int g = -1, n = -1;
    char expected[16];

    /* Called from racers: no pool of the test's. */
    if (!text || sscanf(text, "g=%d;n=%d", &g, &n) != 2) {
        g = -1;
    }
    snprintf(expected, sizeof(expected), "n%02d", n);
    return strcmp(expected, name) ? -1 : g;
}

/* Racer 0 replaces the set again and again; the others read it. */
static void replace_or_read(racer_t *racer)
{
    race_t *race = racer->race;
    apr_pool_t *round = NULL;
    int reads = 0, after = 0, last = 0, i;

    racer->answered = apr_pool_create(&round, round) == APR_SUCCESS;

    for (i = 1; racer->index == 0 && i <= STORE_REPLACES; i++) {
        racer->answered &= okey_ledger_store_replace(race->ledger, OKEY_STORE_SPEND,
                                                     generation_set(round, i));
        apr_pool_clear(round);
    }
    if (racer->index == 0) {
        apr_atomic_set32(&race->replaces, 1);
    }
    /* Till the replaces end, and a few times after. */
    while (racer->index > 0 && reads < STORE_READS_MAX && after < 8) {
        apr_hash_t *entries = NULL;
        const char *a = NULL, *b = NULL;
        apr_hash_index_t *hi;
        int g = -1, ga, gb;

        racer->answered &= okey_ledger_store_all(race->ledger, round, OKEY_STORE_SPEND,
                                                 &entries);
        racer->overlaps += apr_hash_count(entries) != STORE_SET;
        for (hi = apr_hash_first(round, entries); hi; hi = apr_hash_next(hi)) {
            int each = generation_of(apr_hash_this_val(hi), apr_hash_this_key(hi));

            racer->overlaps += each < 0 || (g >= 0 && each != g);
            g = each;
        }
        /* What one reader sees never goes back to an older generation. */
        racer->overlaps += g < last;
        last = g > last ? g : last;
        racer->answered &= okey_ledger_store_get(race->ledger, round, OKEY_STORE_SPEND,
                                                 "n00", &a);
        racer->answered &= okey_ledger_store_get(race->ledger, round, OKEY_STORE_SPEND,
                                                 "n11", &b);
        ga = generation_of(a, "n00");
        gb = generation_of(b, "n11");
        racer->overlaps += ga < last || gb < ga;
        last = gb > last ? gb : last;
        racer->won++;
        reads++;
        after += apr_atomic_read32(&race->replaces) != 0;
        apr_pool_clear(round);
    }
}

START_TEST(readers_see_all_of_one_generation_while_it_is_replaced)
{
    okey_ledger_t *ledger = fresh(_i);
    race_t *seen;
    int i, reads = 0;

    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, generation_set(test_pool, 0)));
    seen = race(ledger, RACERS, replace_or_read, start_time(), NULL);
    for (i = 1; i < RACERS; i++) {
        ck_assert_msg(seen->racers[i].overlaps == 0,
                      "reader %d saw %d mixed, partial or older views", i,
                      seen->racers[i].overlaps);
        reads += seen->racers[i].won;
    }
    ck_assert_int_ge(reads, 8 * (RACERS - 1));
    ck_assert_int_eq(generation_of(got(ledger, OKEY_STORE_SPEND, "n05"), "n05"),
                     STORE_REPLACES);
}
END_TEST

/* Racer 0 replaces the keys again and again; the others put names of
 * their own, and read each back. */
static void replace_or_put(racer_t *racer)
{
    race_t *race = racer->race;
    apr_pool_t *round = NULL;
    int i, after = 0;

    racer->answered = apr_pool_create(&round, racer->pool) == APR_SUCCESS;

    for (i = 1; racer->index == 0 && i <= STORE_REPLACES; i++) {
        apr_atomic_inc32(&race->replaces);
        racer->answered &= okey_ledger_store_replace(race->ledger, OKEY_STORE_KEYS,
                                                     generation_set(round, i));
        /* Done, when both counts of the pair agree again. */
        apr_atomic_inc32(&race->replaces);
        apr_pool_clear(round);
    }
    for (i = 0; racer->index > 0 && i < STORE_PUTS_MAX && after < STORE_PUTS_AFTER; i++) {
        const char *name = apr_psprintf(round, "p%d_%d", racer->index, i % STORE_PUT_NAMES);
        const char *text = apr_psprintf(round, "put %d %d", racer->index, i);
        apr_uint32_t before = apr_atomic_read32(&race->replaces);
        const char *back = NULL;

        racer->answered &= okey_ledger_store_put(race->ledger, OKEY_STORE_KEYS, name, text);
        racer->answered &= okey_ledger_store_get(race->ledger, round, OKEY_STORE_KEYS,
                                                 name, &back);
        /* No replace ran from before the put to after the get: it is there. */
        racer->overlaps += before % 2 == 0 && apr_atomic_read32(&race->replaces) == before &&
                           !(back && !strcmp(back, text));
        racer->overlaps += back && strcmp(back, text);
        if (before == 2 * STORE_REPLACES) {
            APR_ARRAY_PUSH(racer->ids, const char *) = apr_pstrdup(racer->pool, name);
            after++;
        }
        apr_pool_clear(round);
    }
}

START_TEST(a_put_beside_a_replace_is_not_lost)
{
    okey_ledger_t *ledger = fresh(_i);
    race_t *seen;
    apr_hash_t *entries;
    int i, j, puts = 0;

    seen = race(ledger, RACERS, replace_or_put, start_time(), NULL);
    entries = all_of(ledger, OKEY_STORE_KEYS);
    for (i = 0; i < STORE_SET; i++) {
        const char *name = apr_psprintf(test_pool, "n%02d", i);

        ck_assert_int_eq(generation_of(apr_hash_get(entries, name, APR_HASH_KEY_STRING), name),
                         STORE_REPLACES);
    }
    for (i = 1; i < RACERS; i++) {
        const racer_t *racer = &seen->racers[i];

        ck_assert_msg(racer->overlaps == 0, "putter %d lost %d puts", i, racer->overlaps);
        ck_assert_int_eq(racer->ids->nelts, STORE_PUTS_AFTER);
        for (j = 0; j < racer->ids->nelts; j++) {
            ck_assert_ptr_nonnull(apr_hash_get(entries, APR_ARRAY_IDX(racer->ids, j,
                                                                      const char *),
                                               APR_HASH_KEY_STRING));
            puts++;
        }
    }
    ck_assert_int_eq(puts, (RACERS - 1) * STORE_PUTS_AFTER);
}
END_TEST

/* --- the suite --------------------------------------------------------------------------- */

#define GROUPS 6
#define CASE_NAME_MAX 64

/* Check keeps a test case's name, not a copy. */
static char case_names[OKEY_LEDGER_CONFORMANCE_MAX][GROUPS][CASE_NAME_MAX];

static void add_group(Suite *suite, int backend, int group, const char *what,
                      const TTest *const *tests)
{
    char *name = case_names[backend][group];
    TCase *tc;

    apr_snprintf(name, CASE_NAME_MAX, "%s ledger: %s", backends[backend].name, what);
    tc = test_case(name);
    /* Races against a server take longer than against memory. */
    tcase_set_timeout(tc, 120);
    for (; *tests; tests++) {
        tcase_add_loop_test(tc, *tests, backend, backend + 1);
    }
    suite_add_tcase(suite, tc);
}

void okey_ledger_conformance_add(Suite *suite, const char *backend,
                                 okey_ledger_make_fn *make, void *arg)
{
    const TTest *projects[] = {
        project_ids_are_kept_per_project,
        a_stale_project_id_is_forgotten_only_while_it_is_stored,
        a_project_lock_excludes_until_unlocked,
        a_project_lock_lapses_after_its_length,
        one_creator_at_a_time_holds_a_project_lock,
        NULL
    };
    const TTest *lease[] = {
        a_lease_is_claimed_when_due_and_held_by_one,
        forced_and_requested_claims_need_only_a_free_lease,
        a_renewed_lease_lasts_its_length_from_the_renewal,
        a_lapsed_lease_is_taken_over_and_its_holder_loses_it,
        a_lease_left_to_lapse_cannot_be_renewed,
        reapers_that_read_the_clock_a_moment_apart_do_not_both_claim,
        a_lease_from_a_clock_set_back_is_free,
        due_in_says_when_a_claim_succeeds,
        an_orphan_check_due_makes_a_reap_due,
        one_of_concurrent_claimers_wins,
        NULL
    };
    const TTest *suspects[] = {
        suspects_are_due_from_their_time_until_dropped,
        NULL
    };
    const TTest *records[] = {
        records_answer_for_everyone_once_a_fill_has_run,
        a_fill_replaces_stale_records,
        a_fill_keeps_what_was_recorded_since_it_began,
        a_fill_keeps_the_rank_of_a_recorded_key,
        a_fill_does_not_bring_back_keys_forgotten_since_it_began,
        a_fill_skips_names_not_ours,
        names_are_given_back_as_they_were,
        no_one_sees_another_persons_keys,
        a_record_sees_the_live_keys_of_its_project,
        a_record_ranks_after_every_key_of_its_owner_whatever_the_clocks,
        a_key_a_fill_saw_first_ranks_as_recorded_when_its_sign_in_records_it,
        a_key_recorded_again_is_recorded_once,
        forget_removes_one_key,
        each_record_sees_every_record_before_it,
        a_fill_never_loses_a_record_made_while_it_listed,
        NULL
    };
    const TTest *marks[] = {
        a_mark_is_first_once_until_it_expires,
        one_of_concurrent_markers_is_first,
        a_person_may_list_once_per_every,
        one_of_concurrent_listings_is_allowed,
        NULL
    };
    const TTest *store[] = {
        a_stored_text_is_read_back_until_overwritten,
        all_gives_every_entry_and_drop_removes_only_the_names,
        a_replace_makes_its_entries_all_the_kind_holds,
        names_that_are_not_names_are_refused,
        texts_longer_than_the_most_are_refused,
        many_entries_are_replaced_and_read_whole,
        readers_see_all_of_one_generation_while_it_is_replaced,
        a_put_beside_a_replace_is_not_lost,
        NULL
    };
    int at = backends_added;

    if (at >= OKEY_LEDGER_CONFORMANCE_MAX) {
        fprintf(stderr, "more than %d ledger backends\n", OKEY_LEDGER_CONFORMANCE_MAX);
        abort();
    }
    backends[at].name = backend;
    backends[at].make = make;
    backends[at].arg = arg;
    backends_added++;
    add_group(suite, at, 0, "project ids", projects);
    add_group(suite, at, 1, "the reap lease", lease);
    add_group(suite, at, 2, "orphan checks", suspects);
    add_group(suite, at, 3, "records", records);
    add_group(suite, at, 4, "marks and rates", marks);
    add_group(suite, at, 5, "what outlives a stop", store);
}
