/* Each key server's ledger (src/ledger.h): a shared-memory segment made
 * once per key server for the parent's life, and, with OpenAIKeyLedger
 * redis://..., a Redis that several servers share, with the segment as its
 * fallback. Made in post_config; each child reopens the mutex. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "unixd.h"
#include "util_mutex.h"

#include <apr_file_info.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mod_openaikey.h"
#include "src/ledger_redis.h"

APLOG_USE_MODULE(openaikey);

#define LEDGER_MUTEX_TYPE "openaikey-ledger"
#define LEDGER_IPC_KEY "mod_openaikey ledger ipc"

/* The segments of the key servers, kept in the parent's process pool and
 * found again by what each key server is, its size and the layout: a
 * graceful restart keeps every record. A segment no configuration uses any
 * more is destroyed in the parent; children of older generations keep
 * their own mapping of it until they exit. */
#define SEGMENTS_KEY "mod_openaikey ledger segments 1"

typedef struct {
    apr_shm_t *shm;
    apr_uint32_t generation;  /* the last configuration that used it */
} segment_t;

typedef struct {
    apr_hash_t *segments;     /* name -> segment_t *, in the process pool */
    apr_uint32_t generation;
} segments_t;

static segments_t *segments_of(server_rec *s)
{
    segments_t *kept = ap_retained_data_get(SEGMENTS_KEY);

    if (!kept) {
        kept = ap_retained_data_create(SEGMENTS_KEY, sizeof(*kept));
        kept->segments = apr_hash_make(s->process->pool);
    }
    return kept;
}

/* Destroys the segments the configuration just loaded does not use. */
static void drop_unused(segments_t *kept)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, kept->segments); hi; hi = apr_hash_next(hi)) {
        const void *name;
        void *value;
        segment_t *segment;

        apr_hash_this(hi, &name, NULL, &value);
        segment = value;
        if (segment->generation != kept->generation) {
            apr_shm_destroy(segment->shm);
            apr_hash_set(kept->segments, name, APR_HASH_KEY_STRING, NULL);
        }
    }
}

/* Per configuration: the mutex every shared-memory ledger takes. */
typedef struct {
    apr_global_mutex_t *mutex;
} ledger_ipc_t;

static ledger_ipc_t *ledger_ipc(server_rec *s)
{
    void *ipc = NULL;

    apr_pool_userdata_get(&ipc, LEDGER_IPC_KEY, s->process->pconf);
    return ipc;
}

void okey_ledger_register(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, LEDGER_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT, 0);
}

static const char *hex(apr_pool_t *pool, const unsigned char *bytes, apr_size_t len)
{
    char *text = apr_palloc(pool, 2 * len + 1);

    ap_bin2hex(bytes, len, text);
    return text;
}

/* The key server's segment, made on first use, or NULL (logged). */
static void *segment(server_rec *s, const okey_server_conf_t *conf, apr_size_t size)
{
    apr_pool_t *process = s->process->pool;
    apr_uint32_t capacity = okey_ledger_shm_capacity(conf->cfg->ledger_size);
    const char *layout = okey_ledger_shm_layout(s->process->pconf);
    segments_t *kept = segments_of(s);
    char name[256];
    segment_t *found;
    apr_status_t rv = APR_SUCCESS;

    apr_snprintf(name, sizeof(name), "%s %u %s", layout, capacity,
                 hex(s->process->pconf, conf->slot_id, sizeof(conf->slot_id)));
    found = apr_hash_get(kept->segments, name, APR_HASH_KEY_STRING);
    if (!found) {
        found = apr_pcalloc(process, sizeof(*found));
        rv = apr_shm_create(&found->shm, size, NULL, process);
        if (rv == APR_SUCCESS) {
            okey_ledger_shm_init(apr_shm_baseaddr_get(found->shm), capacity, layout);
            apr_hash_set(kept->segments, apr_pstrdup(process, name), APR_HASH_KEY_STRING,
                         found);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, OKEY_LOGNO(420) "cannot make the "
                         "ledger's shared memory (%" APR_SIZE_T_FMT " bytes for "
                         "OpenAIKeyLedgerSize %u) of %s", size, capacity,
                         conf->cfg->server_name);
            found = NULL;
        }
    }
    if (found) {
        found->generation = kept->generation;
    }
    return found ? apr_shm_baseaddr_get(found->shm) : NULL;
}

/* Where the fleet's records live in Redis, and the key that signs them:
 * both derived from the passphrase every server of the fleet shares. */
static void redis_names(apr_pool_t *pconf, const okey_server_conf_t *conf,
                        const char **prefix, unsigned char mac_key[32])
{
    unsigned char deployment[32];

    okey_state_key_mac(conf->state_key, apr_pstrcat(pconf, "ledger prefix\n",
                                                    conf->cfg->api_base, "\n",
                                                    conf->cfg->project, NULL),
                       deployment);
    okey_state_key_mac(conf->state_key, "ledger records", mac_key);
    *prefix = apr_pstrcat(pconf, "okey:", hex(pconf, deployment, 8), ":", NULL);
}

static int redis_ledger(apr_pool_t *pconf, okey_server_conf_t *conf,
                        okey_ledger_t *fallback)
{
    const char *prefix = NULL;
    const char *why = NULL;
    unsigned char mac_key[32];
    okey_ledger_t *redis = NULL;
    apr_status_t rv;

    redis_names(pconf, conf, &prefix, mac_key);
    rv = okey_ledger_redis_create(pconf, conf->cfg->ledger, conf->cfg->ledger_password,
                                  prefix, mac_key, apr_time_from_sec(conf->cfg->timeout),
                                  &redis, &why);
    if (rv == APR_SUCCESS) {
        /* The health in the segment becomes Redis's alone: were the
         * fallback to keep it too, each answer of the fallback would mark
         * Redis up again while it is down. */
        redis->fallback = fallback;
        redis->health = fallback->health;
        redis->logger = fallback->logger;
        fallback->health = NULL;
        conf->ledger = redis;
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL, OKEY_LOGNO(421)
                     "mod_openaikey: OpenAIKeyLedger (environment OPENAIKEY_LEDGER) in "
                     "server %s: %s", conf->cfg->server_name, why ? why : "is not usable");
    }
    return rv == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* --- the state directories ---------------------------------------------------------- */

/* Whether the key server keeps what outlives a stop in files: an shm
 * ledger (Redis keeps it itself) that keeps spend. */
static int keeps_files(const okey_server_conf_t *conf)
{
    return conf->cfg && conf->slot >= 0 && !strcmp(conf->cfg->ledger, "shm") &&
           conf->cfg->usage_interval > 0;
}

/* dir without the slashes that end it, so that two spellings compare equal. */
static const char *trimmed(apr_pool_t *pool, const char *dir)
{
    apr_size_t len = strlen(dir);

    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    return apr_pstrmemdup(pool, dir, len);
}

/* The key server's name as a file's: what is not [A-Za-z0-9_.-] becomes _. */
static const char *file_name_of(apr_pool_t *pool, const char *name)
{
    char *out = apr_pstrdup(pool, name);
    char *c;

    for (c = out; *c; c++) {
        if (!apr_isalnum(*c) && *c != '.' && *c != '-') {
            *c = '_';
        }
    }
    return out[0] == '.' ? apr_pstrcat(pool, "_", out, NULL) : out;
}

/* Why the directory open at fd may not hold the ledger's files, or NULL:
 * it must belong to root or to the server's User (to this user, when not
 * started as root) and be writable by its owner alone. */
static const char *dir_refused(apr_pool_t *ptemp, int fd)
{
    struct stat info;
    uid_t user = geteuid() == 0 ? ap_unixd_config.user_id : geteuid();

    return fstat(fd, &info) ? apr_pstrdup(ptemp, strerror(errno))
           : info.st_uid != 0 && info.st_uid != user
             ? apr_psprintf(ptemp, "it belongs to uid %ld, neither root nor the server's User",
                            (long)info.st_uid)
           : (info.st_mode & (S_IWGRP | S_IWOTH))
             ? "it is writable by others than its owner; make it mode 0700" : NULL;
}

/* Makes dir, when missing, and hands it to the server's User alone
 * (for_user), or keeps it root's, readable by all so that the User's
 * directories in it can be reached. Root works on the directory it opened
 * without following a link, never on a path the User could have swapped
 * for a link to somewhere else. The reason when it cannot be. */
static const char *own_dir(apr_pool_t *ptemp, const char *dir, int for_user)
{
    apr_status_t rv = apr_dir_make_recursive(dir, APR_FPROT_UREAD | APR_FPROT_UWRITE |
                                             APR_FPROT_UEXECUTE, ptemp);
    int fd = rv == APR_SUCCESS ? open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    const char *why = rv != APR_SUCCESS ? NULL
                      : fd < 0 && (errno == ELOOP || errno == ENOTDIR)
                        ? "it is a symbolic link or not a directory"
                      : fd < 0 ? apr_pstrdup(ptemp, strerror(errno)) : dir_refused(ptemp, fd);
    char cause[120];

    if (!why && rv == APR_SUCCESS && geteuid() == 0 &&
        (for_user ? fchown(fd, ap_unixd_config.user_id, ap_unixd_config.group_id) ||
                    fchmod(fd, S_IRWXU)
                  : fchown(fd, 0, 0) ||
                    fchmod(fd, S_IRWXU | S_IRGRP | S_IXGRP | S_IROTH | S_IXOTH))) {
        why = apr_pstrdup(ptemp, strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    return rv != APR_SUCCESS ? apr_pstrdup(ptemp, apr_strerror(rv, cause, sizeof(cause))) : why;
}

/* The key servers that name each directory (const char * -> int *). */
static apr_hash_t *named_dirs(apr_pool_t *ptemp, server_rec *main_server)
{
    apr_hash_t *named = apr_hash_make(ptemp);
    server_rec *s;

    for (s = main_server; s; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        const char *dir = keeps_files(conf) ? trimmed(ptemp, conf->cfg->state_dir) : NULL;
        int *count = dir ? apr_hash_get(named, dir, APR_HASH_KEY_STRING) : NULL;

        if (dir && !count) {
            count = apr_pcalloc(ptemp, sizeof(*count));
            apr_hash_set(named, dir, APR_HASH_KEY_STRING, count);
        }
        if (count) {
            ++*count;
        }
    }
    return named;
}

/* The key server's state directory, made: its OpenAIKeyStateDir, or, when
 * other key servers of this httpd name the same one (as they do by
 * default), a subdirectory of it named after the key server (host_port),
 * which stays the same across restarts: two key servers in one directory
 * would each read the other's key attributions and spend as its own.
 * *why when it cannot be made or is another's (taken: dir -> whose). */
static const char *state_dir(apr_pool_t *pconf, apr_pool_t *ptemp, const okey_config_t *cfg,
                             apr_hash_t *named, apr_hash_t *taken, const char **why)
{
    const char *top = trimmed(ptemp, cfg->state_dir);
    const int *count = apr_hash_get(named, top, APR_HASH_KEY_STRING);
    int shared = count && *count > 1;
    const char *dir = shared ? apr_pstrcat(pconf, top, "/",
                                           file_name_of(ptemp, cfg->server_name), NULL)
                             : apr_pstrdup(pconf, top);
    const char *whose = apr_hash_get(taken, dir, APR_HASH_KEY_STRING);

    *why = whose ? apr_pstrcat(ptemp, "it is the directory of ", whose, " too", NULL) : NULL;
    *why = !*why && shared ? own_dir(ptemp, top, 0) : *why;
    *why = !*why ? own_dir(ptemp, dir, 1) : *why;
    apr_hash_set(taken, dir, APR_HASH_KEY_STRING, cfg->server_name);
    return dir;
}

/* Each spend-keeping shm key server's state directory, made (server_rec *
 * -> const char *); NULL when one cannot be (logged). */
static apr_hash_t *state_dirs(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server)
{
    apr_hash_t *dirs = apr_hash_make(pconf);
    apr_hash_t *named = named_dirs(ptemp, main_server);
    apr_hash_t *taken = apr_hash_make(ptemp);
    server_rec *s;

    for (s = main_server; s && dirs; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);
        const char *why = NULL;
        const char *dir = keeps_files(conf)
                          ? state_dir(pconf, ptemp, conf->cfg, named, taken, &why) : NULL;
        server_rec **key = apr_palloc(pconf, sizeof(*key));

        *key = s;
        if (why) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, NULL, OKEY_LOGNO(423)
                         "mod_openaikey: OpenAIKeyStateDir %s of server %s: %s", dir,
                         conf->cfg->server_name, why);
            dirs = NULL;
        }
        else if (dir) {
            apr_hash_set(dirs, key, sizeof(*key), dir);
        }
    }
    return dirs;
}

/* The key server's ledger: its segment, then Redis in front when asked. */
static int make_ledger(apr_pool_t *pconf, server_rec *s, okey_server_conf_t *conf,
                       ledger_ipc_t *ipc, const char *state_dir)
{
    apr_size_t size = okey_ledger_shm_size(okey_ledger_shm_capacity(conf->cfg->ledger_size));
    char *base = segment(s, conf, size + sizeof(okey_ledger_health_t));
    okey_ledger_t *shm = NULL;
    int status = base ? OK : HTTP_INTERNAL_SERVER_ERROR;

    if (status == OK &&
        okey_ledger_shm_attach(pconf, base, size, &ipc->mutex, state_dir, &conf->logger,
                               &shm)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, OKEY_LOGNO(422) "the ledger's shared "
                     "memory of %s has another layout", conf->cfg->server_name);
        status = HTTP_INTERNAL_SERVER_ERROR;
    }
    if (status == OK) {
        /* Its health is the key server's, across children: it sits in the segment. */
        shm->health = (okey_ledger_health_t *)(base + size);
        shm->health->up = 1;
        shm->logger = &conf->logger;
        conf->ledger = shm;
    }
    if (status == OK && strcmp(conf->cfg->ledger, "shm")) {
        status = redis_ledger(pconf, conf, shm);
    }
    return status;
}

int okey_ledger_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server)
{
    ledger_ipc_t *ipc = apr_pcalloc(pconf, sizeof(*ipc));
    apr_status_t rv = ap_global_mutex_create(&ipc->mutex, NULL, LEDGER_MUTEX_TYPE, NULL,
                                             main_server, pconf, 0);
    apr_hash_t *dirs = state_dirs(pconf, ptemp, main_server);
    int status = rv == APR_SUCCESS && dirs ? OK : HTTP_INTERNAL_SERVER_ERROR;
    server_rec *s;

    segments_t *kept = segments_of(main_server);

    kept->generation++;
    apr_pool_userdata_set(ipc, LEDGER_IPC_KEY, apr_pool_cleanup_null, pconf);
    for (s = main_server; s && status == OK; s = s->next) {
        okey_server_conf_t *conf = okey_server_conf(s);

        if (conf->cfg && conf->slot >= 0) {
            status = make_ledger(pconf, s, conf, ipc,
                                 apr_hash_get(dirs, &s, sizeof(s)));
        }
    }
    if (status == OK) {
        drop_unused(kept);
    }
    return status;
}

apr_status_t okey_ledger_child_init(apr_pool_t *pchild, server_rec *main_server)
{
    ledger_ipc_t *ipc = ledger_ipc(main_server);

    return ipc ? apr_global_mutex_child_init(&ipc->mutex,
                                             apr_global_mutex_lockfile(ipc->mutex), pchild)
               : APR_EGENERAL;
}
