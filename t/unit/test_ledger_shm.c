/* The shared-memory ledger: the conformance suite, then what only it has:
 * a fixed room, a layout it checks, and children of one server racing
 * across processes. */
#include "testutil.h"

#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"
#include "ledger.h"
#include "ledger_conformance.h"

#define CAPACITY 2000

typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
} segment_t;

static apr_status_t drop_segment(void *data)
{
    segment_t *segment = data;

    apr_global_mutex_destroy(segment->mutex);
    return apr_shm_destroy(segment->shm);
}

/* A fresh segment for capacity records, attached; NULL when none could be
 * made. The segment goes with pool. */
static okey_ledger_t *shm_ledger(apr_pool_t *pool, apr_uint32_t capacity)
{
    segment_t *segment = apr_pcalloc(pool, sizeof(*segment));
    apr_size_t size = okey_ledger_shm_size(capacity);
    okey_ledger_t *ledger = NULL;

    if (apr_shm_create(&segment->shm, size, NULL, pool) == APR_SUCCESS &&
        apr_global_mutex_create(&segment->mutex, NULL, APR_LOCK_DEFAULT, pool) == APR_SUCCESS) {
        apr_pool_cleanup_register(pool, segment, drop_segment, apr_pool_cleanup_null);
        okey_ledger_shm_init(apr_shm_baseaddr_get(segment->shm), capacity,
                             okey_ledger_shm_layout(pool));
        okey_ledger_shm_attach(pool, apr_shm_baseaddr_get(segment->shm), size,
                               &segment->mutex, NULL, &ledger);
    }
    return ledger;
}

static okey_ledger_t *make_shm(apr_pool_t *pool, void *arg)
{
    (void)arg;
    return shm_ledger(pool, CAPACITY);
}

static okey_owned_key_t key_of(apr_pool_t *pool, const char *email, int n, apr_int64_t now)
{
    okey_owned_key_t key;
    const char *name = NULL;

    okey_keys_new_name(pool, now + 3600, email, &name);
    key.service_account_id = apr_psprintf(pool, "svc_%s_%d", email, n);
    key.name = name;
    key.project_id = "proj_a";
    key.created_at = now - 1000 + n;
    key.expires = now + 3600;
    return key;
}

/* A listing of n people's keys, one each: p0@example.com, p1@... */
static apr_array_header_t *one_key_each(int n, apr_time_t now)
{
    apr_array_header_t *live = apr_array_make(test_pool, n, sizeof(okey_owned_key_t));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(live, okey_owned_key_t) =
            key_of(test_pool, apr_psprintf(test_pool, "p%d@example.com", i), i,
                   apr_time_sec(now));
    }
    return live;
}

START_TEST(a_fill_larger_than_the_room_leaves_the_ledger_unable_to_answer)
{
    okey_ledger_t *ledger = shm_ledger(test_pool, 100);
    apr_time_t now = apr_time_now();
    apr_array_header_t *live = one_key_each(120, now);
    apr_array_header_t *view = NULL;
    int complete = 1;

    ck_assert(okey_ledger_fill(ledger, test_pool, live, now));
    ck_assert(okey_ledger_keys_of(ledger, test_pool, "p1@example.com", NULL, &view, &complete));
    ck_assert_int_eq(complete, 0);
    live->nelts = 100;
    okey_ledger_fill(ledger, test_pool, live, now + 1);
    okey_ledger_keys_of(ledger, test_pool, "p1@example.com", NULL, &view, &complete);
    ck_assert_int_eq(complete, 1);
    ck_assert_int_eq(view->nelts, 1);
}
END_TEST

START_TEST(a_record_without_room_says_the_view_is_incomplete)
{
    okey_ledger_t *ledger = shm_ledger(test_pool, 100);
    apr_array_header_t *empty = apr_array_make(test_pool, 1, sizeof(okey_owned_key_t));
    apr_array_header_t *view = NULL;
    apr_time_t now = apr_time_now();
    int complete = 0;
    int i;

    okey_ledger_fill(ledger, test_pool, empty, now);
    for (i = 0; i < 100; i++) {
        okey_owned_key_t key = key_of(test_pool, "full@example.com", i, apr_time_sec(now));

        okey_ledger_record(ledger, test_pool, "full@example.com", &key, now, &view, &complete);
        ck_assert_int_eq(complete, 1);
    }
    {
        okey_owned_key_t key = key_of(test_pool, "full@example.com", 100, apr_time_sec(now));

        okey_ledger_record(ledger, test_pool, "full@example.com", &key, now, &view, &complete);
        ck_assert_int_eq(complete, 0);
        ck_assert_int_eq(view->nelts, 100);
    }
}
END_TEST

START_TEST(a_ledger_as_full_as_its_size_still_records_sign_ins)
{
    /* OpenAIKeyLedgerSize 100, and a project of 100 live keys: the
     * sign-ins until the next reap are recorded, and answer complete. */
    okey_ledger_t *ledger = shm_ledger(test_pool, okey_ledger_shm_capacity(100));
    apr_array_header_t *view = NULL;
    apr_time_t now = apr_time_now();
    int complete = 0;
    int i;

    okey_ledger_fill(ledger, test_pool, one_key_each(100, now), now);
    for (i = 0; i < 12; i++) {
        okey_owned_key_t key = key_of(test_pool, "p1@example.com", 100 + i, apr_time_sec(now));

        okey_ledger_record(ledger, test_pool, "p1@example.com", &key, now, &view, &complete);
        ck_assert_int_eq(complete, 1);
        ck_assert_int_eq(view->nelts, 2 + i);
    }
    ck_assert_int_eq(okey_ledger_shm_capacity(100), 112);
    ck_assert_int_eq(okey_ledger_shm_capacity(10000000), 11250000);
}
END_TEST

START_TEST(a_segment_of_another_layout_is_refused)
{
    apr_size_t size = okey_ledger_shm_size(100);
    void *base = apr_pcalloc(test_pool, size);
    apr_global_mutex_t *mutex = NULL;
    okey_ledger_t *ledger = NULL;

    okey_ledger_shm_init(base, 100, "okey-ledger-shm-0000000000000000");
    ck_assert_int_ne(okey_ledger_shm_attach(test_pool, base, size, &mutex, NULL, &ledger),
                     APR_SUCCESS);
    ck_assert_ptr_null(ledger);
    okey_ledger_shm_init(base, 100, okey_ledger_shm_layout(test_pool));
    ck_assert_int_ne(okey_ledger_shm_attach(test_pool, base, size - 8, &mutex, NULL, &ledger),
                     APR_SUCCESS);
    ck_assert_str_eq(okey_ledger_shm_layout(test_pool), okey_ledger_shm_layout(test_pool));
}
END_TEST

START_TEST(memory_grows_with_the_room_and_stays_within_bounds)
{
    apr_size_t small = okey_ledger_shm_size(okey_ledger_shm_capacity(1000));
    apr_size_t large = okey_ledger_shm_size(okey_ledger_shm_capacity(100000));

    ck_assert(large > small);
    ck_assert_msg(large <= 32u * 1024 * 1024, "100 000 records take %lu bytes",
                  (unsigned long)large);
}
END_TEST

#define RACERS 4
#define MARKS_EACH 200

/* Children of one server mark the same states at once: each is first
 * exactly once, whoever marks it. */
START_TEST(processes_racing_to_mark_see_each_state_first_once)
{
    okey_ledger_t *ledger = shm_ledger(test_pool, 100);
    apr_time_t now = apr_time_now();
    int firsts = 0;
    int i, n;

    for (i = 0; i < RACERS; i++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int mine = 0;

            for (n = 0; n < MARKS_EACH; n++) {
                int first = 0;

                okey_ledger_mark_once(ledger, apr_psprintf(test_pool, "state %d", n), now,
                                      now + apr_time_from_sec(600), &first);
                mine += first;
            }
            _exit(mine > 255 ? 255 : mine);
        }
    }
    for (i = 0; i < RACERS; i++) {
        int status = 0;

        wait(&status);
        ck_assert(WIFEXITED(status));
        firsts += WEXITSTATUS(status);
    }
    ck_assert_int_eq(firsts, MARKS_EACH);
}
END_TEST

/* Children of one server claim the reap at once: one wins. */
START_TEST(processes_racing_to_claim_the_reap_let_one_win)
{
    okey_ledger_t *ledger = shm_ledger(test_pool, 100);
    apr_time_t now = apr_time_now();
    int wins = 0;
    int i;

    for (i = 0; i < RACERS; i++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            okey_ledger_lease_t lease;
            int claimed = 0;

            okey_ledger_lease_claim(ledger, now, 3600, apr_time_from_sec(30), 0, &lease,
                                    &claimed);
            _exit(claimed);
        }
    }
    for (i = 0; i < RACERS; i++) {
        int status = 0;

        wait(&status);
        wins += WIFEXITED(status) ? WEXITSTATUS(status) : 100;
    }
    ck_assert_int_eq(wins, 1);
}
END_TEST

/* Each of several processes records keys of one person: every view holds
 * each key recorded before it, across processes. */
START_TEST(processes_recording_one_person_see_every_earlier_key)
{
    okey_ledger_t *ledger = shm_ledger(test_pool, 1000);
    apr_array_header_t *empty = apr_array_make(test_pool, 1, sizeof(okey_owned_key_t));
    apr_time_t now = apr_time_now();
    apr_array_header_t *view = NULL;
    int complete = 0;
    int i, n;

    okey_ledger_fill(ledger, test_pool, empty, now);
    for (i = 0; i < RACERS; i++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int grew = 1;
            int before = 0;

            for (n = 0; n < 50 && grew; n++) {
                okey_owned_key_t key = key_of(test_pool, "racer@example.com", i * 100 + n,
                                              apr_time_sec(now));

                okey_ledger_record(ledger, test_pool, "racer@example.com", &key, now, &view,
                                   &complete);
                grew = complete && view->nelts > before;
                before = view->nelts;
            }
            _exit(grew ? 0 : 1);
        }
    }
    for (i = 0; i < RACERS; i++) {
        int status = 0;

        wait(&status);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    okey_ledger_keys_of(ledger, test_pool, "racer@example.com", "proj_a", &view, &complete);
    ck_assert_int_eq(view->nelts, RACERS * 50);
}
END_TEST

Suite *okey_ledger_shm_suite(void)
{
    Suite *suite = suite_create("ledger_shm");
    TCase *room = test_case("room");
    TCase *processes = test_case("processes");

    tcase_add_test(room, a_fill_larger_than_the_room_leaves_the_ledger_unable_to_answer);
    tcase_add_test(room, a_record_without_room_says_the_view_is_incomplete);
    tcase_add_test(room, a_ledger_as_full_as_its_size_still_records_sign_ins);
    tcase_add_test(room, a_segment_of_another_layout_is_refused);
    tcase_add_test(room, memory_grows_with_the_room_and_stays_within_bounds);
    suite_add_tcase(suite, room);
    tcase_add_test(processes, processes_racing_to_mark_see_each_state_first_once);
    tcase_add_test(processes, processes_racing_to_claim_the_reap_let_one_win);
    tcase_add_test(processes, processes_recording_one_person_see_every_earlier_key);
    suite_add_tcase(suite, processes);
    okey_ledger_conformance_add(suite, "shm", make_shm, NULL);
    return suite;
}
