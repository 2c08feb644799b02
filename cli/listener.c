/* The loopback listener: the browser brings the sealed result here from
 * the server's callback. One connection at a time, each bounded in size
 * and time; only a result that opens with this helper's key ends it. */
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

/* Waits for fd to be readable until deadline; 1 when it is, 0 at the
 * deadline or on a stop signal. */
static int readable(int fd, apr_int64_t deadline)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int ready = 0;

    while (!ready && !openaikey_stop && now_ms() < deadline) {
        apr_int64_t left = deadline - now_ms();

        ready = poll(&pfd, 1, left > 1000 ? 1000 : (int)(left > 0 ? left : 0)) > 0;
    }
    return ready && !openaikey_stop;
}

/* The request head of conn, NUL-terminated, or NULL when it is too long,
 * too slow or cut short. */
static char *read_head(apr_pool_t *pool, int conn, apr_int64_t deadline)
{
    char *head = apr_palloc(pool, REQUEST_MAX + 1);
    apr_size_t got = 0;
    int complete = 0;
    ssize_t n = 1;

    while (!complete && n > 0 && got < REQUEST_MAX && readable(conn, deadline)) {
        n = recv(conn, head + got, REQUEST_MAX - got, 0);
        got += n > 0 ? (apr_size_t)n : 0;
        head[got] = '\0';
        complete = strstr(head, "\r\n\r\n") != NULL;
    }
    return complete ? head : NULL;
}

static void respond(int conn, int status, const char *reason, const char *html)
{
    char head[512];
    apr_size_t len = strlen(html);
    int head_len = snprintf(head, sizeof(head),
                            "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                            "Content-Length: %lu\r\nCache-Control: no-store\r\n"
                            "Referrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n"
                            "Content-Security-Policy: default-src 'none'; style-src "
                            "'unsafe-inline'\r\nConnection: close\r\n\r\n",
                            status, reason, (unsigned long)len);

    if (send(conn, head, (size_t)head_len, MSG_NOSIGNAL) == head_len) {
        send(conn, html, len, MSG_NOSIGNAL);
    }
}

static const char *page(apr_pool_t *pool, const char *title, const char *message)
{
    return apr_pstrcat(pool, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width\"><title>",
                       okey_html_escape(pool, title), "</title><style>body{font-family:"
                       "system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;"
                       "line-height:1.5}</style></head><body><h1>",
                       okey_html_escape(pool, title), "</h1><p>",
                       okey_html_escape(pool, message), "</p></body></html>\n", NULL);
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

/* Answers one connection; the key when it brought this helper's result
 * (*why set when that result is a refusal). */
static openaikey_key_t *serve(apr_pool_t *pool, apr_pool_t *conn_pool, int conn, int port,
                              const okey_cli_keypair_t *pair, const char *server,
                              apr_int64_t deadline, const char **why)
{
    apr_int64_t conn_deadline = now_ms() + CONNECTION_SECONDS * 1000;
    char *head = read_head(conn_pool, conn,
                           conn_deadline < deadline ? conn_deadline : deadline);
    const char *result = head ? result_of(conn_pool, head, port) : NULL;
    const char *plain = result ? okey_cli_open(conn_pool, pair, result) : NULL;
    const char *refusal = NULL;
    openaikey_key_t *key = plain ? openaikey_key_from_json(pool, server, plain, &refusal)
                                 : NULL;

    if (key) {
        respond(conn, 200, "OK", page(conn_pool, "Key sent to your terminal", apr_pstrcat(
            conn_pool, "The key for ", key->email, " was sent to openaikey in your terminal. "
            "You can close this tab.", NULL)));
    }
    else if (plain && refusal) {
        respond(conn, 200, "OK", page(conn_pool, "Sign-in failed", refusal));
        *why = apr_pstrcat(pool, "the sign-in failed: ", refusal, NULL);
    }
    else if (head && !result && strncmp(head, "GET /?", 6)) {
        respond(conn, 404, "Not Found", page(conn_pool, "Not found", "openaikey is waiting "
                                             "here for a sign-in result, nothing else."));
    }
    else if (head) {
        respond(conn, 400, "Bad Request", page(conn_pool, "Not for this openaikey",
                                               "This result was not made for the openaikey "
                                               "waiting here, so it was ignored."));
    }
    return key;
}

openaikey_key_t *openaikey_await(apr_pool_t *pool, openaikey_listener_t *listener,
                                 const okey_cli_keypair_t *pair, const char *server,
                                 int timeout, const char **why)
{
    apr_int64_t deadline = now_ms() + (apr_int64_t)timeout * 1000;
    openaikey_key_t *key = NULL;
    apr_pool_t *conn_pool = NULL;

    *why = NULL;
    apr_pool_create(&conn_pool, pool);
    while (!key && !*why && readable(listener->fd, deadline)) {
        int conn = accept4(listener->fd, NULL, NULL, SOCK_CLOEXEC);

        if (conn >= 0) {
            key = serve(pool, conn_pool, conn, listener->port, pair, server, deadline, why);
            close(conn);
        }
        apr_pool_clear(conn_pool);
    }
    if (!key && !*why) {
        *why = openaikey_stop ? "cancelled"
               : apr_psprintf(pool, "no sign-in result arrived within %d s", timeout);
    }
    apr_pool_destroy(conn_pool);
    return key;
}
