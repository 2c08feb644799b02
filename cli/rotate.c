/* openaikey admin-key rotate: replaces the OpenAI Admin key that a key
 * server reads from a file with a new one. OpenAI has no rotate call, so
 * this is create, prove, switch over, delete, in an order where a failure
 * at any step leaves the old key in the file and working:
 *
 *   1. read FILE, find the old key among the organisation's Admin keys
 *   2. create the new key (a failure: delete whatever the creation made)
 *   3. read the new key with itself (a failure: delete it)
 *   4. write FILE atomically, with the old file's owner and mode
 *   5. reload the server (a failure: put the old file back and reload
 *      again, then delete the new key; where that fails too, keep both)
 *   6. delete the old key with the new one
 *
 * No key value is printed or passed to another program. Where both keys
 * are left live, the exit status is 3 and the message names the one to
 * delete by hand. */
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/openai.h"

#define EXIT_NOTHING_CHANGED 1
#define EXIT_USAGE 2
#define EXIT_BOTH_LEFT 3
#define KEY_FILE_MAX 4096
#define MAX_DAYS 365
#define DAY_SECONDS 86400
#define API_TIMEOUT 30
/* apachectl graceful returns once httpd has the signal; a command that
 * takes longer than this has hung. */
#define RELOAD_TIMEOUT 120
#define RELOAD_DEFAULT "apachectl graceful"
#define API_BASE_DEFAULT "https://api.openai.com/v1"
#define TEMP_NAME ".openaikey-rotate.new"
#define USER_LOCK ".openaikey-rotate.lock"
#define ROOT_LOCK "/run/openaikey-rotate.lock"

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
    const char *base;    /* the file's name in dir */
    int dir_fd;
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
    const char *url_problem = NULL;
    int i;

    memset(args, 0, sizeof(*args));
    args->reload = RELOAD_DEFAULT;
    args->api_base = base && *base ? base : API_BASE_DEFAULT;
    for (i = 3; i < argc && !wrong; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(arg, "--key-file") && strcmp(arg, "--expires-in") &&
            strcmp(arg, "--reload") && strcmp(arg, "--api-base")) {
            /* A key pasted on the command line is not repeated. */
            wrong = apr_pstrcat(pool, "unknown argument ", okey_scrub(pool, arg), NULL);
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
    url_problem = wrong ? NULL : okey_cli_url_problem(pool, args->api_base);
    return url_problem ? apr_pstrcat(pool, "--api-base: ", url_problem, NULL) : wrong;
}

/* --- the key file ---------------------------------------------------------- */

static apr_status_t close_fd(void *fd)
{
    close(*(int *)fd);
    return APR_SUCCESS;
}

/* A descriptor that closes when pool goes. */
static int pool_fd(apr_pool_t *pool, int fd)
{
    int *held = apr_palloc(pool, sizeof(*held));

    *held = fd;
    if (fd >= 0) {
        apr_pool_cleanup_register(pool, held, close_fd, apr_pool_cleanup_null);
    }
    return fd;
}

/* Whether text is one key as a key file holds it: printable, no space. */
static int key_shaped(const char *text, apr_size_t len)
{
    apr_size_t i;
    int ok = len > 0 && len <= KEY_FILE_MAX;

    for (i = 0; ok && i < len; i++) {
        ok = (unsigned char)text[i] > 0x20 && (unsigned char)text[i] < 0x7f;
    }
    return ok;
}

/* Splits text into the key and what follows it; NULL unless text is one
 * key with nothing but whitespace after it. */
static const char *key_of(apr_pool_t *pool, const char *text, const char **trailer)
{
    apr_size_t len = strcspn(text, " \t\r\n\v\f");
    int ok = strspn(text + len, " \t\r\n\v\f") == strlen(text + len) && key_shaped(text, len);

    *trailer = text + len;
    return ok ? apr_pstrndup(pool, text, len) : NULL;
}

/* Opens the file's directory once: every later step works through it, so
 * a directory on the path swapped for a link midway changes nothing. Only
 * its owner (root, or this user) may write to it. */
static const char *open_key_dir(apr_pool_t *pool, key_file_t *file)
{
    const char *slash = strrchr(file->path, '/');
    struct stat st;
    const char *why = NULL;

    file->dir = !slash ? "." : slash == file->path ? "/"
              : apr_pstrndup(pool, file->path, (apr_size_t)(slash - file->path));
    file->base = slash ? slash + 1 : file->path;
    file->dir_fd = pool_fd(pool, open(file->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (file->dir_fd < 0 || fstat(file->dir_fd, &st)) {
        why = apr_pstrcat(pool, "is in a directory that cannot be opened: ", strerror(errno),
                          NULL);
    }
    else if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
        why = "is in a directory that others than root or its owner may write to";
    }
    else if (faccessat(file->dir_fd, ".", W_OK | X_OK, 0)) {
        why = apr_pstrcat(pool, "cannot be replaced: its directory is not writable (",
                          strerror(errno), ")", NULL);
    }
    return why;
}

static const char *read_key_file(apr_pool_t *pool, const char *path, key_file_t *file)
{
    char *text = apr_pcalloc(pool, KEY_FILE_MAX + 1);
    struct stat st;
    int fd = -1;
    ssize_t got = -1;
    const char *why = NULL;

    memset(file, 0, sizeof(*file));
    file->path = path;
    why = open_key_dir(pool, file);
    /* O_NONBLOCK: a FIFO put in its place must not hang the read. */
    fd = why ? -1 : pool_fd(pool, openat(file->dir_fd, file->base,
                                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!why && fd < 0) {
        why = errno == ELOOP ? "is a symbolic link: give the file it points to"
                             : apr_pstrcat(pool, "cannot be read: ", strerror(errno), NULL);
    }
    else if (!why && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
        why = "is not a regular file";
    }
    else if (!why && st.st_nlink != 1) {
        why = "has other names (hard links), which would keep the old key";
    }
    else if (!why && ((got = read(fd, text, KEY_FILE_MAX + 1)) < 0 || got > KEY_FILE_MAX)) {
        why = got < 0 ? apr_pstrcat(pool, "cannot be read: ", strerror(errno), NULL)
                      : "is too long to hold one key";
    }
    else if (!why && (memchr(text, '\0', (size_t)got) ||
                      !(file->value = key_of(pool, text, &file->trailer)))) {
        why = "does not hold one key (and nothing else)";
    }
    else if (!why && geteuid() != 0 && st.st_uid != geteuid()) {
        why = "belongs to another user: run as root, so that the new file keeps its owner";
    }
    if (!why) {
        file->uid = st.st_uid;
        file->gid = st.st_gid;
        file->mode = st.st_mode & 07777;
    }
    if (!why && (file->mode & 07)) {
        openaikey_say("warning: %s is readable by every user (mode %04o); the new file "
                      "keeps that mode", path, (unsigned)file->mode);
    }
    return why ? apr_pstrcat(pool, path, " ", why, NULL) : NULL;
}

/* Replaces the file by one holding value (and the old trailer), with the
 * old owner and mode, in one rename: a reader sees the old or the new file,
 * never a part of one. */
static const char *write_key_file(apr_pool_t *pool, const key_file_t *file, const char *value)
{
    const char *content = apr_pstrcat(pool, value, file->trailer, NULL);
    apr_size_t len = strlen(content);
    int fd = -1;
    int error = 0;
    const char *why = NULL;

    /* Under the lock: what is there is what a killed rotation left. */
    unlinkat(file->dir_fd, TEMP_NAME, 0);
    fd = openat(file->dir_fd, TEMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0) {
        why = "cannot create a file beside it";
        error = errno;
    }
    /* Owner and mode before the key goes in: no moment with other rights. */
    else if (fchown(fd, file->uid, file->gid) || fchmod(fd, file->mode)) {
        why = "cannot give the new file the old one's owner and mode";
        error = errno;
    }
    else if (write(fd, content, len) != (ssize_t)len || fsync(fd)) {
        why = "cannot write the new file";
        error = errno ? errno : ENOSPC;
    }
    if (fd >= 0 && close(fd) && !why) {
        why = "cannot write the new file";
        error = errno;
    }
    if (!why && renameat(file->dir_fd, TEMP_NAME, file->dir_fd, file->base)) {
        why = "cannot rename the new file into place";
        error = errno;
    }
    if (why && fd >= 0) {
        unlinkat(file->dir_fd, TEMP_NAME, 0);
    }
    if (!why) {
        /* The rename itself must outlive a crash. */
        fsync(file->dir_fd);
    }
    return why ? apr_psprintf(pool, "%s %s: %s", file->path, why, strerror(error)) : NULL;
}

/* Whether the path names, as httpd will open it, the file written through
 * the directory. */
static int path_still_names_file(const key_file_t *file)
{
    struct stat by_path, written;

    return !stat(file->path, &by_path) &&
           !fstatat(file->dir_fd, file->base, &written, AT_SYMLINK_NOFOLLOW) &&
           by_path.st_dev == written.st_dev && by_path.st_ino == written.st_ino;
}

/* One rotation at a time: a second one stops at once. The lock is a file
 * only this user can open (root's in /run, else beside the key), held
 * until pool goes. */
static const char *lock_rotation(apr_pool_t *pool, const key_file_t *file)
{
    int root = geteuid() == 0;
    int fd = pool_fd(pool, openat(root ? AT_FDCWD : file->dir_fd, root ? ROOT_LOCK : USER_LOCK,
                                  O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
    struct stat st;
    const char *why = NULL;

    if (fd < 0 || fstat(fd, &st) || st.st_uid != geteuid() || !S_ISREG(st.st_mode)) {
        why = apr_pstrcat(pool, "cannot take the rotation's lock ",
                          root ? ROOT_LOCK : USER_LOCK, NULL);
    }
    else if (flock(fd, LOCK_EX | LOCK_NB)) {
        why = "another rotation is running";
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
    /* Not the Admin API's connections, nor anything else of ours. */
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
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
           : done < 0 ? apr_pstrcat(pool, "cannot learn how the reload ended: ", strerror(errno),
                                    NULL)
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
    int both_left;          /* both keys live: one is for the admin to delete */
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

/* Deletes, with the old key, what the creation made: the key of the name it
 * asked for (unique to this rotation), never the old key. */
static void discard_new_key(rotation_t *rot)
{
    apr_array_header_t *keys = NULL;
    okey_err_t *err = okey_openai_admin_keys(&rot->old_api, rot->pool, &keys);
    int i;

    for (i = 0; !err && i < keys->nelts; i++) {
        const okey_openai_admin_key_t *key = &APR_ARRAY_IDX(keys, i, okey_openai_admin_key_t);
        int made = (rot->new_key && !strcmp(key->id, rot->new_key->id)) ||
                   (key->name && !strcmp(key->name, rot->new_name));
        okey_err_t *failed = NULL;

        if (made && strcmp(key->id, rot->old_id)) {
            failed = okey_openai_delete_admin_key(&rot->old_api, rot->pool, key->id);
            openaikey_say(failed ? "the new key %s could not be deleted: delete it by hand"
                                 : "deleted the new key %s", key->id);
        }
    }
    if (err) {
        openaikey_say("could not look for the new key (named \"%s\") to delete it: %s",
                      rot->new_name, err->log_msg);
    }
}

static const char *create_new_key(rotation_t *rot)
{
    char host[256] = "";
    const char *tag = NULL;
    okey_err_t *err = okey_random_b64url(rot->pool, 6, &tag);
    const char *why = err ? "cannot draw random bytes for the new key's name" : NULL;

    gethostname(host, sizeof(host) - 1);
    if (!why) {
        /* Unique, so that what an unanswered creation made is found by name. */
        rot->new_name = apr_psprintf(rot->pool, "openaikey %s %s %s", host,
                                     okey_iso8601(rot->pool, (apr_int64_t)time(NULL)), tag);
        err = okey_openai_create_admin_key(&rot->old_api, rot->pool, rot->new_name,
                                           rot->args->expires_in, &rot->new_key);
        why = err ? api_error(rot->pool, "creating the new Admin key", err) : NULL;
        if (!why && (!strcmp(rot->new_key->id, rot->old_id) ||
                     !key_shaped(rot->new_key->value, strlen(rot->new_key->value)))) {
            why = "creating the new Admin key: OpenAI answered with the old key's id or a "
                  "value that is not a key";
        }
        if (why) {
            discard_new_key(rot);
        }
    }
    if (!why) {
        rot->new_api.management_key = rot->new_key->value;
        openaikey_say("created the new Admin key %s", rot->new_key->id);
    }
    return why;
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

/* After a failed reload: the old file back, and a reload again, so that
 * the server surely reads the old key before the new one goes. Where
 * either fails, the server may hold either key: both stay. */
static void undo_switch(rotation_t *rot)
{
    const char *unrestored = write_key_file(rot->pool, &rot->file, rot->file.value);
    const char *again = unrestored ? NULL : run_reload(rot->pool, rot->args->reload);

    rot->both_left = unrestored || again;
    if (unrestored) {
        openaikey_say("the old key could not be put back (%s): %s holds the new key %s, "
                      "which works, and the old key %s is kept too", unrestored,
                      rot->file.path, rot->new_key->id, rot->old_id);
    }
    else if (again) {
        openaikey_say("put the old key back in %s, but the reload failed again (%s): the "
                      "server may hold either key, so both are kept; once it has reloaded, "
                      "delete the new key %s by hand", rot->file.path, again, rot->new_key->id);
    }
    else {
        openaikey_say("put the old key back in %s and reloaded again", rot->file.path);
    }
}

static const char *switch_over(rotation_t *rot)
{
    const char *why = write_key_file(rot->pool, &rot->file, rot->new_key->value);

    if (!why) {
        openaikey_say("wrote the new key to %s", rot->file.path);
        why = run_reload(rot->pool, rot->args->reload);
        if (why) {
            undo_switch(rot);
        }
        else if (!path_still_names_file(&rot->file)) {
            why = apr_psprintf(rot->pool, "%s no longer names the file written (a directory "
                               "on its path was replaced): both keys are kept; delete by hand "
                               "the one the server does not read (%s is the new one)",
                               rot->file.path, rot->new_key->id);
            rot->both_left = 1;
        }
    }
    if (why && !rot->both_left) {
        discard_new_key(rot);
    }
    return why;
}

static int rotate(apr_pool_t *pool, const rotate_args_t *args)
{
    rotation_t rot;
    okey_http_options_t http_opts = {API_TIMEOUT, NULL, NULL};
    sigset_t held;
    const char *why;
    okey_err_t *err = NULL;

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
        why = lock_rotation(pool, &rot.file);
    }
    if (!why) {
        openaikey_say("rotating the Admin key in %s through %s", rot.file.path,
                      rot.old_api.api_base);
        why = find_old_key(&rot);
    }
    /* From the creation on, a signal waits for the end (each step is
     * bounded): stopping between two would leave a key no file holds. */
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGHUP);
    sigaddset(&held, SIGQUIT);
    sigprocmask(SIG_BLOCK, &held, NULL);
    why = why ? why : create_new_key(&rot);
    why = why ? why : prove_new_key(&rot);
    why = why ? why : switch_over(&rot);
    if (!why) {
        err = okey_openai_delete_admin_key(&rot.new_api, pool, rot.old_id);
        why = err ? apr_psprintf(pool, "the new key %s is in %s and the server reloaded, but "
                                 "the old key %s could not be deleted: %s; delete it by hand",
                                 rot.new_key->id, rot.file.path, rot.old_id, err->log_msg)
                  : NULL;
        rot.both_left = err != NULL;
    }
    if (why) {
        openaikey_say("%s%s", why, rot.both_left ? ""
                                   : "; nothing changed: the old key stays in place");
    }
    else {
        openaikey_say("rotated: %s holds the new key %s; the old key %s is deleted",
                      rot.file.path, rot.new_key->id, rot.old_id);
    }
    return !why ? 0 : rot.both_left ? EXIT_BOTH_LEFT : EXIT_NOTHING_CHANGED;
}

int openaikey_admin_key(apr_pool_t *pool, int argc, const char *const *argv)
{
    rotate_args_t args;
    const char *wrong = read_rotate_args(pool, argc, argv, &args);
    struct rlimit no_core = {0, 0};
    int status = EXIT_USAGE;

    /* Both keys are in this process's memory: no core file, no ptrace by
     * other processes of this user. */
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0);
    /* Ignored SIGCHLD (a parent's choice, inherited) would reap the reload
     * before its exit status could be read. */
    signal(SIGCHLD, SIG_DFL);
    if (wrong) {
        openaikey_say("%s", wrong);
        fputs(ROTATE_USAGE, stderr);
    }
    else {
        status = rotate(pool, &args);
    }
    return status;
}
