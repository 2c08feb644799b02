/* The ledger's calls: the fallback, the health they keep, the defaults when
 * no ledger answers; the helpers the backends share; and the memory backend
 * held to the conformance suite. */
#include "testutil.h"

#include <apr_strings.h>
#include <string.h>

#include "keys.h"
#include "ledger.h"
#include "ledger_conformance.h"

#define SEC(n) apr_time_from_sec(n)
#define EMAIL "alice@example.com"

/* --- a backend that never answers, and writes nonsense into what it was
 * given, as a broken one may ------------------------------------------------------ */

static apr_status_t down_project_get(void *baton, apr_pool_t *pool, const char *project,
                                     const char **id)
{
    (void)baton; (void)pool; (void)project;
    *id = "proj_junk";
    return APR_ECONNREFUSED;
}

static apr_status_t down_project_set(void *baton, const char *project, const char *id,
                                     const char *stale)
{
    (void)baton; (void)project; (void)id; (void)stale;
    return APR_ECONNREFUSED;
}

static apr_status_t down_project_lock(void *baton, const char *project,
                                      apr_interval_time_t wait, apr_interval_time_t length,
                                      int *taken)
{
    (void)baton; (void)project; (void)wait; (void)length;
    *taken = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_project_unlock(void *baton, const char *project)
{
    (void)baton; (void)project;
    return APR_ECONNREFUSED;
}

static apr_status_t down_lease_claim(void *baton, apr_time_t now, apr_int64_t interval,
                                     apr_interval_time_t length, int force,
                                     okey_ledger_lease_t *lease, int *claimed)
{
    (void)baton; (void)now; (void)interval; (void)length; (void)force; (void)lease;
    *claimed = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_lease_renew(void *baton, okey_ledger_lease_t *lease, apr_time_t now,
                                     apr_interval_time_t length, int *held)
{
    (void)baton; (void)lease; (void)now; (void)length;
    *held = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_lease_release(void *baton, const okey_ledger_lease_t *lease)
{
    (void)baton; (void)lease;
    return APR_ECONNREFUSED;
}

static apr_status_t down_lease_due_in(void *baton, apr_time_t now, apr_int64_t interval,
                                      apr_int64_t *seconds, int *held)
{
    (void)baton; (void)now; (void)interval;
    *seconds = 0;
    *held = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_reap_request(void *baton)
{
    (void)baton;
    return APR_ECONNREFUSED;
}

static apr_status_t down_suspect_add(void *baton, const char *name, apr_int64_t due)
{
    (void)baton; (void)name; (void)due;
    return APR_ECONNREFUSED;
}

static apr_status_t down_suspects_due(void *baton, apr_pool_t *pool, apr_int64_t now,
                                      apr_hash_t **names)
{
    (void)baton; (void)now;
    *names = apr_hash_make(pool);
    return APR_ECONNREFUSED;
}

static apr_status_t down_suspects_drop(void *baton, apr_hash_t *names)
{
    (void)baton; (void)names;
    return APR_ECONNREFUSED;
}

static apr_status_t down_fill(void *baton, apr_pool_t *pool, const apr_array_header_t *live,
                              apr_time_t started)
{
    (void)baton; (void)pool; (void)live; (void)started;
    return APR_ECONNREFUSED;
}

static apr_array_header_t *junk_keys(apr_pool_t *pool)
{
    apr_array_header_t *keys = apr_array_make(pool, 1, sizeof(okey_owned_key_t));
    okey_owned_key_t *key = apr_array_push(keys);

    memset(key, 0, sizeof(*key));
    key->service_account_id = "sa_junk";
    return keys;
}

static apr_status_t down_record(void *baton, apr_pool_t *pool, const char *email,
                                const okey_owned_key_t *key, apr_time_t now,
                                apr_array_header_t **keys, int *complete)
{
    (void)baton; (void)email; (void)key; (void)now;
    *keys = junk_keys(pool);
    *complete = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_forget(void *baton, const char *email, const char *project_id,
                                const char *service_account_id, apr_time_t now)
{
    (void)baton; (void)email; (void)project_id; (void)service_account_id; (void)now;
    return APR_ECONNREFUSED;
}

static apr_status_t down_keys_of(void *baton, apr_pool_t *pool, const char *email,
                                 const char *project_id, apr_array_header_t **keys,
                                 int *complete)
{
    (void)baton; (void)email; (void)project_id;
    *keys = junk_keys(pool);
    *complete = 1;
    return APR_ECONNREFUSED;
}

static apr_status_t down_count(void *baton, apr_int64_t *records)
{
    (void)baton;
    *records = 99;
    return APR_ECONNREFUSED;
}

static apr_status_t down_mark_once(void *baton, const char *what, apr_time_t now,
                                   apr_time_t expires, int *first)
{
    (void)baton; (void)what; (void)now; (void)expires;
    *first = 0;
    return APR_ECONNREFUSED;
}

static apr_status_t down_may_list(void *baton, const char *email, apr_time_t now,
                                  apr_interval_time_t every, int *allowed,
                                  apr_int64_t *retry_after)
{
    (void)baton; (void)email; (void)now; (void)every;
    *allowed = 0;
    *retry_after = 99;
    return APR_ECONNREFUSED;
}

static apr_status_t down_store_put(void *baton, okey_store_e kind, const char *name,
                                   const char *text)
{
    (void)baton; (void)kind; (void)name; (void)text;
    return APR_ECONNREFUSED;
}

static apr_status_t down_store_get(void *baton, apr_pool_t *pool, okey_store_e kind,
                                   const char *name, const char **text)
{
    (void)baton; (void)pool; (void)kind; (void)name;
    *text = "junk";
    return APR_ECONNREFUSED;
}

static apr_status_t down_store_all(void *baton, apr_pool_t *pool, okey_store_e kind,
                                   apr_hash_t **entries)
{
    (void)kind; (void)baton;
    *entries = apr_hash_make(pool);
    apr_hash_set(*entries, "junk", APR_HASH_KEY_STRING, "junk");
    return APR_ECONNREFUSED;
}

static apr_status_t down_store_drop(void *baton, okey_store_e kind, apr_hash_t *names)
{
    (void)baton; (void)kind; (void)names;
    return APR_ECONNREFUSED;
}

static apr_status_t down_store_replace(void *baton, okey_store_e kind, apr_hash_t *entries)
{
    (void)baton; (void)kind; (void)entries;
    return APR_ECONNREFUSED;
}

static const okey_ledger_ops_t down_ops = {
    "down",
    down_project_get, down_project_set, down_project_lock, down_project_unlock,
    down_lease_claim, down_lease_renew, down_lease_release, down_lease_due_in,
    down_reap_request,
    down_suspect_add, down_suspects_due, down_suspects_drop,
    down_fill, down_record, down_forget, down_keys_of, down_count,
    down_mark_once, down_may_list,
    down_store_put, down_store_get, down_store_all, down_store_drop, down_store_replace
};

/* --- fixtures ------------------------------------------------------------------------- */

static void keep_line(void *baton, const char *file, int line, int level, const char *msg)
{
    apr_array_header_t *lines = baton;

    (void)file; (void)line; (void)level;
    APR_ARRAY_PUSH(lines, const char *) = apr_pstrdup(lines->pool, msg);
}

static okey_ledger_t *down_ledger(apr_array_header_t **lines)
{
    okey_ledger_t *ledger = apr_pcalloc(test_pool, sizeof(*ledger));
    okey_logger_t *logger = apr_pcalloc(test_pool, sizeof(*logger));

    *lines = apr_array_make(test_pool, 4, sizeof(const char *));
    logger->fn = keep_line;
    logger->baton = *lines;
    ledger->ops = &down_ops;
    ledger->health = apr_pcalloc(test_pool, sizeof(*ledger->health));
    ledger->health->up = 1;
    ledger->logger = logger;
    return ledger;
}

static okey_ledger_t *memory_ledger(void)
{
    okey_ledger_t *ledger = NULL;

    ck_assert_int_eq(okey_ledger_memory_create(test_pool, &ledger), APR_SUCCESS);
    ledger->health = apr_pcalloc(test_pool, sizeof(*ledger->health));
    return ledger;
}

static okey_owned_key_t a_key(apr_int64_t now)
{
    okey_owned_key_t key = {"sa_1", NULL, "proj_1", now, now + 3600};

    key.name = okey_keys_name(test_pool, now + 3600, "abcde", EMAIL);
    return key;
}

/* --- calls ------------------------------------------------------------------------------ */

START_TEST(with_no_ledger_answering_every_output_is_safe)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    apr_int64_t now = okey_now();
    okey_owned_key_t key = a_key(now);
    okey_ledger_lease_t lease;
    const char *id = "unset";
    apr_array_header_t *keys = NULL;
    apr_hash_t *names = NULL;
    apr_int64_t number = -1;
    int flag = -1;

    memset(&lease, 0, sizeof(lease));
    ck_assert(!okey_ledger_project_get(ledger, test_pool, "team", &id));
    ck_assert_ptr_null(id);
    ck_assert(!okey_ledger_project_set(ledger, "team", "proj_1", NULL));
    ck_assert(!okey_ledger_project_lock(ledger, "team", 0, SEC(60), &flag));
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_project_unlock(ledger, "team"));
    ck_assert(!okey_ledger_lease_claim(ledger, SEC(now), 600, SEC(30), 1, &lease, &flag));
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_lease_renew(ledger, &lease, SEC(now), SEC(30), &flag));
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_lease_release(ledger, &lease));
    ck_assert(!okey_ledger_lease_due_in(ledger, SEC(now), 600, &number, &flag));
    ck_assert_int_eq(number, 600);
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_reap_request(ledger));
    ck_assert(!okey_ledger_suspect_add(ledger, "okey-1-a@example.com", now));
    ck_assert(!okey_ledger_suspects_due(ledger, test_pool, now, &names));
    ck_assert_ptr_null(names);
    ck_assert(!okey_ledger_suspects_drop(ledger, apr_hash_make(test_pool)));
    ck_assert(!okey_ledger_fill(ledger, test_pool, apr_array_make(test_pool, 1,
                                                                   sizeof(key)), SEC(now)));
    ck_assert(!okey_ledger_record(ledger, test_pool, EMAIL, &key, SEC(now), &keys, &flag));
    ck_assert_int_eq(keys->nelts, 0);
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_forget(ledger, EMAIL, "proj_1", "sa_1", SEC(now)));
    ck_assert(!okey_ledger_keys_of(ledger, test_pool, EMAIL, NULL, &keys, &flag));
    ck_assert_int_eq(keys->nelts, 0);
    ck_assert_int_eq(flag, 0);
    ck_assert(!okey_ledger_count(ledger, &number));
    ck_assert_int_eq(number, 0);
    /* Not known to be marked: the caller's other checks decide. */
    ck_assert(!okey_ledger_mark_once(ledger, "state", SEC(now), SEC(now + 60), &flag));
    ck_assert_int_eq(flag, 1);
    ck_assert(!okey_ledger_may_list(ledger, EMAIL, SEC(now), SEC(60), &flag, &number));
    ck_assert_int_eq(flag, 1);
    ck_assert_int_eq(number, 0);
    ck_assert_int_eq(ledger->health->errors, 19);
    ck_assert_int_eq(ledger->health->up, 0);
}
END_TEST

START_TEST(with_no_ledger_answering_the_store_gives_nothing)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    apr_hash_t *names = apr_hash_make(test_pool);
    apr_hash_t *entries = NULL;
    const char *text = "unset";

    apr_hash_set(names, "a", APR_HASH_KEY_STRING, "");
    ck_assert(!okey_ledger_store_put(ledger, OKEY_STORE_KEYS, "key_a", "t"));
    ck_assert(!okey_ledger_store_get(ledger, test_pool, OKEY_STORE_KEYS, "key_a", &text));
    ck_assert_ptr_null(text);
    ck_assert(!okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &entries));
    ck_assert_ptr_nonnull(entries);
    ck_assert_int_eq(apr_hash_count(entries), 0);
    ck_assert(!okey_ledger_store_drop(ledger, OKEY_STORE_SPEND, names));
    ck_assert(!okey_ledger_store_replace(ledger, OKEY_STORE_SPEND, names));
    /* Nothing to drop is nothing to ask. */
    ck_assert(okey_ledger_store_drop(ledger, OKEY_STORE_SPEND, NULL));
    ck_assert_int_eq(ledger->health->errors, 5);
    ck_assert_int_eq(ledger->health->up, 0);
    ck_assert_int_eq(lines->nelts, 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(lines, 0, const char *), "store_put"));
}
END_TEST

START_TEST(the_fallback_keeps_the_store_when_the_backend_fails)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    okey_ledger_t *fallback = memory_ledger();
    apr_hash_t *entries = NULL;
    const char *text = NULL;

    ledger->fallback = fallback;
    ck_assert(okey_ledger_store_put(ledger, OKEY_STORE_SPEND, "index", "i"));
    ck_assert(okey_ledger_store_get(fallback, test_pool, OKEY_STORE_SPEND, "index", &text));
    ck_assert_str_eq(text, "i");
    ck_assert(okey_ledger_store_all(ledger, test_pool, OKEY_STORE_SPEND, &entries));
    ck_assert_int_eq(apr_hash_count(entries), 1);
    ck_assert_str_eq(apr_hash_get(entries, "index", APR_HASH_KEY_STRING), "i");
    ck_assert_int_eq(ledger->health->errors, 2);
}
END_TEST

START_TEST(store_names_are_file_names_of_a_few_characters)
{
    char name[OKEY_STORE_NAME_MAX + 2];

    ck_assert(okey_store_name_valid("key_abc"));
    ck_assert(okey_store_name_valid("index"));
    ck_assert(okey_store_name_valid("0123abcdef"));
    ck_assert(okey_store_name_valid("a.b-c_D"));
    ck_assert(okey_store_name_valid("a.."));
    ck_assert(!okey_store_name_valid(NULL));
    ck_assert(!okey_store_name_valid(""));
    ck_assert(!okey_store_name_valid("."));
    ck_assert(!okey_store_name_valid(".."));
    ck_assert(!okey_store_name_valid(".index"));
    ck_assert(!okey_store_name_valid("a/b"));
    ck_assert(!okey_store_name_valid("a:b"));
    ck_assert(!okey_store_name_valid("a\nb"));
    ck_assert(!okey_store_name_valid("\xe9"));
    memset(name, 'x', sizeof(name) - 1);
    name[OKEY_STORE_NAME_MAX + 1] = '\0';
    ck_assert(!okey_store_name_valid(name));
    name[OKEY_STORE_NAME_MAX] = '\0';
    ck_assert(okey_store_name_valid(name));
}
END_TEST

START_TEST(a_missing_ledger_answers_nothing)
{
    const char *id = "unset";
    int first = 0;

    ck_assert(!okey_ledger_project_get(NULL, test_pool, "team", &id));
    ck_assert_ptr_null(id);
    ck_assert(!okey_ledger_mark_once(NULL, "state", SEC(1), SEC(2), &first));
    ck_assert_int_eq(first, 1);
}
END_TEST

START_TEST(the_fallback_answers_when_the_backend_fails)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    okey_ledger_t *fallback = memory_ledger();
    apr_int64_t now = okey_now();
    okey_owned_key_t key = a_key(now);
    apr_array_header_t *keys = NULL;
    const char *id = NULL;
    int complete = -1, first = -1;

    ledger->fallback = fallback;
    ck_assert(okey_ledger_project_set(ledger, "team", "proj_1", NULL));
    ck_assert(okey_ledger_project_get(fallback, test_pool, "team", &id));
    ck_assert_str_eq(id, "proj_1");
    ck_assert(okey_ledger_record(ledger, test_pool, EMAIL, &key, SEC(now), &keys, &complete));
    ck_assert_int_eq(keys->nelts, 1);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 0, okey_owned_key_t).service_account_id, "sa_1");
    ck_assert(okey_ledger_mark_once(ledger, "state", SEC(now), SEC(now + 60), &first));
    ck_assert_int_eq(first, 1);
    ck_assert(okey_ledger_mark_once(ledger, "state", SEC(now), SEC(now + 60), &first));
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(ledger->health->errors, 4);
    ck_assert_int_eq(ledger->health->up, 0);
    ck_assert_int_eq(fallback->health->errors, 0);
    ck_assert_int_eq(fallback->health->up, 1);
    /* Said once, naming the ledger it went on with. */
    ck_assert_int_eq(lines->nelts, 1);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(lines, 0, const char *), "memory"));
}
END_TEST

START_TEST(a_health_shared_with_the_fallback_stays_down)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    okey_ledger_t *fallback = memory_ledger();
    apr_int64_t records = -1;

    /* As a server keeps one health for its ledger and the one it falls back on. */
    fallback->health = ledger->health;
    ledger->fallback = fallback;
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 0);
    ck_assert_int_eq(ledger->health->up, 0);
    ck_assert_int_eq(ledger->health->errors, 1);
    /* Asked alone, the fallback is up. */
    ck_assert(okey_ledger_count(fallback, &records));
    ck_assert_int_eq(ledger->health->up, 1);
}
END_TEST

START_TEST(failures_are_logged_once_a_minute_without_secrets)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    apr_int64_t now = okey_now();
    okey_owned_key_t key = a_key(now);
    apr_array_header_t *keys;
    const char *line;
    int complete;

    ck_assert(!okey_ledger_record(ledger, test_pool, EMAIL, &key, SEC(now), &keys, &complete));
    ck_assert(!okey_ledger_forget(ledger, EMAIL, "proj_1", "sa_1", SEC(now)));
    ck_assert(!okey_ledger_keys_of(ledger, test_pool, EMAIL, NULL, &keys, &complete));
    ck_assert_int_eq(lines->nelts, 1);
    line = APR_ARRAY_IDX(lines, 0, const char *);
    ck_assert_ptr_nonnull(strstr(line, "OKEY400: "));
    ck_assert_ptr_nonnull(strstr(line, "down"));
    ck_assert_ptr_nonnull(strstr(line, "record"));
    ck_assert_ptr_null(strstr(line, "alice"));
    ck_assert_ptr_null(strstr(line, "sa_1"));
    ck_assert_ptr_null(strstr(line, "proj_1"));
    ck_assert_int_eq(ledger->health->errors, 3);
    /* A minute later, the next failure is said again. */
    ledger->health->last_complaint -= SEC(61);
    ck_assert(!okey_ledger_count(ledger, &now));
    ck_assert_int_eq(lines->nelts, 2);
    ck_assert_ptr_nonnull(strstr(APR_ARRAY_IDX(lines, 1, const char *), "count"));
}
END_TEST

static apr_status_t up_count(void *baton, apr_int64_t *records)
{
    (void)baton;
    *records = 7;
    return APR_SUCCESS;
}

START_TEST(a_backend_that_answers_again_is_up_again)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    okey_ledger_ops_t *ops = apr_pmemdup(test_pool, &down_ops, sizeof(down_ops));
    apr_int64_t records = 0;
    int taken = -1;

    ops->count = up_count;
    ledger->ops = ops;
    ck_assert(!okey_ledger_project_lock(ledger, "team", 0, SEC(1), &taken));
    ck_assert_int_eq(ledger->health->up, 0);
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 7);
    ck_assert_int_eq(ledger->health->up, 1);
    ck_assert_int_eq(ledger->health->errors, 1);
}
END_TEST

START_TEST(fallbacks_tied_in_a_loop_still_end)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    apr_int64_t records = -1;

    ledger->fallback = ledger;
    ck_assert(!okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 0);
    ck_assert_int_le(ledger->health->errors, 4);
}
END_TEST

START_TEST(no_health_kept_is_no_failure)
{
    apr_array_header_t *lines;
    okey_ledger_t *ledger = down_ledger(&lines);
    okey_ledger_t *fallback = memory_ledger();
    apr_int64_t records = -1;

    ledger->health = NULL;
    fallback->health = NULL;
    ledger->fallback = fallback;
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 0);
}
END_TEST

/* --- helpers ----------------------------------------------------------------------------- */

START_TEST(a_person_is_the_hash_of_the_address_in_lower_case)
{
    unsigned char a[16], b[16], c[16], digest[32];
    char *long_address = apr_palloc(test_pool, 600);

    okey_ledger_person(EMAIL, a);
    okey_ledger_person("Alice@EXAMPLE.com", b);
    okey_ledger_person("alice@example.co", c);
    okey_sha256(EMAIL, strlen(EMAIL), digest);
    ck_assert(!memcmp(a, digest, 16));
    ck_assert(!memcmp(a, b, 16));
    ck_assert(memcmp(a, c, 16));
    /* However long. */
    memset(long_address, 'A', 599);
    long_address[599] = '\0';
    okey_ledger_person(long_address, a);
    okey_sha256(okey_lower(test_pool, long_address), 599, digest);
    ck_assert(!memcmp(a, digest, 16));
}
END_TEST

START_TEST(a_name_is_rebuilt_from_what_a_record_holds)
{
    const char *tagged = okey_keys_name(test_pool, 1800000000, "q1w2e", EMAIL);
    const char *tag = okey_keys_name_tag(test_pool, tagged);

    ck_assert_uint_eq(strlen(tag), OKEY_KEYS_TAG_LEN);
    ck_assert_str_eq(okey_ledger_name(test_pool, EMAIL, 1800000000, tag), tagged);
    /* The address as the person typed it: names are in lower case. */
    ck_assert_str_eq(okey_ledger_name(test_pool, "Alice@Example.com", 1800000000, tag),
                     tagged);
    ck_assert_str_eq(okey_ledger_name(test_pool, "Alice@Example.com", 1800000000, ""),
                     "okey-1800000000-alice@example.com");
}
END_TEST

/* --- the memory backend --------------------------------------------------------------- */

static okey_ledger_t *make_memory(apr_pool_t *pool, void *arg)
{
    okey_ledger_t *ledger = NULL;

    (void)arg;
    return okey_ledger_memory_create(pool, &ledger) == APR_SUCCESS ? ledger : NULL;
}

START_TEST(memory_keeps_every_entry_as_its_tables_are_made_again)
{
    okey_ledger_t *ledger = memory_ledger();
    apr_int64_t now = okey_now();
    apr_array_header_t *keys = NULL;
    apr_int64_t records = 0;
    int complete, first, i;

    /* Far more forgotten than kept: its memory is made again, more than once. */
    for (i = 0; i < 600; i++) {
        okey_owned_key_t key = a_key(now + i);

        key.service_account_id = apr_psprintf(test_pool, "sa_%03d", i);
        ck_assert(okey_ledger_record(ledger, test_pool, EMAIL, &key, SEC(now), &keys,
                                     &complete));
        if (i % 10) {
            ck_assert(okey_ledger_forget(ledger, EMAIL, "proj_1", key.service_account_id,
                                         SEC(now)));
        }
    }
    ck_assert(okey_ledger_count(ledger, &records));
    ck_assert_int_eq(records, 60);
    ck_assert(okey_ledger_keys_of(ledger, test_pool, EMAIL, NULL, &keys, &complete));
    ck_assert_int_eq(keys->nelts, 60);
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 59, okey_owned_key_t).service_account_id, "sa_590");
    ck_assert_str_eq(APR_ARRAY_IDX(keys, 59, okey_owned_key_t).name,
                     a_key(now + 590).name);
    /* Marks that expired are dropped, the others kept. */
    for (i = 0; i < 600; i++) {
        ck_assert(okey_ledger_mark_once(ledger, apr_psprintf(test_pool, "m%d", i),
                                        SEC(now + i), SEC(now + i + (i % 2 ? 10000 : 1)),
                                        &first));
        ck_assert_int_eq(first, 1);
    }
    for (i = 1; i < 600; i += 2) {
        ck_assert(okey_ledger_mark_once(ledger, apr_psprintf(test_pool, "m%d", i),
                                        SEC(now + 600), SEC(now + 700), &first));
        ck_assert_int_eq(first, 0);
    }
}
END_TEST

START_TEST(memory_ledgers_draw_tokens_apart)
{
    okey_ledger_t *one = memory_ledger();
    okey_ledger_t *other = memory_ledger();
    okey_ledger_lease_t a, b;
    int claimed = 0;

    /* Both the first claim of their ledger: only the draw tells them apart. */
    ck_assert(okey_ledger_lease_claim(one, SEC(1000), 600, SEC(30), 1, &a, &claimed));
    ck_assert(claimed);
    ck_assert(okey_ledger_lease_claim(other, SEC(1000), 600, SEC(30), 1, &b, &claimed));
    ck_assert(claimed);
    ck_assert_str_ne(a.token, b.token);
}
END_TEST

Suite *okey_ledger_suite(void)
{
    Suite *suite = suite_create("ledger");
    TCase *calls = test_case("calls");
    TCase *helpers = test_case("helpers");
    TCase *memory = test_case("memory");

    tcase_add_test(calls, with_no_ledger_answering_every_output_is_safe);
    tcase_add_test(calls, a_missing_ledger_answers_nothing);
    tcase_add_test(calls, the_fallback_answers_when_the_backend_fails);
    tcase_add_test(calls, with_no_ledger_answering_the_store_gives_nothing);
    tcase_add_test(calls, the_fallback_keeps_the_store_when_the_backend_fails);
    tcase_add_test(calls, store_names_are_file_names_of_a_few_characters);
    tcase_add_test(calls, a_health_shared_with_the_fallback_stays_down);
    tcase_add_test(calls, failures_are_logged_once_a_minute_without_secrets);
    tcase_add_test(calls, a_backend_that_answers_again_is_up_again);
    tcase_add_test(calls, fallbacks_tied_in_a_loop_still_end);
    tcase_add_test(calls, no_health_kept_is_no_failure);
    suite_add_tcase(suite, calls);
    tcase_add_test(helpers, a_person_is_the_hash_of_the_address_in_lower_case);
    tcase_add_test(helpers, a_name_is_rebuilt_from_what_a_record_holds);
    suite_add_tcase(suite, helpers);
    tcase_add_test(memory, memory_keeps_every_entry_as_its_tables_are_made_again);
    tcase_add_test(memory, memory_ledgers_draw_tokens_apart);
    suite_add_tcase(suite, memory);
    okey_ledger_conformance_add(suite, "memory", make_memory, NULL);
    return suite;
}
