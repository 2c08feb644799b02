/* The key cache: $XDG_CACHE_HOME/openaikey (or ~/.cache/openaikey), a
 * directory of mode 0700 with one file of mode 0600 per server, and
 * "last", the server of the newest sign-in and how it went. Files are written whole under a
 * temporary name and renamed, so a reader never sees half of one. */
#include "openaikey.h"

#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX 16384

/* The cache directory, made when missing; NULL with *why set when there is
 * none that only this user can enter. */
static const char *cache_dir(apr_pool_t *pool, int create, const char **why)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    const char *base = xdg && xdg[0] == '/' ? xdg
                       : home && home[0] == '/' ? apr_pstrcat(pool, home, "/.cache", NULL)
                       : NULL;
    const char *dir = base ? apr_pstrcat(pool, base, "/openaikey", NULL) : NULL;
    struct stat st;

    *why = NULL;
    if (!dir) {
        *why = "neither XDG_CACHE_HOME nor HOME names a directory";
    }
    else if (create && mkdir(base, 0700) && errno != EEXIST) {
        *why = apr_psprintf(pool, "cannot create %s: %s", base, strerror(errno));
    }
    else if (create && mkdir(dir, 0700) && errno != EEXIST) {
        *why = apr_psprintf(pool, "cannot create %s: %s", dir, strerror(errno));
    }
    else if (lstat(dir, &st)) {
        *why = apr_psprintf(pool, "%s: %s", dir, strerror(errno));
    }
    else if (!S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
        *why = apr_psprintf(pool, "%s is not a directory of this user", dir);
    }
    else if ((st.st_mode & 077) && chmod(dir, 0700)) {
        *why = apr_psprintf(pool, "cannot make %s private: %s", dir, strerror(errno));
    }
    return *why ? NULL : dir;
}

/* The file that holds server's key: named by a digest, so that any URL
 * makes a plain file name. */
static const char *key_file(apr_pool_t *pool, const char *dir, const char *server)
{
    unsigned char digest[32];

    okey_sha256(server, strlen(server), digest);
    return apr_pstrcat(pool, dir, "/key-", okey_b64url_encode(pool, digest, 12), ".json",
                       NULL);
}

/* The text of path when it is a regular file of this user that no one
 * else can read or write, else NULL. */
static const char *read_private(apr_pool_t *pool, const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char *text = apr_palloc(pool, FILE_MAX + 1);
    struct stat st;
    ssize_t len = -1;

    if (fd >= 0 && !fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == getuid() &&
        !(st.st_mode & 077)) {
        len = read(fd, text, FILE_MAX);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (len >= 0) {
        text[len] = '\0';
    }
    return len >= 0 ? text : NULL;
}

/* Writes text to path whole, mode 0600, by renaming a temporary file over
 * it. NULL, or why not. */
static const char *write_private(apr_pool_t *pool, const char *dir, const char *path,
                                 const char *text)
{
    char *temp = apr_pstrcat(pool, dir, "/.tmp-XXXXXX", NULL);
    int fd = mkstemp(temp);
    apr_size_t len = strlen(text);
    int ok = fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len &&
             fsync(fd) == 0;
    const char *why = NULL;

    if (fd >= 0 && close(fd)) {
        ok = 0;
    }
    if (!ok || rename(temp, path)) {
        why = apr_psprintf(pool, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) {
            unlink(temp);
        }
    }
    return why;
}

openaikey_key_t *openaikey_cache_get(apr_pool_t *pool, const char *server, apr_int64_t now)
{
    const char *why = NULL;
    const char *dir = cache_dir(pool, 0, &why);
    const char *text = dir ? read_private(pool, key_file(pool, dir, server)) : NULL;
    openaikey_key_t *key = text ? openaikey_key_from_json(pool, server, text, &why) : NULL;

    return key && key->expires_at - now > OPENAIKEY_EXPIRY_MARGIN ? key : NULL;
}

const char *openaikey_cache_put(apr_pool_t *pool, const openaikey_key_t *key,
                                const openaikey_args_t *args)
{
    const char *why = NULL;
    const char *dir = cache_dir(pool, 1, &why);
    json_t *doc = dir ? okey_json_own(pool, json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:s}", "server", key->server, "api_key", key->api_key,
        "expires_at", (json_int_t)key->expires_at, "project", key->project, "email",
        key->email, "service_account_id", key->service_account_id)) : NULL;

    if (doc) {
        why = write_private(pool, dir, key_file(pool, dir, key->server),
                            okey_json_dump(pool, doc));
    }
    if (doc && !why) {
        why = write_private(pool, dir, apr_pstrcat(pool, dir, "/last", NULL),
                            okey_json_dump(pool, okey_json_own(pool, json_pack(
                                "{s:s, s:b, s:s?, s:b}", "server", key->server, "issue",
                                args->issue != NULL, "user", args->user, "negotiate",
                                args->negotiate))));
    }
    return why;
}

int openaikey_cache_last(apr_pool_t *pool, openaikey_args_t *args)
{
    const char *why = NULL;
    const char *dir = cache_dir(pool, 0, &why);
    const char *text = dir ? read_private(pool, apr_pstrcat(pool, dir, "/last", NULL)) : NULL;
    json_t *last = text ? okey_json_parse(pool, text, strlen(text), NULL) : NULL;
    const char *server = okey_json_str(last, "server");
    int issue = json_is_true(json_object_get(last, "issue"));

    if (server) {
        args->server = issue ? NULL : server;
        args->issue = issue ? server : NULL;
        args->user = okey_json_str(last, "user");
        args->negotiate = json_is_true(json_object_get(last, "negotiate"));
    }
    return server != NULL;
}

static apr_status_t unlock(void *data)
{
    close(*(int *)data);
    return APR_SUCCESS;
}

const char *openaikey_cache_lock(apr_pool_t *pool, int seconds)
{
    const char *why = NULL;
    const char *dir = cache_dir(pool, 1, &why);
    int *fd = apr_palloc(pool, sizeof(*fd));
    time_t deadline = time(NULL) + seconds;
    int locked = 0;
    int told = 0;

    *fd = dir ? open(apr_pstrcat(pool, dir, "/lock", NULL),
                     O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
    if (*fd >= 0) {
        apr_pool_cleanup_register(pool, fd, unlock, apr_pool_cleanup_null);
    }
    while (*fd >= 0 && !(locked = flock(*fd, LOCK_EX | LOCK_NB) == 0) && !openaikey_stop &&
           time(NULL) < deadline) {
        if (!told++) {
            openaikey_say("waiting for another openaikey to finish signing in");
        }
        usleep(100000);
    }
    if (!why && !locked) {
        why = openaikey_stop ? "cancelled"
              : *fd < 0 ? apr_psprintf(pool, "cannot open the cache's lock: %s", strerror(errno))
              : "another openaikey is still signing in";
    }
    return why;
}
