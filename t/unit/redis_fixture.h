/* A Redis server of the tests' own: Debian's redis-server, started as a
 * child on a free loopback port (or a unix socket) in a temporary
 * directory, with nothing saved, and stopped after. */
#ifndef OKEY_REDIS_FIXTURE_H
#define OKEY_REDIS_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct test_redis_t {
    pid_t pid;             /* 0: not running */
    int port;              /* 0 with a unix socket */
    int unix_socket;       /* listen on socket rather than a port */
    const char *password;  /* requirepass; NULL: none */
    char dir[256];         /* its temporary directory */
    char socket[300];      /* dir/redis.sock when unix_socket */
    char url[400];         /* redis://127.0.0.1:port or redis+unix://socket */
} test_redis_t;

/* Starts a server as redis describes (unix_socket, password), on a free
 * port, and waits until it answers PING: 1 when it does, within ten
 * seconds. */
int test_redis_start(test_redis_t *redis);

/* Starts it again after test_redis_kill, on the same port or socket. */
int test_redis_restart(test_redis_t *redis);

/* Kills the server at once (SIGKILL) and reaps it; the directory stays. */
void test_redis_kill(test_redis_t *redis);

/* Kills it and removes its directory. */
void test_redis_stop(test_redis_t *redis);

/* A loopback port nothing listens on now. */
int test_redis_free_port(void);

/* A socket on a free loopback port that accepts connections (the
 * kernel's backlog does) and never answers; its port in *port. Close
 * the descriptor returned when done; -1 when none could be made. */
int test_redis_silent(int *port);

/* Runs one command (argv, NULL-ended) against the server and gives its
 * reply as text in out: integers and statuses printed, an array's strings
 * one a line, "(nil)" for none; 0 when it failed. */
int test_redis_command(const test_redis_t *redis, char *out, size_t len, const char **argv);

#endif
