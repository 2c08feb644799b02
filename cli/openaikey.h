/* openaikey, the command-line helper: gets a key from a mod_openaikey
 * server into a terminal or a tool without showing or copying it. */
#ifndef OPENAIKEY_H
#define OPENAIKEY_H

#include <apr_pools.h>
#include <jansson.h>
#include <signal.h>

#include "../src/cli.h"

#define OPENAIKEY_TIMEOUT_DEFAULT 300 /* seconds to wait for the browser */
/* A cached key this close to its expiry counts as expired: a tool that
 * asks for it must not get one that dies mid-request. */
#define OPENAIKEY_EXPIRY_MARGIN 60

/* A key as the server sent it and the cache keeps it. */
typedef struct openaikey_key_t {
    const char *server;
    const char *api_key;
    apr_int64_t expires_at;
    const char *project;
    const char *email;
    const char *service_account_id;
} openaikey_key_t;

/* What the command line asks for. */
typedef struct openaikey_args_t {
    const char *command;  /* login or key */
    const char *server;   /* the sign-in URL, or NULL */
    const char *issue;    /* an openaikey-issue URL instead, or NULL */
    const char *ttl;
    const char *user;     /* basic authentication at issue, or NULL */
    int negotiate;        /* Kerberos (SPNEGO) at issue */
    int no_browser;
    int timeout;
} openaikey_args_t;

/* Prints "openaikey: <message>" on stderr. */
void openaikey_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The key in a result the server sent (its JSON), or NULL with *why set.
 * A result naming an error sets *why to its reason. */
openaikey_key_t *openaikey_key_from_json(apr_pool_t *pool, const char *server,
                                         const char *json, const char **why);

/* --- cache.c: keys kept until they expire, mode 0600 --------------------- */

/* The cached key for server, valid for longer than the margin at now, or
 * NULL. */
openaikey_key_t *openaikey_cache_get(apr_pool_t *pool, const char *server,
                                     apr_int64_t now);

/* Stores key as the newest for its server, and args as the way to it,
 * atomically. NULL, or why not. */
const char *openaikey_cache_put(apr_pool_t *pool, const openaikey_key_t *key,
                                const openaikey_args_t *args);

/* Holds the cache's lock until pool goes, waiting at most seconds for
 * another openaikey that holds it: of several asking at once, one signs in
 * and the rest then find its key. NULL, or why not. */
const char *openaikey_cache_lock(apr_pool_t *pool, int seconds);

/* Fills args with the server of the newest sign-in and how it signed in
 * (--issue, --user, --negotiate); 0 when there is none. */
int openaikey_cache_last(apr_pool_t *pool, openaikey_args_t *args);

/* --- fetch.c: requests to the key server ---------------------------------- */

typedef struct openaikey_fetch_t {
    const char *url;
    const char *body;      /* a JSON body to POST, or NULL for GET */
    const char *user;      /* basic authentication, or NULL */
    const char *password;
    int negotiate;
} openaikey_fetch_t;

/* Performs req; NULL with *status and *body set, or why it could not. */
const char *openaikey_fetch(apr_pool_t *pool, const openaikey_fetch_t *req,
                            int *status, const char **body);

/* --- listener.c: the loopback listener the browser brings the result to --- */

typedef struct openaikey_listener_t openaikey_listener_t;

/* Listens on 127.0.0.1 at a port the system picks. */
const char *openaikey_listen(apr_pool_t *pool, openaikey_listener_t **listener,
                             int *port);

/* Waits up to timeout seconds for one result that opens with pair and
 * names a key or an error; anything else is answered and ignored. Returns
 * the key, or NULL with *why set (the server's reason when it refused). */
openaikey_key_t *openaikey_await(apr_pool_t *pool, openaikey_listener_t *listener,
                                 const okey_cli_keypair_t *pair, const char *server,
                                 int timeout, const char **why);

/* --- rotate.c: openaikey admin-key rotate ---------------------------------- */

/* Runs openaikey admin-key ARGS; the exit status. */
int openaikey_admin_key(apr_pool_t *pool, int argc, const char *const *argv);

/* Set from a signal handler: the wait ends at once. */
extern volatile sig_atomic_t openaikey_stop;

#endif
