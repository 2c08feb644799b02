/* openaikey admin-key rotate: replaces the OpenAI Admin key that a key
 * server reads from a file with a new one. OpenAI has no rotate call, so
 * this is create, prove, switch over, delete, in an order where a failure
 * at any step leaves the old key in the file and working:
 *
 *   1. read FILE, find the old key among the organisation's Admin keys
 *   2. create the new key (a failure: delete whatever the creation made)
 *   3. read the new key with itself (a failure: delete it)
 *   4. write FILE atomically, with the old file's owner and mode
 *   5. reload the server (a failure: put the old file back, delete the new
 *      key)
 *   6. delete the old key with the new one
 *
 * No key value is printed or passed to another program. */
#include "openaikey.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/openai.h"

#define EXIT_NOTHING_CHANGED 1
#define EXIT_USAGE 2
#define EXIT_OLD_KEY_LEFT 3
#define KEY_FILE_MAX 4096
#define MAX_DAYS 365
#define DAY_SECONDS 86400
#define API_TIMEOUT 30
/* apachectl graceful returns once httpd has the signal; a command that
 * takes longer than this has hung. */
#define RELOAD_TIMEOUT 120
#define RELOAD_DEFAULT "apachectl graceful"
#define API_BASE_DEFAULT "https://api.openai.com/v1"

extern char **environ;

static const char ROTATE_USAGE[] =
    "usage: openaikey admin-key rotate --key-file FILE [--expires-in DAYS] [--reload CMD]\n"
    "                                  [--api-base URL]\n";

typedef struct {
    const char *key_file;
    apr_int64_t expires_in; /* seconds; 0: never */
    const char *reload;
    const char *api_base;
} rotate_args_t;

/* The key file as found: its key, what followed it, and how it was kept. */
typedef struct {
    const char *path;
    const char *dir;
    const char *value;
    const char *trailer; /* the whitespace after the key, kept as it was */
    uid_t uid;
    gid_t gid;
    mode_t mode;
} key_file_t;

/* --- the command line ------------------------------------------------------ */

static const char *parse_days(const char *text, apr_int64_t *seconds)
{
    char *end = NULL;
    long days;

    errno = 0;
    days = strtol(text, &end, 10);
    *seconds = (apr_int64_t)days * DAY_SECONDS;
    return errno || end == text || *end || days < 1 || days > MAX_DAYS
           ? "--expires-in takes a whole number of days from 1 to 365" : NULL;
}

static const char *read_rotate_args(apr_pool_t *pool, int argc, const char *const *argv,
                                    rotate_args_t *args)
{
    const char *wrong = argc < 3 || strcmp(argv[2], "rotate") ? "admin-key takes rotate" : NULL;
    const char *base = getenv("OPENAI_API_BASE");
    int i;

    memset(args, 0, sizeof(*args));
    args->reload = RELOAD_DEFAULT;
    args->api_base = base && *base ? base : API_BASE_DEFAULT;
    for (i = 3; i < argc && !wrong; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "--key-file") && strcmp(arg, "--expires-in") &&
            strcmp(arg, "--reload") && strcmp(arg, "--api-base")) {
            wrong = apr_pstrcat(pool, "unknown argument ", arg, NULL);
        }
        else if (!value || !*value || !strncmp(value, "--", 2)) {
            wrong = apr_pstrcat(pool, arg, " needs a value", NULL);
        }
        else if (!strcmp(arg, "--key-file")) {
            args->key_file = value;
        }
        else if (!strcmp(arg, "--expires-in")) {
            wrong = parse_days(value, &args->expires_in);
        }
        else if (!strcmp(arg, "--reload")) {
            args->reload = value;
        }
        else {
            args->api_base = value;
        }
        i++;
    }
    if (!wrong && !args->key_file) {
        wrong = "rotate needs --key-file FILE, the file the server reads its Admin key from";
    }
    if (!wrong && okey_cli_url_problem(pool, args->api_base)) {
        wrong = apr_pstrcat(pool, "--api-base: ", okey_cli_url_problem(pool, args->api_base),
                            NULL);
    }
    return wrong;
}

/* --- the key file ---------------------------------------------------------- */

static const char *dir_of(apr_pool_t *pool, const char *path)
{
    const char *slash = strrchr(path, '/');

    return !slash ? "." : slash == path ? "/" : apr_pstrndup(pool, path, (apr_size_t)(slash - path));
}

/* Splits text into the key and what follows it; NULL unless text is one
 * key, printable, with nothing but whitespace after it. */
static const char *key_of(apr_pool_t *pool, const char *text, const char **trailer)
{
    apr_size_t len = strcspn(text, " \t\r\n\v\f");
    apr_size_t i;
    int ok = len > 0 && strspn(text + len, " \t\r\n\v\f") == strlen(text + len);

    for (i = 0; ok && i < len; i++) {
        ok = (unsigned char)text[i] > 0x20 && (unsigned char)text[i] < 0x7f;
    }
    *trailer = text + len;
    return ok ? apr_pstrndup(pool, text, len) : NULL;
}

static const char *read_key_file(apr_pool_t *pool, const char *path, key_file_t *file)
{
    char *text = apr_pcalloc(pool, KEY_FILE_MAX + 1);
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t got = -1;
    const char *why = NULL;

    memset(file, 0, sizeof(*file));
    file->path = path;
    file->dir = dir_of(pool, path);
    if (fd < 0) {
        why = errno == ELOOP ? "is a symbolic link: give the file it points to"
                             : apr_pstrcat(pool, "cannot be read: ", strerror(errno), NULL);
    }
    else if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        why = "is not a regular file";
    }
    else if ((got = read(fd, text, KEY_FILE_MAX + 1)) < 0 || got > KEY_FILE_MAX) {
        why = got < 0 ? apr_pstrcat(pool, "cannot be read: ", strerror(errno), NULL)
                      : "is too long to hold one key";
    }
    else if (memchr(text, '\0', (size_t)got) ||
             !(file->value = key_of(pool, text, &file->trailer))) {
        why = "does not hold one key (and nothing else)";
    }
    else if (geteuid() != 0 && st.st_uid != geteuid()) {
        why = "belongs to another user: run as root, so that the new file keeps its owner";
    }
    else if (access(file->dir, W_OK | X_OK)) {
        why = apr_pstrcat(pool, "cannot be replaced: its directory is not writable (",
                          strerror(errno), ")", NULL);
    }
    if (fd >= 0) {
        file->uid = st.st_uid;
        file->gid = st.st_gid;
        file->mode = st.st_mode & 07777;
        close(fd);
    }
    return why ? apr_pstrcat(pool, path, " ", why, NULL) : NULL;
}

/* Replaces the file by one holding value (and the old trailer), with the
 * old owner and mode, in one rename: a reader sees the old or the new file,
 * never a part of one. */
static const char *write_key_file(apr_pool_t *pool, const key_file_t *file, const char *value)
{
    char *temp = apr_pstrcat(pool, file->dir, "/.openaikey-rotate-XXXXXX", NULL);
    const char *content = apr_pstrcat(pool, value, file->trailer, NULL);
    apr_size_t len = strlen(content);
    int fd = mkstemp(temp);
    int dir_fd = -1;
    int error = errno;
    const char *why = fd < 0 ? "cannot create a file beside it" : NULL;

    /* Owner and mode before the key goes in: no moment with other rights. */
    if (!why && (fchown(fd, file->uid, file->gid) || fchmod(fd, file->mode))) {
        why = "cannot give the new file the old one's owner and mode";
        error = errno;
    }
    if (!why && (write(fd, content, len) != (ssize_t)len || fsync(fd))) {
        why = "cannot write the new file";
        error = errno;
    }
    if (fd >= 0 && close(fd) && !why) {
        why = "cannot write the new file";
        error = errno;
    }
    if (!why && rename(temp, file->path)) {
        why = "cannot rename the new file into place";
        error = errno;
    }
    if (why && fd >= 0) {
        unlink(temp);
    }
    if (!why) {
        /* The rename itself must outlive a crash. */
        dir_fd = open(file->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd >= 0) {
            fsync(dir_fd);
            close(dir_fd);
        }
    }
    return why ? apr_psprintf(pool, "%s %s: %s", file->path, why, strerror(error)) : NULL;
}

static apr_status_t close_fd(void *fd)
{
    close(*(int *)fd);
    return APR_SUCCESS;
}

/* One rotation of a key file at a time: a second one stops at once. The
 * lock is held until pool goes. */
static const char *lock_key_dir(apr_pool_t *pool, const key_file_t *file)
{
    int *fd = apr_palloc(pool, sizeof(*fd));
    const char *why = NULL;

    *fd = open(file->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd >= 0) {
        apr_pool_cleanup_register(pool, fd, close_fd, apr_pool_cleanup_null);
    }
    if (*fd < 0 || flock(*fd, LOCK_EX | LOCK_NB)) {
        why = apr_pstrcat(pool, "another rotation in ", file->dir, " is running", NULL);
    }
    return why;
}

/* --- the reload ------------------------------------------------------------ */

/* This environment, with the sbin directories on PATH: cron's PATH lacks
 * them, and apachectl lives there. */
static char **reload_environment(apr_pool_t *pool)
{
    apr_array_header_t *env = apr_array_make(pool, 32, sizeof(char *));
    const char *path = getenv("PATH");
    char **entry;

    for (entry = environ; *entry; entry++) {
        if (strncmp(*entry, "PATH=", 5)) {
            APR_ARRAY_PUSH(env, char *) = *entry;
        }
    }
    APR_ARRAY_PUSH(env, char *) = apr_pstrcat(pool, "PATH=", path && *path ? path : "/usr/bin:/bin",
                                               ":/usr/local/sbin:/usr/sbin:/sbin", NULL);
    APR_ARRAY_PUSH(env, char *) = NULL;
    return (char **)env->elts;
}

/* Runs command with sh, its output on stderr (stdout stays clean), in a
 * process group of its own so that one that hangs can be ended whole. */
static const char *run_reload(apr_pool_t *pool, const char *command)
{
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)command, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none;
    pid_t pid = 0;
    int status = 0;
    int waited = 0;
    int spawn_error;
    pid_t done = 0;

    sigemptyset(&none);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 2, 1);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    spawn_error = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, reload_environment(pool));
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    while (!spawn_error && done == 0 && waited < RELOAD_TIMEOUT * 10) {
        done = waitpid(pid, &status, WNOHANG);
        if (done == 0) {
            apr_sleep(apr_time_from_msec(100));
            waited++;
        }
    }
    if (!spawn_error && done == 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return spawn_error ? apr_pstrcat(pool, "cannot run the reload: ", strerror(spawn_error), NULL)
           : done == 0 ? apr_psprintf(pool, "the reload (%s) did not end within %d seconds",
                                      command, RELOAD_TIMEOUT)
           : !WIFEXITED(status) || WEXITSTATUS(status)
             ? apr_psprintf(pool, "the reload (%s) failed (%s %d)", command,
                            WIFEXITED(status) ? "exit status" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status))
           : NULL;
}

/* --- the rotation ---------------------------------------------------------- */

typedef struct {
    apr_pool_t *pool;
    const rotate_args_t *args;
    key_file_t file;
    okey_openai_t old_api;  /* speaks with the old key */
    okey_openai_t new_api;  /* with the new one */
    const char *old_id;
    const char *new_name;
    okey_openai_admin_key_t *new_key;
    int old_key_left;       /* the new key works, and so does the old one */
} rotation_t;

static const char *api_error(apr_pool_t *pool, const char *step, const okey_err_t *err)
{
    return apr_pstrcat(pool, step, ": ", err->log_msg,
                       err->upstream_status == 401 ? " (the key was not accepted)" : "", NULL);
}

/* The old key's id: the one Admin key whose redaction fits the file's key. */
static const char *find_old_key(rotation_t *rot)
{
    apr_array_header_t *keys = NULL;
    okey_err_t *err = okey_openai_admin_keys(&rot->old_api, rot->pool, &keys);
    int matches = 0;
    int i;

    for (i = 0; !err && i < keys->nelts; i++) {
        const okey_openai_admin_key_t *key = &APR_ARRAY_IDX(keys, i, okey_openai_admin_key_t);

        if (okey_openai_redaction_matches(key->redacted_value, rot->file.value)) {
            rot->old_id = key->id;
            matches++;
        }
    }
    return err ? api_error(rot->pool, "listing the Admin keys with the key in the file", err)
           : matches == 0 ? "no Admin key of the organisation looks like the key in the file"
           : matches > 1 ? apr_psprintf(rot->pool, "%d Admin keys look like the key in the file: "
                                        "cannot tell which one to delete", matches)
           : NULL;
}

/* Deletes, with the old key, every key the creation may have made: the one
 * it answered with, or any of the name it was asked for. */
static void discard_new_key(rotation_t *rot)
{
    apr_array_header_t *keys = NULL;
    okey_err_t *err = NULL;
    int i;

    if (rot->new_key) {
        err = okey_openai_delete_admin_key(&rot->old_api, rot->pool, rot->new_key->id);
        openaikey_say(err ? "the new key %s could not be deleted: delete it by hand"
                          : "deleted the new key %s", rot->new_key->id);
    }
    else if (!(err = okey_openai_admin_keys(&rot->old_api, rot->pool, &keys))) {
        for (i = 0; i < keys->nelts; i++) {
            const okey_openai_admin_key_t *key = &APR_ARRAY_IDX(keys, i, okey_openai_admin_key_t);

            if (key->name && !strcmp(key->name, rot->new_name) && strcmp(key->id, rot->old_id)) {
                err = okey_openai_delete_admin_key(&rot->old_api, rot->pool, key->id);
                openaikey_say(err ? "a key the creation made, %s, could not be deleted: "
                                    "delete it by hand" : "deleted %s, which the creation made",
                              key->id);
            }
        }
    }
    else {
        openaikey_say("could not check for a key the creation made (named \"%s\"): %s",
                      rot->new_name, err->log_msg);
    }
}

static const char *create_new_key(rotation_t *rot)
{
    char host[256] = "";
    okey_err_t *err;

    gethostname(host, sizeof(host) - 1);
    rot->new_name = apr_psprintf(rot->pool, "openaikey %s %s", host,
                                 okey_iso8601(rot->pool, (apr_int64_t)time(NULL)));
    err = okey_openai_create_admin_key(&rot->old_api, rot->pool, rot->new_name,
                                       rot->args->expires_in, &rot->new_key);
    if (err) {
        rot->new_key = NULL;
        discard_new_key(rot);
    }
    else {
        rot->new_api.management_key = rot->new_key->value;
        openaikey_say("created the new Admin key %s", rot->new_key->id);
    }
    return err ? api_error(rot->pool, "creating the new Admin key", err) : NULL;
}

static const char *prove_new_key(rotation_t *rot)
{
    okey_openai_admin_key_t *read = NULL;
    okey_err_t *err = okey_openai_read_admin_key(&rot->new_api, rot->pool, rot->new_key->id,
                                                 &read);

    if (err) {
        discard_new_key(rot);
    }
    return err ? api_error(rot->pool, "reading the new key with itself", err) : NULL;
}

static const char *switch_over(rotation_t *rot)
{
    const char *why = write_key_file(rot->pool, &rot->file, rot->new_key->value);
    const char *unrestored = NULL;

    if (!why) {
        openaikey_say("wrote the new key to %s", rot->file.path);
        why = run_reload(rot->pool, rot->args->reload);
        if (why) {
            unrestored = write_key_file(rot->pool, &rot->file, rot->file.value);
            openaikey_say(unrestored ? "the old key could not be put back: %s"
                                     : "put the old key back in %s; reload the server once "
                                       "it can be, so that it reads that file again",
                          unrestored ? unrestored : rot->file.path);
        }
    }
    if (why && !unrestored) {
        discard_new_key(rot);
    }
    rot->old_key_left = unrestored != NULL;
    return why;
}

static int rotate(apr_pool_t *pool, const rotate_args_t *args)
{
    rotation_t rot;
    okey_http_options_t http_opts = {API_TIMEOUT, NULL, NULL};
    sigset_t held;
    const char *why;
    okey_err_t *err = NULL;
    int status = EXIT_NOTHING_CHANGED;

    memset(&rot, 0, sizeof(rot));
    rot.pool = pool;
    rot.args = args;
    rot.old_api.http = okey_http_create(pool, &http_opts);
    rot.old_api.api_base = apr_pstrndup(pool, args->api_base,
                                        strlen(args->api_base) -
                                        (args->api_base[strlen(args->api_base) - 1] == '/'));
    rot.new_api = rot.old_api;
    why = read_key_file(pool, args->key_file, &rot.file);
    if (!why) {
        rot.old_api.management_key = rot.file.value;
        why = lock_key_dir(pool, &rot.file);
    }
    why = why ? why : find_old_key(&rot);
    /* From the creation on, a signal waits for the end (each step is
     * bounded): stopping between two would leave a key no file holds. */
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGHUP);
    sigprocmask(SIG_BLOCK, &held, NULL);
    why = why ? why : create_new_key(&rot);
    why = why ? why : prove_new_key(&rot);
    why = why ? why : switch_over(&rot);
    status = rot.old_key_left ? EXIT_OLD_KEY_LEFT : status;
    if (!why) {
        status = EXIT_OLD_KEY_LEFT;
        err = okey_openai_delete_admin_key(&rot.new_api, pool, rot.old_id);
        why = err ? apr_psprintf(pool, "the new key %s is in %s and the server reloaded, but "
                                 "the old key %s could not be deleted: %s; delete it by hand",
                                 rot.new_key->id, rot.file.path, rot.old_id, err->log_msg)
                  : NULL;
    }
    if (why) {
        openaikey_say("%s%s", why, status == EXIT_NOTHING_CHANGED
                                   ? "; nothing changed: the old key stays in place" : "");
    }
    else {
        status = 0;
        openaikey_say("rotated: %s holds the new key %s; the old key %s is deleted",
                      rot.file.path, rot.new_key->id, rot.old_id);
    }
    return status;
}

int openaikey_admin_key(apr_pool_t *pool, int argc, const char *const *argv)
{
    rotate_args_t args;
    const char *wrong = read_rotate_args(pool, argc, argv, &args);
    int status = EXIT_USAGE;

    if (wrong) {
        openaikey_say("%s", wrong);
        fputs(ROTATE_USAGE, stderr);
    }
    else {
        status = rotate(pool, &args);
    }
    return status;
}
