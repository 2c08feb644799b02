/* The Redis ledger against Debian's redis-server, started per test: what
 * it stores and how, the round trips a sign-in costs, and what it does
 * when Redis fails, stalls, or holds what it did not write. */
#include "testutil.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "name.h"
#include "ledger.h"
#include "ledger_conformance.h"
#include "ledger_redis.h"
#include "redis_fixture.h"

#define PREFIX "okt:"
#define NOW apr_time_from_sec(1800000000)
#define PROJECT "proj_abc"

static const unsigned char MAC_KEY[32] = "0123456789abcdef0123456789abcde";

static test_redis_t server;

static apr_status_t stop_server(void *data)
{
    test_redis_stop(data);
    return APR_SUCCESS;
}

/* Starts a server for this test, stopped with test_pool. */
static void start(int unix_socket, const char *password)
{
    memset(&server, 0, sizeof(server));
    server.unix_socket = unix_socket;
    server.password = password;
    ck_assert_msg(test_redis_start(&server), "redis-server did not start");
    apr_pool_cleanup_register(test_pool, &server, stop_server, apr_pool_cleanup_null);
}

static okey_ledger_t *make(const char *url, const char *password, apr_interval_time_t timeout)
{
    okey_ledger_t *ledger = NULL;
    const char *why = NULL;

    ck_assert_int_eq(okey_ledger_redis_create(test_pool, url, password, PREFIX, MAC_KEY,
                                              timeout, &ledger, &why), APR_SUCCESS);
    return ledger;
}

static okey_ledger_t *started(void)
{
    start(0, NULL);
    return make(server.url, NULL, apr_time_from_sec(2));
}

static okey_owned_key_t key_of(const char *email, const char *id, const char *project,
                               apr_int64_t created, apr_int64_t expires)
{
    okey_owned_key_t key;

    key.service_account_id = id;
    ck_assert_ptr_eq(okey_keys_new_name(test_pool, expires, email, &key.name), NULL);
    key.project_id = project;
    key.created_at = created;
    key.expires = expires;
    return key;
}

static const char *person_key(const char *email)
{
    unsigned char person[16];
    char hexed[33];
    int i;

    okey_ledger_person(email, person);
    for (i = 0; i < 16; i++) {
        snprintf(hexed + 2 * i, 3, "%02x", person[i]);
    }
    return apr_pstrcat(test_pool, PREFIX "u:", hexed, NULL);
}

static const char *redis_do(const char *a, const char *b, const char *c, const char *d)
{
    const char *argv[] = {a, b, c, d, NULL};
    char out[512] = "";

    ck_assert(test_redis_command(&server, out, sizeof(out), argv));
    return apr_pstrdup(test_pool, out);
}

static int has_id(const apr_array_header_t *keys, const char *id)
{
    int i;

    for (i = 0; i < keys->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(keys, i, okey_owned_key_t).service_account_id, id)) {
            return 1;
        }
    }
    return 0;
}

static apr_array_header_t *keys_of(okey_ledger_t *ledger, const char *email, int *complete)
{
    apr_array_header_t *keys = NULL;

    ck_assert(okey_ledger_keys_of(ledger, test_pool, email, NULL, &keys, complete));
    return keys;
}

static void record(okey_ledger_t *ledger, const char *email, const okey_owned_key_t *key)
{
    apr_array_header_t *keys = NULL;
    int complete = -1;

    ck_assert(okey_ledger_record(ledger, test_pool, email, key, NOW, &keys, &complete));
    ck_assert(has_id(keys, key->service_account_id));
}

/* --- URLs and passwords ---------------------------------------------------------------- */

START_TEST(url_forms)
{
    okey_redis_url_t url;
    const char *why = NULL;

    ck_assert(okey_redis_url_parse(test_pool, "redis://127.0.0.1", &url, &why));
    ck_assert_str_eq(url.host, "127.0.0.1");
    ck_assert_int_eq(url.port, 6379);
    ck_assert_int_eq(url.db, 0);
    ck_assert_ptr_eq(url.password, NULL);
    ck_assert(okey_redis_url_parse(test_pool, "redis://:s%40cret@redis.example:6390/3",
                                   &url, &why));
    ck_assert_str_eq(url.password, "s@cret");
    ck_assert_str_eq(url.host, "redis.example");
    ck_assert_int_eq(url.port, 6390);
    ck_assert_int_eq(url.db, 3);
    ck_assert_ptr_eq(url.user, NULL);
    ck_assert(okey_redis_url_parse(test_pool, "redis://okey:pw@10.0.0.1", &url, &why));
    ck_assert_str_eq(url.user, "okey");
    ck_assert_str_eq(url.password, "pw");
    ck_assert(okey_redis_url_parse(test_pool, "redis://[::1]:6391/", &url, &why));
    ck_assert_str_eq(url.host, "::1");
    ck_assert_int_eq(url.port, 6391);
    ck_assert(okey_redis_url_parse(test_pool, "redis+unix:///run/redis/redis.sock?db=2",
                                   &url, &why));
    ck_assert_str_eq(url.path, "/run/redis/redis.sock");
    ck_assert_ptr_eq(url.host, NULL);
    ck_assert_int_eq(url.db, 2);
}
END_TEST

START_TEST(url_refused_without_the_password)
{
    static const char *const bad[] = {
        "http://127.0.0.1", "redis://", "redis://:hunter2@", "redis://:hunter2@h:0",
        "redis://:hunter2@h:70000", "redis://:hunter2@h:12x", "redis://:hunter2@h/x",
        "redis://hunter2@h", "redis://us%zz:hunter2@h", "redis://:@h", "redis://:hunter2@h o", "redis://[::1", "redis://[h]:1",
        "redis+unix://relative.sock", "redis+unix:///s.sock?database=1",
        "redis+unix:///s.sock?db=-1", "redis://:hunter2%zz@h", "redis://h:1:2",
    };
    okey_redis_url_t url;
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        okey_ledger_t *ledger = NULL;
        const char *why = NULL;

        ck_assert_msg(!okey_redis_url_parse(test_pool, bad[i], &url, &why), "%s", bad[i]);
        ck_assert_ptr_ne(why, NULL);
        ck_assert_msg(!strstr(why, "hunter2"), "%s: %s", bad[i], why);
        ck_assert_int_eq(okey_ledger_redis_create(test_pool, bad[i], NULL, PREFIX, MAC_KEY,
                                                  0, &ledger, &why), APR_EINVAL);
        ck_assert_ptr_eq(ledger, NULL);
    }
}
END_TEST


/* --- what it stores --------------------------------------------------------------------- */

START_TEST(records_answer_once_filled)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t a = key_of("Ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    okey_owned_key_t b = key_of("bob@example.org", "sa_2", PROJECT, 100, 1900000000);
    apr_array_header_t *live = apr_array_make(test_pool, 2, sizeof(okey_owned_key_t));
    apr_array_header_t *keys;
    apr_int64_t records = -1;
    int complete = -1;

    record(ledger, "ann@example.org", &a);
    keys = keys_of(ledger, "ANN@example.org", &complete);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_int_eq(complete, 0);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).name,
                     okey_lower(test_pool, a.name));
    APR_ARRAY_PUSH(live, okey_owned_key_t) = b;
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW - apr_time_from_sec(10)));
    /* Recorded since the listing began: kept. */
    ck_assert(has_id(keys_of(ledger, "ann@example.org", &complete), "sa_1"));
    ck_assert_int_eq(complete, 1);
    ck_assert(has_id(keys_of(ledger, "bob@example.org", &complete), "sa_2"));
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 2);
    /* A later fill without it, begun after it was recorded, sweeps it. */
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW + apr_time_from_sec(10)));
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 0);
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 1);
    /* No address and no name in the clear. */
    ck_assert_ptr_eq(strstr(redis_do("HGET", person_key("bob@example.org"), "sa_2", NULL),
                            "bob"), NULL);
}
END_TEST

START_TEST(forgotten_keys_stay_forgotten)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t a = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    apr_array_header_t *live = apr_array_make(test_pool, 1, sizeof(okey_owned_key_t));
    apr_int64_t records = -1;
    int complete;

    record(ledger, "ann@example.org", &a);
    /* Another project's forget leaves it. */
    ck_assert(okey_ledger_forget(ledger, "ann@example.org", "proj_other", "sa_1", NOW));
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 1);
    ck_assert(okey_ledger_forget(ledger, "ann@example.org", PROJECT, "sa_1", NOW + 5));
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 0);
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 0);
    /* A listing that began before the deletion does not bring it back. */
    APR_ARRAY_PUSH(live, okey_owned_key_t) = a;
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW - apr_time_from_sec(1)));
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 0);
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW + apr_time_from_sec(1)));
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 1);
}
END_TEST

START_TEST(record_gives_the_live_keys_of_the_project)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t old = key_of("ann@example.org", "sa_old", PROJECT, 50,
                                  apr_time_sec(NOW) - 1);
    okey_owned_key_t other = key_of("ann@example.org", "sa_other", "proj_x", 60, 1900000000);
    okey_owned_key_t k1 = key_of("ann@example.org", "sa_b", PROJECT, 200, 1900000000);
    okey_owned_key_t k2 = key_of("ann@example.org", "sa_a", PROJECT, 100, 1900000000);
    apr_array_header_t *keys = NULL;
    int complete = -1;

    /* Expired already: recorded, not in the view. */
    ck_assert(okey_ledger_record(ledger, test_pool, "ann@example.org", &old, NOW, &keys,
                                 &complete));
    ck_assert_int_eq(keys->nelts, 0);
    record(ledger, "ann@example.org", &other);
    record(ledger, "ann@example.org", &k1);
    ck_assert(okey_ledger_record(ledger, test_pool, "ann@example.org", &k2, NOW, &keys,
                                 &complete));
    /* In the order recorded, whatever their creation says. */
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_b");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 1, okey_owned_key_t).service_account_id, "sa_a");
    ck_assert_int_eq(complete, 0);
    /* keys_of gives the expired one too, and every project. */
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 4);
}
END_TEST

START_TEST(projects_locks_marks_and_rates)
{
    okey_ledger_t *ledger = started();
    okey_ledger_t *other = make(server.url, NULL, apr_time_from_sec(2));
    const char *id = NULL;
    int taken = -1, first = -1, allowed = -1;
    apr_int64_t retry = -1;

    ck_assert(okey_ledger_project_get(ledger, test_pool, "team", &id));
    ck_assert_ptr_eq(id, NULL);
    ck_assert(okey_ledger_project_set(ledger, "team", "proj_1", NULL));
    ck_assert(okey_ledger_project_get(other, test_pool, "team", &id));
    ck_assert_str_eq(id, "proj_1");
    ck_assert(okey_ledger_project_set(ledger, "team", NULL, "proj_0"));
    ck_assert(okey_ledger_project_get(ledger, test_pool, "team", &id));
    ck_assert_str_eq(id, "proj_1");
    ck_assert(okey_ledger_project_set(ledger, "team", NULL, "proj_1"));
    ck_assert(okey_ledger_project_get(ledger, test_pool, "team", &id));
    ck_assert_ptr_eq(id, NULL);

    ck_assert(okey_ledger_project_lock(ledger, "team", 0, apr_time_from_sec(30), &taken));
    ck_assert_int_eq(taken, 1);
    ck_assert(okey_ledger_project_lock(other, "team", apr_time_from_msec(100),
                                       apr_time_from_sec(30), &taken));
    ck_assert_int_eq(taken, 0);
    /* Only its holder gives it back. */
    ck_assert(okey_ledger_project_unlock(other, "team"));
    ck_assert(okey_ledger_project_lock(other, "team", 0, apr_time_from_sec(30), &taken));
    ck_assert_int_eq(taken, 0);
    ck_assert(okey_ledger_project_unlock(ledger, "team"));
    ck_assert(okey_ledger_project_lock(other, "team", 0, apr_time_from_sec(30), &taken));
    ck_assert_int_eq(taken, 1);

    ck_assert(okey_ledger_mark_once(ledger, "state-1", NOW, NOW + apr_time_from_sec(600),
                                    &first));
    ck_assert_int_eq(first, 1);
    ck_assert(okey_ledger_mark_once(other, "state-1", NOW + 1, NOW + apr_time_from_sec(600),
                                    &first));
    ck_assert_int_eq(first, 0);
    ck_assert(okey_ledger_mark_once(other, "state-1", NOW + apr_time_from_sec(601),
                                    NOW + apr_time_from_sec(1200), &first));
    ck_assert_int_eq(first, 1);

    ck_assert(okey_ledger_may_list(ledger, "ann@example.org", NOW, apr_time_from_sec(60),
                                   &allowed, &retry));
    ck_assert_int_eq(allowed, 1);
    ck_assert(okey_ledger_may_list(other, "ANN@example.org", NOW + apr_time_from_sec(20),
                                   apr_time_from_sec(60), &allowed, &retry));
    ck_assert_int_eq(allowed, 0);
    ck_assert_int_eq(retry, 40);
    ck_assert(okey_ledger_may_list(other, "ann@example.org", NOW + apr_time_from_sec(60),
                                   apr_time_from_sec(60), &allowed, &retry));
    ck_assert_int_eq(allowed, 1);
}
END_TEST

START_TEST(the_lease_and_suspects)
{
    okey_ledger_t *ledger = started();
    okey_ledger_t *other = make(server.url, NULL, apr_time_from_sec(2));
    apr_interval_time_t length = apr_time_from_sec(30);
    okey_ledger_lease_t lease, theirs;
    apr_hash_t *names = NULL;
    apr_int64_t seconds = -1;
    int claimed = -1, held = -1;

    ck_assert(okey_ledger_lease_claim(ledger, NOW, 300, length, 0, &lease, &claimed));
    ck_assert_int_eq(claimed, 1);
    ck_assert(okey_ledger_lease_claim(other, NOW, 300, length, 1, &theirs, &claimed));
    ck_assert_int_eq(claimed, 0);
    ck_assert(okey_ledger_lease_renew(ledger, &lease, NOW + apr_time_from_sec(20), length,
                                      &held));
    ck_assert_int_eq(held, 1);
    ck_assert(okey_ledger_lease_due_in(other, NOW + apr_time_from_sec(20), 300, &seconds,
                                       &held));
    ck_assert_int_eq(held, 1);
    ck_assert_int_eq(seconds, 280);
    ck_assert(okey_ledger_lease_release(other, &theirs));
    ck_assert(okey_ledger_lease_release(ledger, &lease));
    /* Free, but not due for another interval. */
    ck_assert(okey_ledger_lease_claim(other, NOW + apr_time_from_sec(21), 300, length, 0,
                                      &theirs, &claimed));
    ck_assert_int_eq(claimed, 0);
    ck_assert(okey_ledger_reap_request(ledger));
    ck_assert(okey_ledger_lease_due_in(other, NOW + apr_time_from_sec(21), 300, &seconds,
                                       &held));
    ck_assert_int_eq(seconds, 0);
    ck_assert(okey_ledger_lease_claim(other, NOW + apr_time_from_sec(21), 300, length, 0,
                                      &theirs, &claimed));
    ck_assert_int_eq(claimed, 1);
    ck_assert_str_ne(theirs.token, lease.token);
    /* A holder that died: its lease lapses. */
    ck_assert(okey_ledger_lease_renew(ledger, &lease, NOW + apr_time_from_sec(22), length,
                                      &held));
    ck_assert_int_eq(held, 0);

    ck_assert(okey_ledger_suspect_add(ledger, "okey-1900000000-ann@example.org",
                                      apr_time_sec(NOW) + 100));
    ck_assert(okey_ledger_suspects_due(other, test_pool, apr_time_sec(NOW), &names));
    ck_assert_ptr_eq(names, NULL);
    ck_assert(okey_ledger_lease_due_in(other, NOW + apr_time_from_sec(60), 300, &seconds,
                                       &held));
    ck_assert_int_eq(seconds, 40);
    ck_assert(okey_ledger_suspects_due(other, test_pool, apr_time_sec(NOW) + 100, &names));
    ck_assert_ptr_ne(names, NULL);
    ck_assert_int_eq(apr_hash_count(names), 1);
    ck_assert_ptr_ne(apr_hash_get(names, "okey-1900000000-ann@example.org",
                                  APR_HASH_KEY_STRING), NULL);
    /* Sealed: no address in the clear. */
    ck_assert_ptr_eq(strstr(redis_do("HVALS", PREFIX "suspect-names", NULL, NULL), "ann"),
                     NULL);
    ck_assert_str_ne(redis_do("HVALS", PREFIX "suspect-names", NULL, NULL), "");
    ck_assert(okey_ledger_suspects_drop(ledger, names));
    ck_assert(okey_ledger_suspects_due(other, test_pool, apr_time_sec(NOW) + 100, &names));
    ck_assert_ptr_eq(names, NULL);
}
END_TEST

/* --- how it is reached ----------------------------------------------------------------- */

START_TEST(round_trips_of_a_sign_in)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    const char *id = NULL;
    apr_array_header_t *keys = NULL;
    apr_uint64_t before;
    int first, complete;

    /* Once connected and the scripts known, as in the steady state. */
    ck_assert(okey_ledger_mark_once(ledger, "warm", NOW, NOW + 1000000, &first));
    ck_assert(okey_ledger_record(ledger, test_pool, "x@example.org", &key, NOW, &keys,
                                 &complete));
    ck_assert(okey_ledger_forget(ledger, "x@example.org", PROJECT, "sa_1", NOW));
    before = okey_ledger_redis_round_trips(ledger);
    ck_assert(okey_ledger_mark_once(ledger, "state", NOW, NOW + 1000000, &first));
    ck_assert(okey_ledger_project_get(ledger, test_pool, PROJECT, &id));
    ck_assert(okey_ledger_record(ledger, test_pool, "ann@example.org", &key, NOW, &keys,
                                 &complete));
    ck_assert(okey_ledger_forget(ledger, "ann@example.org", PROJECT, "sa_0", NOW));
    ck_assert_int_eq(okey_ledger_redis_round_trips(ledger) - before, 4);
    before = okey_ledger_redis_round_trips(ledger);
    ck_assert(okey_ledger_keys_of(ledger, test_pool, "ann@example.org", NULL, &keys,
                                  &complete));
    ck_assert_int_eq(okey_ledger_redis_round_trips(ledger) - before, 1);
}
END_TEST

/* Round trips of one call since before. */
#define TRIPS(call) (before = okey_ledger_redis_round_trips(ledger), ck_assert(call), \
                     okey_ledger_redis_round_trips(ledger) - before)

START_TEST(every_call_but_a_fill_is_one_round_trip)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    apr_interval_time_t length = apr_time_from_sec(30);
    apr_array_header_t *keys = NULL;
    apr_hash_t *names = NULL;
    okey_ledger_lease_t lease;
    apr_uint64_t before;
    apr_int64_t n;
    const char *id;
    int i, flag, other = 0;

    /* The connection made: the scripts are loaded with it. */
    ck_assert_uint_eq(TRIPS(okey_ledger_count(ledger, &n)), 2);
    for (i = 0; i < 2; i++) {
        ck_assert_uint_eq(TRIPS(okey_ledger_project_get(ledger, test_pool, "p", &id)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_project_set(ledger, "p", "proj_1", NULL)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_project_set(ledger, "p", NULL, "proj_1")), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_project_lock(ledger, "p", 0, length, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_project_unlock(ledger, "p")), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_lease_claim(ledger, NOW, 300, length, 1, &lease,
                                                        &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_lease_renew(ledger, &lease, NOW, length, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_lease_due_in(ledger, NOW, 300, &n, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_lease_release(ledger, &lease)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_reap_request(ledger)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_suspect_add(ledger, "okey-1-a@example.org", 1)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_suspects_due(ledger, test_pool, 2, &names)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_suspects_drop(ledger, names)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_record(ledger, test_pool, "ann@example.org", &key,
                                                   NOW, &keys, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_keys_of(ledger, test_pool, "ann@example.org", NULL,
                                                    &keys, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_forget(ledger, "ann@example.org", PROJECT, "sa_1",
                                                   NOW)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_count(ledger, &n)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_mark_once(ledger, apr_itoa(test_pool, i), NOW,
                                                      NOW + length, &flag)), 1);
        ck_assert_uint_eq(TRIPS(okey_ledger_may_list(ledger, "ann@example.org", NOW, length,
                                                     &flag, &n)), 1);
        other = i;
    }
    ck_assert_int_eq(other, 1);
}
END_TEST

START_TEST(scripts_flushed_are_sent_again)
{
    okey_ledger_t *ledger = started();
    apr_uint64_t before;
    apr_int64_t retry;
    int allowed;

    ck_assert(okey_ledger_may_list(ledger, "ann@example.org", NOW, 1000, &allowed, &retry));
    ck_assert_str_eq(redis_do("SCRIPT", "FLUSH", NULL, NULL), "OK");
    /* Refused by EVALSHA, then run by EVAL. */
    ck_assert_uint_eq(TRIPS(okey_ledger_may_list(ledger, "bob@example.org", NOW, 1000,
                                                 &allowed, &retry)), 2);
    ck_assert_int_eq(allowed, 1);
}
END_TEST

START_TEST(password_and_database)
{
    okey_ledger_t *ledger, *wrong, *in_db;
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    const char *id = NULL;
    int complete;

    start(0, "s3cret pass");
    ledger = make(apr_pstrcat(test_pool, "redis://:wrong@127.0.0.1:",
                              apr_itoa(test_pool, server.port), "/0", NULL),
                  "s3cret pass", apr_time_from_sec(2));
    wrong = make(server.url, "wrong", apr_time_from_sec(2));
    in_db = make(apr_pstrcat(test_pool, "redis://:s3cret%20pass@127.0.0.1:",
                             apr_itoa(test_pool, server.port), "/5", NULL),
                 NULL, apr_time_from_sec(2));
    record(ledger, "ann@example.org", &key);
    ck_assert_int_eq(keys_of(in_db, "ann@example.org", &complete)->nelts, 0);
    record(in_db, "ann@example.org", &key);
    /* The backend itself: the wrong password fails. */
    ck_assert_int_ne(wrong->ops->project_get(wrong->baton, test_pool, PROJECT, &id),
                     APR_SUCCESS);
}
END_TEST

START_TEST(an_acl_user)
{
    const char *setuser[] = {"ACL", "SETUSER", "okey", "on", ">user pass", "~*", "&*",
                             "+@all", NULL};
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    okey_ledger_t *ledger, *wrong, *other = NULL;
    apr_int64_t records = -1;
    const char *why = NULL;
    char out[64] = "";

    start(0, NULL);
    ck_assert(test_redis_command(&server, out, sizeof(out), setuser));
    ck_assert_str_eq(out, "OK");
    ledger = make(apr_psprintf(test_pool, "redis://okey:user%%20pass@127.0.0.1:%d", server.port),
                  NULL, apr_time_from_sec(2));
    wrong = make(apr_psprintf(test_pool, "redis://okey:@127.0.0.1:%d", server.port),
                 "other", apr_time_from_sec(2));
    ck_assert_int_eq(okey_ledger_redis_create(test_pool, "redis://okey:@127.0.0.1", NULL,
                                              PREFIX, MAC_KEY, 0, &other, &why), APR_EINVAL);
    ck_assert_ptr_ne(strstr(why, "password"), NULL);
    /* The password from OpenAIKeyLedgerPassword, the user from the URL. */
    other = make(apr_psprintf(test_pool, "redis://okey:@127.0.0.1:%d", server.port),
                 "user pass", apr_time_from_sec(2));
    ck_assert(okey_ledger_count(other, &records));
    record(ledger, "ann@example.org", &key);
    ck_assert_int_ne(wrong->ops->count(wrong->baton, &records), APR_SUCCESS);
}
END_TEST

START_TEST(unix_socket)
{
    okey_ledger_t *ledger;
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    int complete;

    start(1, NULL);
    ledger = make(apr_pstrcat(test_pool, server.url, "?db=1", NULL), NULL,
                  apr_time_from_sec(2));
    record(ledger, "ann@example.org", &key);
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 1);
}
END_TEST

START_TEST(connections_are_not_carried_across_fork)
{
    okey_ledger_t *ledger = started();
    apr_int64_t records = -1;
    int status = -1, turn;
    pid_t child;

    ck_assert(okey_ledger_count(ledger, &records));
    child = fork();
    if (child == 0) {
        apr_int64_t n = -1;
        int ok = 1;

        for (turn = 0; turn < 200 && ok; turn++) {
            ok = okey_ledger_count(ledger, &n) && n == 0;
        }
        _exit(ok ? 0 : 1);
    }
    /* Were the socket shared, the replies of both would cross. */
    for (turn = 0; turn < 200; turn++) {
        ck_assert(okey_ledger_mark_once(ledger, "parent", NOW, NOW + 1000000, &status));
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(okey_ledger_count(ledger, &records));
}
END_TEST

/* --- faults ---------------------------------------------------------------------------- */

START_TEST(redis_killed_then_back)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t key = key_of("ann@example.org", "sa_1", PROJECT, 100, 1900000000);
    apr_int64_t records = -1;
    apr_uint64_t before;
    int turns = 0, answered = 0, first = 0;

    record(ledger, "ann@example.org", &key);
    test_redis_kill(&server);
    ck_assert(!okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 0);
    /* Within the backoff: no attempt at all. */
    before = okey_ledger_redis_round_trips(ledger);
    ck_assert(!okey_ledger_count(ledger, &records));
    ck_assert(!okey_ledger_mark_once(ledger, "s", NOW, NOW + 1000000, &first));
    ck_assert_int_eq(okey_ledger_redis_round_trips(ledger), before);
    ck_assert(test_redis_restart(&server));
    /* Back after the backoff (a second at first): bounded by 20 s. */
    while (!answered && turns++ < 400) {
        answered = okey_ledger_count(ledger, &records);
        if (!answered) {
            apr_sleep(apr_time_from_msec(50));
        }
    }
    ck_assert(answered);
    /* Restarted empty: nothing recorded, not filled. */
    ck_assert_int_eq(records, 0);
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &answered)->nelts, 0);
    ck_assert_int_eq(answered, 0);
}
END_TEST

START_TEST(a_silent_server_times_out)
{
    okey_ledger_t *ledger;
    apr_int64_t records = -1;
    apr_uint64_t before;
    int port = 0;
    int fd = test_redis_silent(&port);

    ck_assert_int_ge(fd, 0);
    ledger = make(apr_psprintf(test_pool, "redis://127.0.0.1:%d", port), NULL,
                  apr_time_from_msec(200));
    /* The test's own timeout is what would catch a wait without end. */
    ck_assert(!okey_ledger_count(ledger, &records));
    /* Then, within the backoff, no new attempt: the next call fails at once. */
    before = okey_ledger_redis_round_trips(ledger);
    ck_assert(!okey_ledger_count(ledger, &records));
    ck_assert_uint_eq(okey_ledger_redis_round_trips(ledger), before);
    close(fd);
}
END_TEST

START_TEST(records_it_did_not_write_are_ignored)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t a = key_of("ann@example.org", "sa_a", PROJECT, 100, 1900000000);
    okey_owned_key_t b = key_of("bob@example.org", "sa_b", PROJECT, 100, 1900000000);
    apr_array_header_t *live = apr_array_make(test_pool, 2, sizeof(okey_owned_key_t));
    apr_array_header_t *keys = NULL;
    const char *ann = person_key("ann@example.org");
    const char *bob = person_key("bob@example.org");
    char *text, *forged;
    int complete;

    record(ledger, "ann@example.org", &a);
    record(ledger, "bob@example.org", &b);
    text = apr_pstrdup(test_pool, redis_do("HGET", ann, "sa_a", NULL));
    /* Garbage, a record altered (expiry pushed out), and one copied from
     * another person, under ids of their own. */
    redis_do("HSET", ann, "sa_garbage", "v1|no|such|thing");
    forged = apr_pstrdup(test_pool, text);
    forged[strlen(forged) - 44 - 1] = forged[strlen(forged) - 44 - 1] == '9' ? '8' : '9';
    redis_do("HSET", ann, "sa_forged", forged);
    redis_do("HSET", bob, "sa_a", text);
    keys = keys_of(ledger, "ann@example.org", &complete);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert(has_id(keys, "sa_a"));
    keys = keys_of(ledger, "bob@example.org", &complete);
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert(!has_id(keys, "sa_a"));
    ck_assert(okey_ledger_record(ledger, test_pool, "ann@example.org", &a, NOW, &keys,
                                 &complete));
    ck_assert_int_eq(keys->nelts, 1);
    /* The next fill removes them, and keeps what verifies. */
    APR_ARRAY_PUSH(live, okey_owned_key_t) = a;
    APR_ARRAY_PUSH(live, okey_owned_key_t) = b;
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW + apr_time_from_sec(1)));
    ck_assert_str_eq(redis_do("HLEN", ann, NULL, NULL), "1");
    ck_assert_str_eq(redis_do("HLEN", bob, NULL, NULL), "1");
    ck_assert(has_id(keys_of(ledger, "ann@example.org", &complete), "sa_a"));
    ck_assert(has_id(keys_of(ledger, "bob@example.org", &complete), "sa_b"));
}
END_TEST

START_TEST(project_ids_and_records_it_did_not_sign_are_ignored)
{
    okey_ledger_t *ledger = started();
    okey_ledger_t *elsewhere = NULL;
    okey_owned_key_t a = key_of("ann@example.org", "sa_a", PROJECT, 100, 1900000000);
    const char *why = NULL, *id = NULL;
    const char *text;
    int complete;

    ck_assert(okey_ledger_project_set(ledger, "team", "proj_1", NULL));
    text = redis_do("HGET", PREFIX "projects", "team", NULL);
    /* Another project's id, or another id under this one's MAC. */
    redis_do("HSET", PREFIX "projects", "other", text);
    redis_do("HSET", PREFIX "projects", "team",
             apr_pstrcat(test_pool, "v1|proj_evil", strrchr(text, '|'), NULL));
    ck_assert(okey_ledger_project_get(ledger, test_pool, "team", &id));
    ck_assert_ptr_eq(id, NULL);
    ck_assert(okey_ledger_project_get(ledger, test_pool, "other", &id));
    ck_assert_ptr_eq(id, NULL);
    /* Another deployment's records: the prefix is signed too. */
    ck_assert_int_eq(okey_ledger_redis_create(test_pool, server.url, NULL, "other:", MAC_KEY,
                                              apr_time_from_sec(2), &elsewhere, &why),
                     APR_SUCCESS);
    record(elsewhere, "ann@example.org", &a);
    text = redis_do("HGET", apr_pstrcat(test_pool, "other:", person_key("ann@example.org") +
                                        strlen(PREFIX), NULL), "sa_a", NULL);
    redis_do("HSET", person_key("ann@example.org"), "sa_a", text);
    ck_assert_int_eq(keys_of(ledger, "ann@example.org", &complete)->nelts, 0);
}
END_TEST

START_TEST(a_forged_record_cannot_hide_a_listed_key)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t a = key_of("ann@example.org", "sa_a", PROJECT, 100, 1900000000);
    apr_array_header_t *live = apr_array_make(test_pool, 1, sizeof(okey_owned_key_t));
    const char *ann = person_key("ann@example.org");
    int complete;

    /* Claims to be recorded after any listing, so a fill would keep it. */
    redis_do("HSET", ann, "sa_a", "v1|9999999999999999|" PROJECT "|x|1|1|1|"
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    APR_ARRAY_PUSH(live, okey_owned_key_t) = a;
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW));
    ck_assert(has_id(keys_of(ledger, "ann@example.org", &complete), "sa_a"));
    ck_assert_int_eq(complete, 1);
}
END_TEST

START_TEST(a_record_forged_far_ahead_does_not_rank_later_records)
{
    okey_ledger_t *ledger = started();
    okey_owned_key_t a = key_of("ann@example.org", "sa_a", PROJECT, 100, 1900000000);
    apr_array_header_t *keys = NULL;
    const char *ann = person_key("ann@example.org");
    int complete;

    /* A day ahead, and past what a Lua number holds exactly: neither
     * pushes her next record's rank, nor stops it being written. */
    redis_do("HSET", ann, "sa_ahead", apr_psprintf(test_pool, "v1|%" APR_INT64_T_FMT "|"
             PROJECT "|x|1|1|1|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             NOW + apr_time_from_sec(86400)));
    redis_do("HSET", ann, "sa_huge", "v1|99999999999999999999|" PROJECT "|x|1|1|1|"
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    ck_assert(okey_ledger_record(ledger, test_pool, "ann@example.org", &a, NOW, &keys,
                                 &complete));
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_int_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).rank, NOW);
}
END_TEST

START_TEST(fill_of_a_hundred_thousand)
{
    okey_ledger_t *ledger = started();
    apr_array_header_t *live = apr_array_make(test_pool, 100000, sizeof(okey_owned_key_t));
    apr_array_header_t *keys = NULL;
    apr_uint64_t before;
    apr_int64_t records = -1;
    int i, complete;

    for (i = 0; i < 100000; i++) {
        okey_owned_key_t *key = apr_array_push(live);

        key->service_account_id = apr_psprintf(test_pool, "sa_%d", i);
        key->name = apr_psprintf(test_pool, OKEY_KEYS_NAME_PREFIX "1900000000-p%d@example.org",
                                 i / 2);
        key->project_id = PROJECT;
        key->created_at = 1000 + i;
        key->expires = 1900000000;
    }
    before = okey_ledger_redis_round_trips(ledger);
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW));
    /* Batches of writes, then a SCAN and a read per thousand persons or so. */
    ck_assert_uint_le(okey_ledger_redis_round_trips(ledger) - before, 200 + 2 * 100 + 10);
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 100000);
    ck_assert(okey_ledger_keys_of(ledger, test_pool, "p4242@example.org", PROJECT, &keys,
                                  &complete));
    ck_assert_int_eq(keys->nelts, 2);
    ck_assert_int_eq(complete, 1);
    /* Half of them gone from the next listing. */
    live->nelts = 50000;
    ck_assert(okey_ledger_fill(ledger, test_pool, live, NOW + 1));
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 50000);
    ck_assert(okey_ledger_keys_of(ledger, test_pool, "p42424@example.org", PROJECT, &keys,
                                  &complete));
    ck_assert_int_eq(keys->nelts, 0);
}
END_TEST

/* --- the contract ---------------------------------------------------------------------- */

/* --- what outlives a stop ---------------------------------------------------------------- */

static const char *store_get(okey_ledger_t *ledger, okey_store_e kind, const char *name)
{
    const char *text = "unset";

    ck_assert(okey_ledger_store_get(ledger, test_pool, kind, name, &text));
    return text;
}

START_TEST(store_texts_it_did_not_write_read_as_absent)
{
    okey_ledger_t *ledger = started();
    apr_hash_t *entries = NULL;
    char *forged;
    const char *sealed;

    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "ann|team"));
    sealed = apr_pstrdup(test_pool, redis_do("HGET", PREFIX "store:keys", "key_a", NULL));
    ck_assert_int_eq(strlen(sealed), strlen("ann|team") + 44);
    /* The text with no MAC; altered under its MAC; its MAC under another
     * name; under the same name in the other kind; garbage. */
    redis_do("HSET", PREFIX "store:keys", "key_plain", "ann|team");
    forged = apr_pstrdup(test_pool, sealed);
    forged[0] = 'b';
    redis_do("HSET", PREFIX "store:keys", "key_forged", forged);
    redis_do("HSET", PREFIX "store:keys", "key_b", sealed);
    redis_do("HSET", PREFIX "store:spend", "key_a", sealed);
    redis_do("HSET", PREFIX "store:keys", "key_short", "|");
    redis_do("HSET", PREFIX "store:keys", "../key", sealed);
    ck_assert_str_eq(store_get(ledger, OKEY_STORE_KEYS, "key_a"), "ann|team");
    ck_assert_ptr_null(store_get(ledger, OKEY_STORE_KEYS, "key_plain"));
    ck_assert_ptr_null(store_get(ledger, OKEY_STORE_KEYS, "key_forged"));
    ck_assert_ptr_null(store_get(ledger, OKEY_STORE_KEYS, "key_b"));
    ck_assert_ptr_null(store_get(ledger, OKEY_STORE_SPEND, "key_a"));
    ck_assert_ptr_null(store_get(ledger, OKEY_STORE_KEYS, "key_short"));
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_KEYS, &entries));
    ck_assert_int_eq(apr_hash_count(entries), 1);
    ck_assert_str_eq(apr_hash_get(entries, "key_a", APR_HASH_KEY_STRING), "ann|team");
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &entries));
    ck_assert_int_eq(apr_hash_count(entries), 0);
}
END_TEST

START_TEST(store_texts_outlive_the_client_and_a_replace_leaves_nothing_aside)
{
    okey_ledger_t *ledger = started();
    okey_ledger_t *another;
    apr_hash_t *entries = apr_hash_make(test_pool);
    apr_hash_t *seen = NULL;

    apr_hash_set(entries, "index", APR_HASH_KEY_STRING, "people");
    apr_hash_set(entries, "0a0b", APR_HASH_KEY_STRING, "spent");
    ck_assert(okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, entries));
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "ann"));
    /* Only the kinds' hashes, and for good. */
    ck_assert_str_eq(redis_do("EXISTS", PREFIX "store:keys", PREFIX "store:spend", NULL), "2");
    ck_assert_str_eq(redis_do("KEYS", PREFIX "store:*:new:*", NULL, NULL), "");
    ck_assert_str_eq(redis_do("TTL", PREFIX "store:spend", NULL, NULL), "-1");
    /* Another client, as another server of the fleet or this one after a
     * restart, with the same key. */
    another = make(server.url, NULL, apr_time_from_sec(2));
    ck_assert_str_eq(store_get(another, OKEY_STORE_KEYS, "key_a"), "ann");
    ck_assert(okey_ledger_store_all(another, test_pool, OKEY_STORE_SPEND, &seen));
    ck_assert_int_eq(apr_hash_count(seen), 2);
    ck_assert_str_eq(apr_hash_get(seen, "0a0b", APR_HASH_KEY_STRING), "spent");
    ck_assert(okey_ledger_store_replace(another, OKEY_STORE_SPEND, apr_hash_make(test_pool)));
    ck_assert_str_eq(redis_do("EXISTS", PREFIX "store:spend", NULL, NULL), "0");
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &seen));
    ck_assert_int_eq(apr_hash_count(seen), 0);
}
END_TEST

/* How the suite's server listens. */
typedef struct {
    int unix_socket;
    const char *password;
} variant_t;

static const variant_t over_tcp = {0, NULL};
static const variant_t over_unix_with_password = {1, "conform pass"};

/* A ledger on a server of the test's own (arg: its variant_t), stopped
 * with pool. */
static okey_ledger_t *make_redis(apr_pool_t *pool, void *arg)
{
    const variant_t *variant = arg;
    test_redis_t *redis = apr_pcalloc(pool, sizeof(*redis));
    okey_ledger_t *ledger = NULL;
    const char *why = NULL;

    redis->unix_socket = variant->unix_socket;
    redis->password = variant->password;
    if (!test_redis_start(redis)) {
        test_redis_stop(redis);
        return NULL;
    }
    apr_pool_cleanup_register(pool, redis, stop_server, apr_pool_cleanup_null);
    return okey_ledger_redis_create(pool, redis->url, variant->password, PREFIX, MAC_KEY,
                                    apr_time_from_sec(5), &ledger, &why) == APR_SUCCESS
           ? ledger : NULL;
}

Suite *okey_ledger_redis_suite(void)
{
    Suite *suite = suite_create("ledger_redis");
    TCase *tc = test_case("ledger_redis");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, url_forms);
    tcase_add_test(tc, url_refused_without_the_password);
    tcase_add_test(tc, records_answer_once_filled);
    tcase_add_test(tc, forgotten_keys_stay_forgotten);
    tcase_add_test(tc, record_gives_the_live_keys_of_the_project);
    tcase_add_test(tc, projects_locks_marks_and_rates);
    tcase_add_test(tc, the_lease_and_suspects);
    tcase_add_test(tc, round_trips_of_a_sign_in);
    tcase_add_test(tc, every_call_but_a_fill_is_one_round_trip);
    tcase_add_test(tc, scripts_flushed_are_sent_again);
    tcase_add_test(tc, password_and_database);
    tcase_add_test(tc, an_acl_user);
    tcase_add_test(tc, unix_socket);
    tcase_add_test(tc, connections_are_not_carried_across_fork);
    tcase_add_test(tc, redis_killed_then_back);
    tcase_add_test(tc, a_silent_server_times_out);
    tcase_add_test(tc, records_it_did_not_write_are_ignored);
    tcase_add_test(tc, project_ids_and_records_it_did_not_sign_are_ignored);
    tcase_add_test(tc, a_forged_record_cannot_hide_a_listed_key);
    tcase_add_test(tc, a_record_forged_far_ahead_does_not_rank_later_records);
    tcase_add_test(tc, fill_of_a_hundred_thousand);
    tcase_add_test(tc, store_texts_it_did_not_write_read_as_absent);
    tcase_add_test(tc, store_texts_outlive_the_client_and_a_replace_leaves_nothing_aside);
    suite_add_tcase(suite, tc);
    okey_ledger_conformance_add(suite, "redis", make_redis, (void *)&over_tcp);
    okey_ledger_conformance_add(suite, "redis_unix_password", make_redis,
                                (void *)&over_unix_with_password);
    return suite;
}
