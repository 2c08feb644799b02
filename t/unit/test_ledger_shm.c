/* The shared-memory ledger: the conformance suite, then what only it has:
 * a fixed room, a layout it checks, and children of one server racing
 * across processes. */
#include "testutil.h"

#include <apr_file_io.h>
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

/* Removes the tree at path: the state directories of one test. */
static apr_status_t remove_tree(void *data)
{
    const char *path = data;
    pid_t pid = fork();
    int status = 0;

    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) {
        waitpid(pid, &status, 0);
    }
    return APR_SUCCESS;
}

/* A fresh, empty directory, removed with pool. */
static const char *temp_dir(apr_pool_t *pool)
{
    const char *tmp = NULL;
    char *dir;

    ck_assert_int_eq(apr_temp_dir_get(&tmp, pool), APR_SUCCESS);
    dir = apr_pstrcat(pool, tmp, "/okey-state-XXXXXX", NULL);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    apr_pool_cleanup_register(pool, dir, remove_tree, apr_pool_cleanup_null);
    return dir;
}

/* A fresh segment for capacity records, attached with state_dir; NULL when
 * none could be made. The segment goes with pool. */
static okey_ledger_t *shm_ledger_in(apr_pool_t *pool, apr_uint32_t capacity,
                                    const char *state_dir)
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
                               &segment->mutex, state_dir, NULL, &ledger);
    }
    return ledger;
}

static okey_ledger_t *shm_ledger(apr_pool_t *pool, apr_uint32_t capacity)
{
    return shm_ledger_in(pool, capacity, temp_dir(pool));
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
    ck_assert_int_ne(okey_ledger_shm_attach(test_pool, base, size, &mutex, NULL, NULL,
                                            &ledger), APR_SUCCESS);
    ck_assert_ptr_null(ledger);
    okey_ledger_shm_init(base, 100, okey_ledger_shm_layout(test_pool));
    ck_assert_int_ne(okey_ledger_shm_attach(test_pool, base, size - 8, &mutex, NULL, NULL,
                                            &ledger), APR_SUCCESS);
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

/* --- what outlives a stop ------------------------------------------------------------ */

/* The names in dir, but . and .., sorted and joined by spaces. */
static const char *listing_of(const char *dir)
{
    apr_array_header_t *names = apr_array_make(test_pool, 8, sizeof(const char *));
    apr_dir_t *each = NULL;
    apr_finfo_t info;
    int i, j;

    ck_assert_int_eq(apr_dir_open(&each, dir, test_pool), APR_SUCCESS);
    while (apr_dir_read(&info, APR_FINFO_NAME, each) == APR_SUCCESS) {
        if (strcmp(info.name, ".") && strcmp(info.name, "..")) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(test_pool, info.name);
        }
    }
    apr_dir_close(each);
    for (i = 1; i < names->nelts; i++) {
        for (j = i; j > 0 && strcmp(APR_ARRAY_IDX(names, j - 1, const char *),
                                    APR_ARRAY_IDX(names, j, const char *)) > 0; j--) {
            const char *swap = APR_ARRAY_IDX(names, j, const char *);

            APR_ARRAY_IDX(names, j, const char *) = APR_ARRAY_IDX(names, j - 1, const char *);
            APR_ARRAY_IDX(names, j - 1, const char *) = swap;
        }
    }
    return apr_array_pstrcat(test_pool, names, ' ');
}

/* Where kind's link points, in dir. */
static const char *generation_in(const char *dir, const char *kind)
{
    char target[256];
    ssize_t len = readlink(apr_pstrcat(test_pool, dir, "/", kind, NULL), target,
                           sizeof(target) - 1);

    ck_assert_int_gt(len, 0);
    target[len] = '\0';
    return apr_pstrdup(test_pool, target);
}

static apr_fileperms_t perms_of(const char *path)
{
    apr_finfo_t info;

    ck_assert_int_eq(apr_stat(&info, path, APR_FINFO_PROT, test_pool), APR_SUCCESS);
    return info.protection;
}

START_TEST(a_ledger_attached_again_reads_what_the_first_stored)
{
    const char *dir = temp_dir(test_pool);
    okey_ledger_t *first = shm_ledger_in(test_pool, 100, dir);
    okey_ledger_t *again;
    apr_hash_t *entries = apr_hash_make(test_pool);
    apr_hash_t *seen = NULL;
    const char *text = NULL;

    apr_hash_set(entries, "index", APR_HASH_KEY_STRING, "people");
    apr_hash_set(entries, "0a0b", APR_HASH_KEY_STRING, "spent");
    ck_assert(okey_ledger_store_replace(first, OKEY_STORE_SPEND, entries));
    ck_assert(okey_ledger_store_put(first, OKEY_STORE_KEYS, "key_a", "alice"));
    /* A new segment, as after a stop, over the same directory. */
    again = shm_ledger_in(test_pool, 100, dir);
    ck_assert(okey_ledger_store_get(again, test_pool, OKEY_STORE_KEYS, "key_a", &text));
    ck_assert_str_eq(text, "alice");
    ck_assert(okey_ledger_store_all(again, test_pool, OKEY_STORE_SPEND, &seen));
    ck_assert_int_eq(apr_hash_count(seen), 2);
    ck_assert_str_eq(apr_hash_get(seen, "0a0b", APR_HASH_KEY_STRING), "spent");
}
END_TEST

START_TEST(a_replace_leaves_one_generation_and_no_file_aside)
{
    const char *dir = temp_dir(test_pool);
    okey_ledger_t *ledger = shm_ledger_in(test_pool, 100, dir);
    apr_hash_t *entries = apr_hash_make(test_pool);
    const char *generation;
    int i;

    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_old", "o"));
    apr_hash_set(entries, "key_a", APR_HASH_KEY_STRING, "a");
    apr_hash_set(entries, "key_b", APR_HASH_KEY_STRING, "b");
    for (i = 0; i < 3; i++) {
        ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_KEYS, entries));
    }
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_c", "c"));
    generation = generation_in(dir, "keys");
    ck_assert_str_eq(listing_of(dir), apr_pstrcat(test_pool, "keys ", generation, NULL));
    ck_assert_str_eq(listing_of(apr_pstrcat(test_pool, dir, "/", generation, NULL)),
                     "key_a key_b key_c");
    /* The server's User alone reads what people spent. */
    ck_assert_int_eq(perms_of(apr_pstrcat(test_pool, dir, "/", generation, NULL)),
                     APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE);
    ck_assert_int_eq(perms_of(apr_pstrcat(test_pool, dir, "/", generation, "/key_c", NULL)),
                     APR_FPROT_UREAD | APR_FPROT_UWRITE);
    ck_assert_int_eq(perms_of(apr_pstrcat(test_pool, dir, "/", generation, "/key_a", NULL)),
                     APR_FPROT_UREAD | APR_FPROT_UWRITE);
}
END_TEST

START_TEST(files_not_the_stores_own_are_not_read)
{
    const char *dir = temp_dir(test_pool);
    okey_ledger_t *ledger = shm_ledger_in(test_pool, 100, dir);
    apr_hash_t *entries = NULL;
    const char *generation;
    const char *text = "unset";
    apr_file_t *file = NULL;

    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "index", "i"));
    generation = apr_pstrcat(test_pool, dir, "/", generation_in(dir, "spend"), NULL);
    /* A put under way, and a text with a NUL in it. */
    ck_assert_int_eq(apr_file_open(&file, apr_pstrcat(test_pool, generation, "/.put-1-x",
                                                      NULL),
                                   APR_FOPEN_WRITE | APR_FOPEN_CREATE, APR_FPROT_OS_DEFAULT,
                                   test_pool), APR_SUCCESS);
    apr_file_close(file);
    ck_assert_int_eq(apr_file_open(&file, apr_pstrcat(test_pool, generation, "/nul", NULL),
                                   APR_FOPEN_WRITE | APR_FOPEN_CREATE, APR_FPROT_OS_DEFAULT,
                                   test_pool), APR_SUCCESS);
    ck_assert_int_eq(apr_file_write_full(file, "a\0b", 3, NULL), APR_SUCCESS);
    apr_file_close(file);
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &entries));
    ck_assert_int_eq(apr_hash_count(entries), 1);
    ck_assert(okey_ledger_store_get(ledger, test_pool, OKEY_STORE_SPEND, "nul", &text));
    ck_assert_ptr_null(text);
}
END_TEST

START_TEST(without_a_state_directory_the_store_is_the_fallbacks)
{
    okey_ledger_t *ledger = shm_ledger_in(test_pool, 100, NULL);
    okey_ledger_t *fallback = NULL;
    apr_hash_t *entries = NULL;
    const char *text = "unset";

    ledger->health = apr_pcalloc(test_pool, sizeof(*ledger->health));
    ck_assert_int_eq(ledger->ops->store_put(ledger->baton, OKEY_STORE_KEYS, "key_a", "a"),
                     APR_ENOTIMPL);
    ck_assert_int_eq(ledger->ops->store_all(ledger->baton, test_pool, OKEY_STORE_KEYS,
                                            &entries), APR_ENOTIMPL);
    ck_assert(!okey_ledger_store_get(ledger, test_pool, OKEY_STORE_KEYS, "key_a", &text));
    ck_assert_ptr_null(text);
    ck_assert_int_eq(okey_ledger_memory_create(test_pool, &fallback), APR_SUCCESS);
    ledger->fallback = fallback;
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "a"));
    ck_assert(okey_ledger_store_get(ledger, test_pool, OKEY_STORE_KEYS, "key_a", &text));
    ck_assert_str_eq(text, "a");
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_KEYS, &entries));
    ck_assert_int_eq(apr_hash_count(entries), 1);
    ck_assert_int_eq(ledger->health->errors, 4);
    /* The rest of the ledger is there all the same. */
    ck_assert(okey_ledger_reap_request(ledger));
}
END_TEST

/* Children of one server put and replace at once: each put a child made
 * after the replaces ended is there, in the one generation left. */
START_TEST(processes_putting_beside_a_replace_lose_nothing_after_it)
{
    const char *dir = temp_dir(test_pool);
    okey_ledger_t *ledger = shm_ledger_in(test_pool, 100, dir);
    apr_hash_t *entries = NULL;
    int i, n;

    for (i = 0; i < RACERS; i++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            int ok = 1;

            for (n = 0; n < 40 && ok; n++) {
                apr_hash_t *set = apr_hash_make(test_pool);

                apr_hash_set(set, apr_psprintf(test_pool, "r%d", i), APR_HASH_KEY_STRING,
                             "r");
                ok = i == 0 ? okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, set)
                            : okey_ledger_store_put(ledger, OKEY_STORE_SPEND,
                                                    apr_psprintf(test_pool, "p%d_%d", i, n),
                                                    "p");
            }
            _exit(ok ? 0 : 1);
        }
    }
    for (i = 0; i < RACERS; i++) {
        int status = 0;

        wait(&status);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "last", "l"));
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &entries));
    ck_assert_ptr_nonnull(apr_hash_get(entries, "r0", APR_HASH_KEY_STRING));
    ck_assert_ptr_nonnull(apr_hash_get(entries, "last", APR_HASH_KEY_STRING));
    ck_assert_str_eq(listing_of(dir),
                     apr_pstrcat(test_pool, "spend ", generation_in(dir, "spend"), NULL));
}
END_TEST

Suite *okey_ledger_shm_suite(void)
{
    Suite *suite = suite_create("ledger_shm");
    TCase *room = test_case("room");
    TCase *processes = test_case("processes");
    TCase *files = test_case("state directory");

    tcase_add_test(room, a_fill_larger_than_the_room_leaves_the_ledger_unable_to_answer);
    tcase_add_test(room, a_record_without_room_says_the_view_is_incomplete);
    tcase_add_test(room, a_ledger_as_full_as_its_size_still_records_sign_ins);
    tcase_add_test(room, a_segment_of_another_layout_is_refused);
    tcase_add_test(room, memory_grows_with_the_room_and_stays_within_bounds);
    suite_add_tcase(suite, room);
    tcase_add_test(processes, processes_racing_to_mark_see_each_state_first_once);
    tcase_add_test(processes, processes_racing_to_claim_the_reap_let_one_win);
    tcase_add_test(processes, processes_recording_one_person_see_every_earlier_key);
    tcase_add_test(processes, processes_putting_beside_a_replace_lose_nothing_after_it);
    suite_add_tcase(suite, processes);
    tcase_add_test(files, a_ledger_attached_again_reads_what_the_first_stored);
    tcase_add_test(files, a_replace_leaves_one_generation_and_no_file_aside);
    tcase_add_test(files, files_not_the_stores_own_are_not_read);
    tcase_add_test(files, without_a_state_directory_the_store_is_the_fallbacks);
    suite_add_tcase(suite, files);
    okey_ledger_conformance_add(suite, "shm", make_shm, NULL);
    return suite;
}
