/* The loopback listener: the browser brings the sealed result here from
 * the server's callback. A few connections are read at once (browsers open
 * spare ones), each bounded in size and time; only a result that opens
 * with this helper's key ends the wait. */
#include "openaikey.h"

#include <apr_strings.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../src/page.h"
#include "../src/query.h"

#define REQUEST_MAX 16384    /* bytes of a request head */
#define CONNECTION_SECONDS 5 /* for a connection to send its request */
#define CONNECTIONS_MAX 8    /* read at once */

volatile sig_atomic_t openaikey_stop;

struct openaikey_listener_t {
    int fd;
    int port;
};

static apr_status_t close_fd(void *data)
{
    close(((openaikey_listener_t *)data)->fd);
    return APR_SUCCESS;
}

const char *openaikey_listen(apr_pool_t *pool, openaikey_listener_t **listener, int *port)
{
    openaikey_listener_t *made = apr_pcalloc(pool, sizeof(*made));
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    const char *why = NULL;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    made->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (made->fd < 0 || bind(made->fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        listen(made->fd, 8) || getsockname(made->fd, (struct sockaddr *)&addr, &len)) {
        why = apr_psprintf(pool, "cannot listen on 127.0.0.1: %s", strerror(errno));
    }
    if (made->fd >= 0) {
        apr_pool_cleanup_register(pool, made, close_fd, apr_pool_cleanup_null);
    }
    made->port = ntohs(addr.sin_port);
    *port = why ? 0 : made->port;
    *listener = why ? NULL : made;
    return why;
}

static apr_int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection being read: its request head so far, and until when it may
 * take to send it. */
typedef struct {
    int fd;                /* -1: a free slot */
    apr_pool_t *pool;
    char *head;
    apr_size_t got;
    apr_int64_t deadline;
} connection_t;

static void drop(connection_t *conn)
{
    close(conn->fd);
    apr_pool_destroy(conn->pool);
    conn->fd = -1;
}

/* Takes a waiting connection into a free slot; when none is free, the
 * oldest gives its slot up: a browser must not wait behind idle sockets. */
static void take(apr_pool_t *pool, int listen_fd, connection_t *conns, apr_int64_t now)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    int slot = -1;
    int oldest = 0;
    int i;

    for (i = 0; i < CONNECTIONS_MAX; i++) {
        slot = slot < 0 && conns[i].fd < 0 ? i : slot;
        oldest = conns[i].fd >= 0 && conns[i].deadline < conns[oldest].deadline ? i : oldest;
    }
    slot = slot < 0 ? oldest : slot;
    if (fd >= 0 && conns[slot].fd >= 0) {
        drop(&conns[slot]);
    }
    if (fd >= 0) {
        conns[slot].fd = fd;
        apr_pool_create(&conns[slot].pool, pool);
        conns[slot].head = apr_palloc(conns[slot].pool, REQUEST_MAX + 1);
        conns[slot].head[0] = '\0';
        conns[slot].got = 0;
        conns[slot].deadline = now + CONNECTION_SECONDS * 1000;
    }
}

/* Reads what conn has sent; 1 once its request head is complete, 0 while
 * more may come, -1 when it never will (closed, too long). */
static int read_more(connection_t *conn)
{
    ssize_t n = recv(conn->fd, conn->head + conn->got, REQUEST_MAX - conn->got, 0);
    int state = n > 0 ? 0 : (n < 0 && (errno == EAGAIN || errno == EINTR)) ? 0 : -1;

    conn->got += n > 0 ? (apr_size_t)n : 0;
    conn->head[conn->got] = '\0';
    if (strstr(conn->head, "\r\n\r\n")) {
        state = 1;
    }
    else if (conn->got >= REQUEST_MAX) {
        state = -1;
    }
    return state;
}

static void respond(int conn, int status, const char *reason, okey_page_t page)
{
    char head[512];
    apr_size_t len = strlen(page.html);
    int head_len = snprintf(head, sizeof(head),
                            "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                            "Content-Length: %lu\r\nCache-Control: no-store\r\n"
                            "Referrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n"
                            "Content-Security-Policy: %s\r\nConnection: close\r\n\r\n",
                            status, reason, (unsigned long)len, page.csp);

    if (head_len > 0 && head_len < (int)sizeof(head) &&
        send(conn, head, (size_t)head_len, MSG_NOSIGNAL) == head_len) {
        send(conn, page.html, len, MSG_NOSIGNAL);
    }
}

/* The result a request carries: GET /?result=X with Host 127.0.0.1:port,
 * nothing else; NULL otherwise. */
static const char *result_of(apr_pool_t *pool, const char *head, int port)
{
    const char *host = apr_psprintf(pool, "\r\nhost: 127.0.0.1:%d\r\n", port);
    const char *why = NULL;
    char *line = apr_pstrndup(pool, head, strcspn(head, "\r"));
    char *space = strchr(line, ' ');
    char *target = space ? space + 1 : NULL;
    char *end = target ? strchr(target, ' ') : NULL;
    int results = 0;
    const char *result = NULL;
    apr_array_header_t *params = NULL;

    if (end && !strncmp(line, "GET /?", 6) && strstr(okey_lower(pool, head), host)) {
        *end = '\0';
        params = okey_query_parse(pool, target + 2, &why);
        result = okey_query_get(params, "result", &results);
    }
    return params && results == 1 && params->nelts == 1 ? result : NULL;
}

/* Answers a complete request; the key when it brought this helper's
 * result (*why set when that result is a refusal). */
static openaikey_key_t *serve(apr_pool_t *pool, const connection_t *conn, int port,
                              const okey_cli_keypair_t *pair, const char *server,
                              const char **why)
{
    const char *result = result_of(conn->pool, conn->head, port);
    const char *plain = result ? okey_cli_open(conn->pool, pair, result) : NULL;
    const char *refusal = NULL;
    openaikey_key_t *key = plain ? openaikey_key_from_json(pool, server, plain, &refusal)
                                 : NULL;

    apr_pool_t *p = conn->pool;

    if (key) {
        respond(conn->fd, 200, "OK", okey_page_message(p, "Key sent to your terminal",
            apr_pstrcat(p, "The key for ", key->email, " was sent to openaikey in your "
                        "terminal. You can close this tab.", NULL)));
    }
    else if (plain && refusal) {
        respond(conn->fd, 200, "OK", okey_page_message(p, "Sign-in failed", refusal));
        *why = apr_pstrcat(pool, "the sign-in failed: ", refusal, NULL);
    }
    else if (!result && strncmp(conn->head, "GET /?", 6)) {
        respond(conn->fd, 404, "Not Found", okey_page_message(p, "Not found",
            "openaikey is waiting here for a sign-in result, nothing else."));
    }
    else {
        respond(conn->fd, 400, "Bad Request", okey_page_message(p, "Not for this openaikey",
            "This result was not made for the openaikey waiting here, so it was ignored."));
    }
    return key;
}

/* Waits, at most a second and never past deadline, for the listener or a
 * connection to have something; the poll entries say which. */
static void wait_any(const openaikey_listener_t *listener, const connection_t *conns,
                     struct pollfd *fds, apr_int64_t deadline)
{
    apr_int64_t until = deadline;
    apr_int64_t left;
    int i;

    fds[0].fd = listener->fd;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    for (i = 0; i < CONNECTIONS_MAX; i++) {
        fds[i + 1].fd = conns[i].fd;
        fds[i + 1].events = POLLIN;
        fds[i + 1].revents = 0;
        until = conns[i].fd >= 0 && conns[i].deadline < until ? conns[i].deadline : until;
    }
    left = until - now_ms();
    poll(fds, CONNECTIONS_MAX + 1, left > 1000 ? 1000 : left > 0 ? (int)left : 0);
}

openaikey_key_t *openaikey_await(apr_pool_t *pool, openaikey_listener_t *listener,
                                 const okey_cli_keypair_t *pair, const char *server,
                                 int timeout, const char **why)
{
    apr_int64_t deadline = now_ms() + (apr_int64_t)timeout * 1000;
    connection_t conns[CONNECTIONS_MAX];
    struct pollfd fds[CONNECTIONS_MAX + 1];
    openaikey_key_t *key = NULL;
    int i;

    *why = NULL;
    for (i = 0; i < CONNECTIONS_MAX; i++) {
        conns[i].fd = -1;
        conns[i].deadline = 0;
    }
    while (!key && !*why && !openaikey_stop && now_ms() < deadline) {
        wait_any(listener, conns, fds, deadline);
        for (i = 0; i < CONNECTIONS_MAX && !key && !*why; i++) {
            int state = conns[i].fd < 0 ? 0
                        : fds[i + 1].revents ? read_more(&conns[i])
                        : conns[i].deadline <= now_ms() ? -1 : 0;

            if (state > 0) {
                key = serve(pool, &conns[i], listener->port, pair, server, why);
            }
            if (state != 0) {
                drop(&conns[i]);
            }
        }
        if (fds[0].revents && !key && !*why) {
            take(pool, listener->fd, conns, now_ms());
        }
    }
    for (i = 0; i < CONNECTIONS_MAX; i++) {
        if (conns[i].fd >= 0) {
            drop(&conns[i]);
        }
    }
    if (!key && !*why) {
        *why = openaikey_stop ? "cancelled"
               : apr_psprintf(pool, "no sign-in result arrived within %d s", timeout);
    }
    return key;
}
