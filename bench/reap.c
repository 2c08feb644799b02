/* bench/reap: one reap of 1000 service accounts, 500 of them expired, each
 * upstream request answered after 20 ms by a fake OpenAI Admin API in this
 * process; timed serially (one request in flight) and as the reaper runs
 * it, in the same run. Prints both and their ratio. Then a reap of 10 000
 * accounts, 5 000 expired, against its floor: the paging-bound time of 100
 * sequential pages plus 5 000 deletes at the bounded parallelism. Each
 * reap's peak resident memory above where it started (sampled at every
 * upstream request and every audit line) is printed too: ten times the
 * accounts should not take ten times the memory. */
#include <apr_allocator.h>
#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <apr_time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reap_run.h"

#define ACCOUNTS_MAX 10000
#define LATENCY apr_time_from_msec(20)

typedef struct {
    char id[32];
    char name[96];
    int deleted;
} account_t;

/* The memory in use now, and the most seen since the last reset. */
static apr_thread_mutex_t *memory_mutex;
static size_t memory_peak;

static size_t memory_sample(void)
{
    FILE *statm = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, resident = 0;
    size_t in_use;

    /* Resident memory: APR's allocator maps its blocks itself, so malloc's
     * own counts do not see pools. */
    if (!statm || fscanf(statm, "%lu %lu", &pages, &resident) != 2) {
        resident = 0;
    }
    if (statm) {
        fclose(statm);
    }
    in_use = (size_t)resident * 4096;

    apr_thread_mutex_lock(memory_mutex);
    memory_peak = in_use > memory_peak ? in_use : memory_peak;
    apr_thread_mutex_unlock(memory_mutex);
    return in_use;
}

static void sample_on_log(void *baton, const char *file, int line, int level,
                          const char *message)
{
    (void)baton, (void)file, (void)line, (void)level, (void)message;
    memory_sample();
}

typedef struct {
    apr_pool_t *pool;
    apr_socket_t *listener;
    apr_thread_mutex_t *mutex;
    int count;
    account_t accounts[ACCOUNTS_MAX];
    int in_flight;
    int max_in_flight;
    int requests;
} fake_t;

typedef struct {
    fake_t *fake;
    apr_socket_t *socket;
    apr_pool_t *pool;
} conn_t;

static void seed(fake_t *fake, apr_int64_t now, int count)
{
    int i;

    fake->count = count;
    for (i = 0; i < count; i++) {
        apr_int64_t expires = (i % 2) ? now - 60 : now + 3600;

        snprintf(fake->accounts[i].id, sizeof(fake->accounts[i].id), "svc_acct_%05d", i);
        snprintf(fake->accounts[i].name, sizeof(fake->accounts[i].name),
                 "okey-%" APR_INT64_T_FMT "-user%04d@example.com", expires, i);
        fake->accounts[i].deleted = 0;
    }
    fake->max_in_flight = 0;
    fake->requests = 0;
}

/* The answer to one request; called with the mutex held. */
static const char *answer(fake_t *fake, apr_pool_t *pool, const char *method,
                          const char *path, int *status)
{
    const char *prefix = "/v1/organization/projects/proj_bench/service_accounts";
    const char *body = "{\"error\":{\"message\":\"no route\"}}";
    int i;

    *status = 404;
    if (!strcmp(method, "GET") && !strncmp(path, "/v1/organization/projects?", 26)) {
        *status = 200;
        body = "{\"object\":\"list\",\"data\":[{\"id\":\"proj_bench\",\"name\":\"personal\","
               "\"status\":\"active\",\"archived_at\":null}],\"has_more\":false,"
               "\"last_id\":\"proj_bench\"}";
    }
    else if (!strcmp(method, "GET") && !strncmp(path, prefix, strlen(prefix))) {
        const char *after = strstr(path, "after=");
        int start = after ? atoi(after + 6 + strlen("svc_acct_")) + 1 : 0;
        int n = 0;
        char *data = "";

        for (i = start; i < fake->count && n < 100; i++) {
            if (!fake->accounts[i].deleted) {
                data = apr_psprintf(pool, "%s%s{\"id\":\"%s\",\"name\":\"%s\",\"created_at\":%"
                                    APR_INT64_T_FMT "}", data, n ? "," : "",
                                    fake->accounts[i].id, fake->accounts[i].name,
                                    (apr_int64_t)apr_time_sec(apr_time_now()) - 60);
                n++;
            }
        }
        *status = 200;
        body = apr_psprintf(pool, "{\"object\":\"list\",\"data\":[%s],\"has_more\":%s,"
                            "\"last_id\":%s%s%s}", data, i < fake->count ? "true" : "false",
                            n ? "\"svc_acct_" : "null",
                            n ? apr_psprintf(pool, "%05d", i - 1) : "", n ? "\"" : "");
    }
    else if (!strcmp(method, "DELETE") && !strncmp(path, prefix, strlen(prefix))) {
        int index = atoi(path + strlen(prefix) + 1 + strlen("svc_acct_"));

        if (index >= 0 && index < fake->count && !fake->accounts[index].deleted) {
            fake->accounts[index].deleted = 1;
            *status = 200;
            body = "{\"deleted\":true}";
        }
    }
    return body;
}

/* Reads one request head (and skips its body); 0 at end of connection. */
static int read_request(apr_socket_t *socket, char *buf, apr_size_t cap,
                        char *method, char *path)
{
    apr_size_t used = 0;
    char *end = NULL;

    while (!end && used < cap - 1) {
        apr_size_t len = cap - 1 - used;

        if (apr_socket_recv(socket, buf + used, &len) != APR_SUCCESS || len == 0) {
            return 0;
        }
        used += len;
        buf[used] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    return end && sscanf(buf, "%15s %1023s", method, path) == 2;
}

static void *APR_THREAD_FUNC serve(apr_thread_t *thread, void *data)
{
    conn_t *conn = data;
    fake_t *fake = conn->fake;
    char buf[8192];
    char method[16];
    char path[1024];

    while (read_request(conn->socket, buf, sizeof(buf), method, path)) {
        apr_pool_t *pool;
        const char *body;
        const char *reply;
        apr_size_t len;
        int status;

        apr_pool_create(&pool, conn->pool);
        apr_thread_mutex_lock(fake->mutex);
        fake->requests++;
        fake->in_flight++;
        fake->max_in_flight = fake->in_flight > fake->max_in_flight ? fake->in_flight
                                                                     : fake->max_in_flight;
        apr_thread_mutex_unlock(fake->mutex);
        apr_sleep(LATENCY);
        memory_sample();
        apr_thread_mutex_lock(fake->mutex);
        body = answer(fake, pool, method, path, &status);
        fake->in_flight--;
        apr_thread_mutex_unlock(fake->mutex);
        reply = apr_psprintf(pool, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                             "Content-Length: %" APR_SIZE_T_FMT "\r\n\r\n%s", status,
                             strlen(body), body);
        len = strlen(reply);
        apr_socket_send(conn->socket, reply, &len);
        apr_pool_destroy(pool);
    }
    apr_socket_close(conn->socket);
    apr_pool_destroy(conn->pool);
    free(conn);
    (void)thread;
    return NULL;
}

static void *APR_THREAD_FUNC accept_loop(apr_thread_t *thread, void *data)
{
    fake_t *fake = data;
    apr_threadattr_t *attr;
    apr_pool_t *threads; /* this thread's alone: the workers' records */

    (void)thread;
    apr_pool_create_unmanaged_ex(&threads, NULL, NULL);
    apr_threadattr_create(&attr, threads);
    apr_threadattr_detach_set(attr, 1);
    for (;;) {
        conn_t *conn = calloc(1, sizeof(*conn));
        apr_thread_t *worker;

        apr_pool_create_unmanaged_ex(&conn->pool, NULL, NULL);
        conn->fake = fake;
        if (apr_socket_accept(&conn->socket, fake->listener, conn->pool) != APR_SUCCESS) {
            apr_pool_destroy(conn->pool);
            free(conn);
            break;
        }
        apr_thread_create(&worker, attr, serve, conn, threads);
    }
    return NULL;
}

static apr_port_t start_fake(fake_t *fake)
{
    apr_sockaddr_t *addr;
    apr_thread_t *thread;

    apr_thread_mutex_create(&fake->mutex, APR_THREAD_MUTEX_DEFAULT, fake->pool);
    apr_sockaddr_info_get(&addr, "127.0.0.1", APR_INET, 0, 0, fake->pool);
    apr_socket_create(&fake->listener, APR_INET, SOCK_STREAM, APR_PROTO_TCP, fake->pool);
    apr_socket_opt_set(fake->listener, APR_SO_REUSEADDR, 1);
    apr_socket_bind(fake->listener, addr);
    apr_socket_listen(fake->listener, 64);
    apr_socket_addr_get(&addr, APR_LOCAL, fake->listener);
    apr_thread_create(&thread, NULL, accept_loop, fake, fake->pool);
    return addr->port;
}

static double timed_reap(fake_t *fake, okey_reaper_t *reaper, int parallel, int count,
                         double *peak_kib)
{
    apr_allocator_t *allocator;
    apr_pool_t *pool;
    okey_reap_summary_t summary;
    apr_int64_t now = (apr_int64_t)apr_time_sec(apr_time_now());
    size_t start;

    /* An allocator of the reap's own that keeps no free blocks: what its
     * pools hold is what resident memory shows. */
    apr_allocator_create(&allocator);
    apr_allocator_max_free_set(allocator, 1);
    apr_pool_create_ex(&pool, NULL, NULL, allocator);
    apr_allocator_owner_set(allocator, pool);
    seed(fake, now, count);
    reaper->parallel = parallel;
    start = memory_sample();
    memory_peak = start;
    okey_reap(reaper, pool, now, &summary);
    memory_sample();
    *peak_kib = (double)(memory_peak - start) / 1024;
    if (summary.deleted != count / 2 || summary.failed || summary.error) {
        fprintf(stderr, "reap went wrong: deleted %d, failed %d, %s\n", summary.deleted,
                summary.failed, summary.error ? summary.error : "");
        exit(1);
    }
    printf("%-9s reap (%2d in flight, fake saw at most %2d): %6.2f s, %d requests, "
           "peak memory +%.0f KiB\n", parallel == 1 ? "serial" : "parallel", parallel,
           fake->max_in_flight, summary.seconds, fake->requests, *peak_kib);
    apr_pool_destroy(pool);
    return summary.seconds;
}

int main(void)
{
    fake_t *fake;
    okey_config_t cfg;
    okey_http_options_t opts = {30, NULL, NULL};
    okey_reaper_t reaper;
    okey_logger_t sampler = {sample_on_log, NULL, NULL};
    apr_pool_t *pool;
    double serial;
    double parallel;
    double floor_seconds;
    double small_kib;
    double large_kib;

    apr_initialize();
    okey_http_global_init();
    apr_pool_create(&pool, NULL);
    apr_thread_mutex_create(&memory_mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    fake = apr_pcalloc(pool, sizeof(*fake));
    fake->pool = pool;
    memset(&cfg, 0, sizeof(cfg));
    cfg.api_base = apr_psprintf(pool, "http://127.0.0.1:%d/v1", start_fake(fake));
    cfg.management_key = "bench-admin-key";
    cfg.project = "personal";
    cfg.expiration = 86400;
    okey_reaper_init(&reaper, &cfg, okey_http_create(pool, &opts), &sampler, NULL);
    printf("1000 service accounts, 500 expired, %d ms per upstream request\n",
           (int)apr_time_as_msec(LATENCY));
    serial = timed_reap(fake, &reaper, 1, 1000, &small_kib);
    parallel = timed_reap(fake, &reaper, OKEY_REAP_PARALLEL, 1000, &small_kib);
    printf("parallel reap is %.1fx faster than serial (target >= 6x)\n", serial / parallel);
    printf("%d service accounts, %d expired, %d ms per upstream request\n", ACCOUNTS_MAX,
           ACCOUNTS_MAX / 2, (int)apr_time_as_msec(LATENCY));
    parallel = timed_reap(fake, &reaper, OKEY_REAP_PARALLEL, ACCOUNTS_MAX, &large_kib);
    floor_seconds = (double)(1 + ACCOUNTS_MAX / 100 +
                             (ACCOUNTS_MAX / 2 + OKEY_REAP_PARALLEL - 1) / OKEY_REAP_PARALLEL) *
                    (double)LATENCY / APR_USEC_PER_SEC;
    printf("floor (1 project list + %d pages + %d deletes at %d in flight): %.2f s; "
           "reap / floor = %.2f (target <= 1.1)\n", ACCOUNTS_MAX / 100, ACCOUNTS_MAX / 2,
           OKEY_REAP_PARALLEL, floor_seconds, parallel / floor_seconds);
    printf("peak memory of a reap: %.0f KiB for %d accounts, %.0f KiB for 1000: %.1fx for "
           "%dx the accounts (one page's worth bounds it when near 1)\n", large_kib,
           ACCOUNTS_MAX, small_kib, large_kib / (small_kib > 1 ? small_kib : 1),
           ACCOUNTS_MAX / 1000);
    return 0;
}
