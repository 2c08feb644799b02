/* See redis_fixture.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "redis_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_TURNS 500          /* of 20 ms: ten seconds */
#define TURN_NSEC 20000000L

static void pause_turn(void)
{
    struct timespec turn = {0, TURN_NSEC};

    nanosleep(&turn, NULL);
}

/* A socket listening on port (0: any free one). */
static int listener_on(int *port)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)*port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        listen(fd, 16) || getsockname(fd, (struct sockaddr *)&addr, &len)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

/* On a port of OKEY_REDIS_PORTS (low-high) when set, so that test runs
 * side by side keep to their own ports; else on any free one. */
static int listener(int *port)
{
    const char *range = getenv("OKEY_REDIS_PORTS");
    int low = 0, high = -1, fd = -1;

    if (range && sscanf(range, "%d-%d", &low, &high) != 2) {
        high = -1;
    }
    for (*port = low; fd < 0 && *port <= high && *port < 65536; (*port)++) {
        int tried = *port;

        fd = listener_on(&tried);
        if (fd >= 0) {
            return fd;
        }
    }
    *port = 0;
    return high >= 0 ? -1 : listener_on(port);
}

int test_redis_free_port(void)
{
    int port = 0;
    int fd = listener(&port);

    if (fd >= 0) {
        close(fd);
    }
    return port;
}

int test_redis_silent(int *port)
{
    return listener(port);
}

static redisContext *connect_to(const test_redis_t *redis)
{
    struct timeval tv = {1, 0};
    redisContext *c = redis->unix_socket ? redisConnectUnixWithTimeout(redis->socket, tv)
                                         : redisConnectWithTimeout("127.0.0.1", redis->port, tv);

    if (c && !c->err) {
        redisSetTimeout(c, tv);
    }
    if (c && !c->err && redis->password) {
        redisReply *reply = redisCommand(c, "AUTH %s", redis->password);

        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            c->err = REDIS_ERR_OTHER;
        }
        if (reply) {
            freeReplyObject(reply);
        }
    }
    if (c && c->err) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

int test_redis_command(const test_redis_t *redis, char *out, size_t len, const char **argv)
{
    redisContext *c = connect_to(redis);
    redisReply *reply = NULL;
    int argc = 0;

    while (argv[argc]) {
        argc++;
    }
    if (c) {
        reply = redisCommandArgv(c, argc, argv, NULL);
    }
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        snprintf(out, len, "%lld", reply->integer);
    }
    else if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                       reply->type == REDIS_REPLY_ERROR)) {
        snprintf(out, len, "%s", reply->str);
    }
    else if (reply && reply->type == REDIS_REPLY_ARRAY) {
        size_t i, at = 0;

        /* Its strings, one a line. */
        out[0] = '\0';
        for (i = 0; i < reply->elements && at < len; i++) {
            const redisReply *each = reply->element[i];

            at += (size_t)snprintf(out + at, len - at, "%s\n",
                                   each->type == REDIS_REPLY_STRING ? each->str : "?");
        }
    }
    else if (reply) {
        snprintf(out, len, "(nil)");
    }
    if (reply) {
        freeReplyObject(reply);
    }
    if (c) {
        redisFree(c);
    }
    return reply != NULL;
}

static int answers(const test_redis_t *redis)
{
    char out[64] = "";
    const char *ping[] = {"PING", NULL};

    return test_redis_command(redis, out, sizeof(out), ping) && !strcmp(out, "PONG");
}

static void run_server(const test_redis_t *redis)
{
    char port[16], log[300];
    const char *argv[24];
    int argc = 0, fd;

    snprintf(port, sizeof(port), "%d", redis->port);
    snprintf(log, sizeof(log), "%s/redis.log", redis->dir);
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--dir";
    argv[argc++] = redis->dir;
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--logfile";
    argv[argc++] = log;
    if (redis->unix_socket) {
        argv[argc++] = "--unixsocket";
        argv[argc++] = redis->socket;
    }
    if (redis->password) {
        argv[argc++] = "--requirepass";
        argv[argc++] = redis->password;
    }
    argv[argc] = NULL;
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execvp("redis-server", (char *const *)argv);
    _exit(127);
}

int test_redis_restart(test_redis_t *redis)
{
    int turns = 0, up = 0;

    redis->pid = fork();
    if (redis->pid == 0) {
        run_server(redis);
    }
    while (redis->pid > 0 && !up && turns++ < WAIT_TURNS) {
        int status;

        if (waitpid(redis->pid, &status, WNOHANG) == redis->pid) {
            redis->pid = 0;
            break;
        }
        up = answers(redis);
        if (!up) {
            pause_turn();
        }
    }
    return up;
}

int test_redis_start(test_redis_t *redis)
{
    snprintf(redis->dir, sizeof(redis->dir), "%s/okey-redis-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(redis->dir)) {
        return 0;
    }
    snprintf(redis->socket, sizeof(redis->socket), "%s/redis.sock", redis->dir);
    /* With a unix socket, no TCP port: redis-server's --port 0. */
    redis->port = redis->unix_socket ? 0 : test_redis_free_port();
    if (redis->unix_socket) {
        snprintf(redis->url, sizeof(redis->url), "redis+unix://%s", redis->socket);
    }
    else {
        snprintf(redis->url, sizeof(redis->url), "redis://127.0.0.1:%d", redis->port);
    }
    return test_redis_restart(redis);
}

void test_redis_kill(test_redis_t *redis)
{
    int turns = 0;

    if (redis->pid > 0) {
        kill(redis->pid, SIGKILL);
        while (waitpid(redis->pid, NULL, 0) < 0 && errno == EINTR && turns++ < WAIT_TURNS) {
        }
        redis->pid = 0;
    }
}

void test_redis_stop(test_redis_t *redis)
{
    char path[400];

    test_redis_kill(redis);
    if (redis->dir[0]) {
        snprintf(path, sizeof(path), "%s/redis.log", redis->dir);
        unlink(path);
        unlink(redis->socket);
        snprintf(path, sizeof(path), "%s/dump.rdb", redis->dir);
        unlink(path);
        rmdir(redis->dir);
        redis->dir[0] = '\0';
    }
}
