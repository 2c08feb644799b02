/* The ledger a fleet shares through Redis: see ledger_redis.h for the keys.
 *
 * A record is the text
 *   v1|<added>|<project id>|<tag>|<named>|<created_at>|<expires>|<mac>
 * added: when record() made it (usec), 0 from a fill; mac: base64url of
 * HMAC-SHA256 under the ledger's key over the prefix, the person's hash,
 * the field's id and what precedes "|<mac>". The Lua scripts read only
 * added and the project id; only C judges a record, and one that does not
 * verify is never returned, and the next fill removes it. */
#include "ledger_redis.h"

#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "lease.h"
#include "name.h"

#define IDLE_MAX 64
#define BACKOFF_FIRST apr_time_from_sec(1)
#define BACKOFF_LAST apr_time_from_sec(30)
#define FILL_BATCH 500
#define SCAN_COUNT "1000"
/* SCAN calls per sweep: each returns about SCAN_COUNT keys, so this covers
 * far more persons than any ledger holds, yet ends should the cursor not. */
#define SCAN_MAX 100000
#define SUSPECTS_MAX "10000"
#define GONE_KEEP apr_time_from_sec(3600)
#define LOCK_POLL apr_time_from_msec(50)
#define PERSON_HEX 33
#define MAC_B64 44
#define RECORD_FIELDS 8
/* Writes a record tries, each after the newest rank the last one met:
 * each try that fails lost to another record of the same person, and one
 * person signs in far fewer times at once than this. */
#define RECORD_TRIES 16
/* How far past the newest, in microseconds, a record tried again lands. */
#define RECORD_SPREAD 997u
/* Entries of one kind read at once: beyond any key server's key
 * attributions or spend documents, short of a reply that exhausts memory. */
#define STORE_ENTRIES_MAX "200000"
/* Names per command that writes or removes entries. */
#define STORE_BATCH 100
/* How long a replace's hash, written aside, outlives a replace that died. */
#define STORE_ASIDE_PX "600000"

/* --- the scripts ------------------------------------------------------------------ */

enum {
    S_CLAIM, S_RENEW, S_RELEASE, S_DUE_IN, S_RECORD, S_FORGET, S_FILL_PUT, S_REPLACE,
    S_SWEEP, S_MAY_LIST, S_MARK, S_DEL_IF, S_SUSPECTS_DUE, S_STORE_ALL, S_STORE_SWAP, S_COUNT
};

/* A record's rank, as okey_terms_rank gives it. Ranks are microseconds
 * since 1970, well inside the integers a Lua number holds exactly. */
#define LUA_RANK \
    "local function rank(v)\n" \
    "  local a, c = string.match(v, '^v1|(%d+)|[^|]*|[^|]*|[^|]*|(%-?%d+)|')\n" \
    "  a, c = num(a) or 0, num(c) or 0\n" \
    "  if a > 0 then return a end\n" \
    "  if c > 0 and c < 9000000000 then return c * 1000000 end\n" \
    "  return 0\n" \
    "end\n"
/* OKEY_LEASE_SKEW in microseconds. */
#define LUA_SKEW "1000000"
#define LUA_NUM "local function num(v) if v then return tonumber(v) end return nil end\n"
/* Whether a lease (token, expires) is held at now for length: as
 * okey_lease_free, a lease further ahead than length and the skew is free. */
#define LUA_HELD \
    "local function held(l, now, length)\n" \
    "  local e = num(l[2])\n" \
    "  return l[1] and e and e > now and e - now <= length + " LUA_SKEW "\n" \
    "end\n"
/* Whether a reap is due at now (usec) by the interval, the request, or the
 * first suspect; KEYS[2] reap, KEYS[3] suspects. Returns the wait (s). */
#define LUA_WAIT \
    "local function wait(now, interval, now_sec)\n" \
    "  local r = redis.call('HMGET', KEYS[2], 'last', 'requested')\n" \
    "  local last = num(r[1])\n" \
    "  local w = 0\n" \
    "  if r[2] ~= '1' and last and now + " LUA_SKEW " >= last then\n" \
    "    w = math.max(0, math.ceil((last + interval - now) / 1000000))\n" \
    "  end\n" \
    "  if w > 0 then\n" \
    "    local s = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')\n" \
    "    if s[2] then w = math.min(w, math.max(0, tonumber(s[2]) - now_sec)) end\n" \
    "  end\n" \
    "  return w\n" \
    "end\n"

static const char *const scripts[S_COUNT] = {
    /* S_CLAIM: KEYS lease, reap, suspects; ARGV now, interval (usec),
     * length, force, token, expires, now_sec, px */
    LUA_NUM LUA_HELD LUA_WAIT
    "local now = tonumber(ARGV[1])\n"
    "if held(redis.call('HMGET', KEYS[1], 'token', 'expires'), now, tonumber(ARGV[3])) then\n"
    "  return 0\n"
    "end\n"
    "if ARGV[4] ~= '1' and wait(now, tonumber(ARGV[2]), tonumber(ARGV[7])) > 0 then\n"
    "  return 0\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'token', ARGV[5], 'expires', ARGV[6])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[8])\n"
    "redis.call('HSET', KEYS[2], 'last', ARGV[1], 'requested', '0')\n"
    "return 1\n",
    /* S_RENEW: KEYS lease; ARGV token, now, length, expires, px */
    LUA_NUM LUA_HELD
    "local l = redis.call('HMGET', KEYS[1], 'token', 'expires')\n"
    "if l[1] ~= ARGV[1] or not held(l, tonumber(ARGV[2]), tonumber(ARGV[3])) then\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'expires', ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
    "return 1\n",
    /* S_RELEASE: KEYS lease; ARGV token */
    "if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n",
    /* S_DUE_IN: KEYS lease, reap, suspects; ARGV now, interval (usec),
     * now_sec, interval (s), the longest lease */
    LUA_NUM LUA_HELD LUA_WAIT
    "local now = tonumber(ARGV[1])\n"
    "local w = wait(now, tonumber(ARGV[2]), tonumber(ARGV[3]))\n"
    "local l = redis.call('HMGET', KEYS[1], 'token', 'expires')\n"
    "if held(l, now, tonumber(ARGV[5])) then\n"
    "  w = math.max(w, math.ceil((tonumber(l[2]) - now) / 1000000))\n"
    "  w = math.min(w, tonumber(ARGV[4]))\n"
    "  return {w, 1}\n"
    "end\n"
    "return {w, 0}\n",
    /* S_RECORD: KEYS person, filled, count; ARGV id, record, its added,
     * the latest rank believed. A record that would not rank after every
     * record of the person is not written: {-1, the highest rank} asks for
     * one added later. Ranks past the latest believed are not counted: the
     * script cannot verify a record, and one forged far ahead would push
     * every later record of the person after it. */
    LUA_NUM LUA_RANK
    "local newest, latest = 0, tonumber(ARGV[4])\n"
    "for _, v in ipairs(redis.call('HVALS', KEYS[1])) do\n"
    "  local k = rank(v)\n"
    "  if k <= latest then newest = math.max(newest, k) end\n"
    "end\n"
    "if tonumber(ARGV[3]) <= newest then return {-1, newest} end\n"
    "if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then\n"
    "  redis.call('INCR', KEYS[3])\n"
    "end\n"
    "return {redis.call('EXISTS', KEYS[2]), redis.call('HGETALL', KEYS[1])}\n",
    /* S_FORGET: KEYS person, gone, count; ARGV id, project ('': any),
     * now, floor */
    LUA_NUM
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if v and (ARGV[2] == '' or string.match(v, '^v1|[^|]*|([^|]*)|') == ARGV[2]) then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  if (num(redis.call('GET', KEYS[3])) or 0) > 0 then redis.call('DECR', KEYS[3]) end\n"
    "end\n"
    "local g = num(redis.call('ZSCORE', KEYS[2], ARGV[1]))\n"
    "if not g or g < tonumber(ARGV[3]) then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])\n"
    "return 1\n",
    /* S_FILL_PUT: KEYS gone, count, person...; ARGV started, then id and
     * record for each person. Returns, for each record kept because it
     * was added since started, or is the listed one but for when it was
     * added (it keeps its rank), its place (1-based) and its text. */
    LUA_NUM
    "local function body(v) return string.match(v, '^v1|%d+|(.*)|[^|]*$') end\n"
    "local started = tonumber(ARGV[1])\n"
    "local kept = {}\n"
    "for i = 3, #KEYS do\n"
    "  local id, v = ARGV[2 * i - 4], ARGV[2 * i - 3]\n"
    "  local g = num(redis.call('ZSCORE', KEYS[1], id))\n"
    "  if not g or g < started then\n"
    "    local old = redis.call('HGET', KEYS[i], id)\n"
    "    local added = old and num(string.match(old, '^v1|(%d+)|'))\n"
    "    if added and (added >= started or (added > 0 and body(old) == body(v))) then\n"
    "      kept[#kept + 1] = i - 2\n"
    "      kept[#kept + 1] = old\n"
    "    elseif redis.call('HSET', KEYS[i], id, v) == 1 then\n"
    "      redis.call('INCR', KEYS[2])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return kept\n",
    /* S_REPLACE: KEYS person; ARGV id, the text seen, the new one */
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
    "end\n"
    "return 1\n",
    /* S_SWEEP: KEYS count, person...; ARGV id, the text seen, whether it
     * verified ('1'), for each person. */
    LUA_NUM
    "local n = 0\n"
    "for i = 2, #KEYS do\n"
    "  local b = 3 * (i - 2)\n"
    "  if redis.call('HGET', KEYS[i], ARGV[b + 1]) == ARGV[b + 2] then\n"
    "    redis.call('HDEL', KEYS[i], ARGV[b + 1])\n"
    "    if ARGV[b + 3] == '1' then n = n + 1 end\n"
    "  end\n"
    "end\n"
    "if n > 0 then\n"
    "  local c = num(redis.call('GET', KEYS[1])) or 0\n"
    "  redis.call('SET', KEYS[1], tostring(math.max(c - n, 0)))\n"
    "end\n"
    "return n\n",
    /* S_MAY_LIST: KEYS lister; ARGV now, every (usec), px */
    LUA_NUM
    "local now, every = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local t = num(redis.call('GET', KEYS[1]))\n"
    "if t and now >= t and now - t < every then\n"
    "  return {0, math.ceil((t + every - now) / 1000000)}\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])\n"
    "return {1, 0}\n",
    /* S_MARK: KEYS mark; ARGV now, expires, px. The expiry is kept as
     * the caller's clock gives it; Redis's own only clears it away. */
    LUA_NUM
    "local t = num(redis.call('GET', KEYS[1]))\n"
    "if t and t > tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
    "return 1\n",
    /* S_DEL_IF: KEYS key; ARGV the value, its field ('': a string key) */
    "if ARGV[2] == '' then\n"
    "  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "elseif redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 1\n",
    /* S_SUSPECTS_DUE: KEYS suspects, names; ARGV now_sec */
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
    SUSPECTS_MAX ")\n"
    "if #ids == 0 then return {} end\n"
    "return redis.call('HMGET', KEYS[2], unpack(ids))\n",
    /* S_STORE_ALL: KEYS the kind's hash; ARGV the most entries read */
    "if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then\n"
    "  return redis.error_reply('more entries than are read at once')\n"
    "end\n"
    "return redis.call('HGETALL', KEYS[1])\n",
    /* S_STORE_SWAP: KEYS the hash written aside, the kind's hash. The
     * rename keeps the expiry the aside had: the kind's lasts. */
    "redis.call('RENAME', KEYS[1], KEYS[2])\n"
    "redis.call('PERSIST', KEYS[2])\n"
    "return 1\n",
};

/* --- the ledger's state ---------------------------------------------------------------- */

typedef struct {
    char token[33];
} lock_token_t;

typedef struct {
    apr_pool_t *pool;
    okey_redis_url_t url;
    const char *password;
    const char *prefix;
    unsigned char mac_key[32];
    unsigned char seal_key[32];   /* for suspects' names, derived from mac_key */
    struct timeval timeout;
    char sha[S_COUNT][41];

    /* Keys of the few Redis keys that have one name. */
    const char *k_count, *k_gone, *k_filled, *k_projects, *k_lease, *k_reap,
        *k_suspects, *k_suspect_names;

    apr_thread_mutex_t *mutex;    /* guards what follows */
    pid_t pid;                    /* the process the idle connections are of */
    redisContext *idle[IDLE_MAX];
    int idle_count;
    apr_time_t retry_at;          /* no connection is tried before */
    apr_interval_time_t backoff;  /* the wait after the next failure; 0: the first */
    apr_hash_t *locks;            /* project -> lock_token_t, locks this process took */
    volatile apr_uint64_t round_trips;
} redis_t;

typedef struct {
    redisContext *c;
    int broken;  /* the exchange failed: never reused */
} conn_t;

/* --- connections ------------------------------------------------------------------------ */

static void drop_idle(redis_t *r)
{
    while (r->idle_count > 0) {
        redisFree(r->idle[--r->idle_count]);
    }
}

static void failed(redis_t *r)
{
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(r->mutex);
    /* Calls that were under way when Redis went fail together: the wait
     * grows once per attempt after it, not once per call. */
    if (now >= r->retry_at) {
        r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_FIRST;
        r->backoff = r->backoff > BACKOFF_LAST ? BACKOFF_LAST : r->backoff;
        r->retry_at = now + r->backoff;
    }
    /* The others were made to the same server: most likely gone too. */
    drop_idle(r);
    apr_thread_mutex_unlock(r->mutex);
}

/* Why an exchange on c failed, as the log line that reports it will say. */
static apr_status_t cause_of(const redisContext *c)
{
    apr_status_t rv = APR_EGENERAL;

    if (c && c->err == REDIS_ERR_EOF) {
        rv = APR_EOF;
    }
    else if (c && c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        rv = APR_TIMEUP;
    }
    else if (c && c->err == REDIS_ERR_IO && errno) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    return rv;
}

static apr_status_t free_reply(void *reply)
{
    freeReplyObject(reply);
    return APR_SUCCESS;
}

/* Sends the n commands at once and reads their n replies: one round trip.
 * The replies are freed with pool. */
static apr_status_t exchange(redis_t *r, conn_t *conn, apr_pool_t *pool, int n,
                             int *argc, const char ***argv, size_t **lens,
                             redisReply **replies)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        if (redisAppendCommandArgv(conn->c, argc[i], argv[i], lens[i]) != REDIS_OK) {
            rv = cause_of(conn->c);
        }
    }
    apr_atomic_inc64(&r->round_trips);
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        void *reply = NULL;

        errno = 0;
        if (redisGetReply(conn->c, &reply) != REDIS_OK || !reply) {
            rv = cause_of(conn->c);
        }
        else {
            replies[i] = reply;
            apr_pool_cleanup_register(pool, reply, free_reply, apr_pool_cleanup_null);
        }
    }
    if (rv != APR_SUCCESS) {
        conn->broken = 1;
    }
    return rv;
}

/* One command, one reply (freed with pool). */
static apr_status_t command(redis_t *r, conn_t *conn, apr_pool_t *pool, int argc,
                            const char **argv, size_t *lens, redisReply **reply)
{
    apr_status_t rv = APR_SUCCESS;
    void *got = NULL;

    *reply = NULL;
    apr_atomic_inc64(&r->round_trips);
    errno = 0;
    got = redisCommandArgv(conn->c, argc, argv, lens);
    if (!got) {
        conn->broken = 1;
        rv = cause_of(conn->c);
    }
    else {
        *reply = got;
        apr_pool_cleanup_register(pool, got, free_reply, apr_pool_cleanup_null);
    }
    return rv;
}

/* Lengths of argc strings. */
static size_t *lengths(apr_pool_t *pool, int argc, const char **argv)
{
    size_t *lens = apr_palloc(pool, sizeof(*lens) * (apr_size_t)argc);
    int i;

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    return lens;
}

static int is_error(const redisReply *reply)
{
    return !reply || reply->type == REDIS_REPLY_ERROR;
}

/* AUTH, SELECT and the scripts on a fresh connection, in one round trip:
 * a script's first call then needs no second. */
static apr_status_t introduce(redis_t *r, conn_t *conn, apr_pool_t *pool)
{
    const char *auth[] = {"AUTH", r->url.user ? r->url.user : r->password, r->password};
    int auth_argc = r->url.user ? 3 : 2;
    const char *select[] = {"SELECT", apr_itoa(pool, r->url.db)};
    int argc[S_COUNT + 2];
    const char **argv[S_COUNT + 2];
    size_t *lens[S_COUNT + 2];
    redisReply *replies[S_COUNT + 2];
    int n = 0, i;
    apr_status_t rv;

    if (r->password) {
        argc[n] = auth_argc, argv[n] = auth, lens[n] = lengths(pool, auth_argc, auth), n++;
    }
    if (r->url.db) {
        argc[n] = 2, argv[n] = select, lens[n] = lengths(pool, 2, select), n++;
    }
    for (i = 0; i < S_COUNT; i++) {
        const char **load = apr_palloc(pool, sizeof(*load) * 3);

        load[0] = "SCRIPT", load[1] = "LOAD", load[2] = scripts[i];
        argc[n] = 3, argv[n] = load, lens[n] = lengths(pool, 3, load), n++;
    }
    memset(replies, 0, sizeof(replies));
    rv = exchange(r, conn, pool, n, argc, argv, lens, replies);
    /* A refused password fails the connection; so does a script refused. */
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        rv = is_error(replies[i]) ? APR_EACCES : APR_SUCCESS;
    }
    return rv;
}

static apr_status_t connect_one(redis_t *r, apr_pool_t *pool, conn_t *conn)
{
    apr_status_t rv = APR_SUCCESS;

    errno = 0;
    conn->c = r->url.path ? redisConnectUnixWithTimeout(r->url.path, r->timeout)
                          : redisConnectWithTimeout(r->url.host, r->url.port, r->timeout);
    if (!conn->c || conn->c->err || redisSetTimeout(conn->c, r->timeout) != REDIS_OK) {
        rv = conn->c && conn->c->err == REDIS_ERR_IO && errno ? APR_FROM_OS_ERROR(errno)
                                                               : APR_ECONNREFUSED;
    }
    if (rv == APR_SUCCESS) {
        rv = introduce(r, conn, pool);
    }
    if (rv != APR_SUCCESS && conn->c) {
        redisFree(conn->c);
        conn->c = NULL;
    }
    return rv;
}

/* A connection for one call: an idle one, or a new one when the backoff
 * allows. */
static apr_status_t take(redis_t *r, apr_pool_t *pool, conn_t *conn)
{
    apr_status_t rv = APR_SUCCESS;
    pid_t pid = getpid();

    conn->c = NULL;
    conn->broken = 0;
    apr_thread_mutex_lock(r->mutex);
    if (r->pid != pid) {
        /* Connections of the parent: its sockets, never this process's. */
        drop_idle(r);
        r->pid = pid;
        r->retry_at = 0;
        r->backoff = 0;
    }
    if (apr_time_now() < r->retry_at) {
        /* Waiting out the backoff: "temporarily unavailable". */
        rv = APR_EAGAIN;
    }
    else if (r->idle_count > 0) {
        conn->c = r->idle[--r->idle_count];
    }
    apr_thread_mutex_unlock(r->mutex);
    if (rv == APR_SUCCESS && !conn->c) {
        rv = connect_one(r, pool, conn);
        if (rv != APR_SUCCESS) {
            failed(r);
        }
    }
    return rv;
}

/* Gives conn back after a call that answered rv. */
static void give_back(redis_t *r, conn_t *conn)
{
    redisContext *surplus = conn->c;

    if (!conn->c) {
        return;
    }
    if (conn->broken) {
        redisFree(conn->c);
        failed(r);
        return;
    }
    apr_thread_mutex_lock(r->mutex);
    r->backoff = 0;
    if (r->pid == getpid() && r->idle_count < IDLE_MAX) {
        r->idle[r->idle_count++] = conn->c;
        surplus = NULL;
    }
    apr_thread_mutex_unlock(r->mutex);
    if (surplus) {
        redisFree(surplus);
    }
}

/* Runs script s with nkeys of argv as its keys: EVALSHA, and EVAL when
 * Redis does not have it yet. */
static apr_status_t script(redis_t *r, conn_t *conn, apr_pool_t *pool, int s, int argc,
                           const char **argv, redisReply **reply)
{
    const char **full = apr_palloc(pool, sizeof(*full) * (apr_size_t)(argc + 2));
    size_t *lens;
    apr_status_t rv;

    full[0] = "EVALSHA";
    full[1] = r->sha[s];
    memcpy(full + 2, argv, sizeof(*full) * (apr_size_t)argc);
    lens = lengths(pool, argc + 2, full);
    rv = command(r, conn, pool, argc + 2, full, lens, reply);
    if (rv == APR_SUCCESS && (*reply)->type == REDIS_REPLY_ERROR &&
        !strncmp((*reply)->str, "NOSCRIPT", 8)) {
        full[0] = "EVAL";
        full[1] = scripts[s];
        lens[0] = 4;
        lens[1] = strlen(scripts[s]);
        rv = command(r, conn, pool, argc + 2, full, lens, reply);
    }
    if (rv == APR_SUCCESS && is_error(*reply)) {
        rv = APR_EGENERAL;
    }
    return rv;
}

/* Runs script s on a connection of its own (argv: numkeys, keys, args). */
static apr_status_t run(redis_t *r, apr_pool_t *pool, int s, int argc, const char **argv,
                        redisReply **reply)
{
    conn_t conn;
    apr_status_t rv = take(r, pool, &conn);

    if (rv == APR_SUCCESS) {
        rv = script(r, &conn, pool, s, argc, argv, reply);
    }
    give_back(r, &conn);
    return rv;
}

/* One plain command on a connection of its own; an error reply fails. */
static apr_status_t run_command(redis_t *r, apr_pool_t *pool, int argc, const char **argv,
                                redisReply **reply)
{
    conn_t conn;
    apr_status_t rv = take(r, pool, &conn);

    if (rv == APR_SUCCESS) {
        rv = command(r, &conn, pool, argc, argv, lengths(pool, argc, argv), reply);
    }
    if (rv == APR_SUCCESS && is_error(*reply)) {
        rv = APR_EGENERAL;
    }
    give_back(r, &conn);
    return rv;
}

/* A scratch pool for calls that have none. */
static apr_pool_t *scratch(redis_t *r)
{
    apr_pool_t *pool = NULL;

    (void)r;
    return apr_pool_create(&pool, NULL) == APR_SUCCESS ? pool : NULL;
}

/* --- texts ------------------------------------------------------------------------------- */

static const char *i64(apr_pool_t *pool, apr_int64_t n)
{
    return apr_psprintf(pool, "%" APR_INT64_T_FMT, n);
}

static void hex(char *out, const unsigned char *bytes, apr_size_t len)
{
    static const char digits[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

/* HMAC-SHA256 under key of the n parts, each followed by a NUL; 0 when
 * it could not be computed. */
static int hmac_parts(apr_pool_t *pool, const unsigned char key[32], const char *const *parts,
                      int n, unsigned char digest[32])
{
    apr_size_t len = 0, at = 0;
    unsigned int made = 0;
    char *data;
    int i;

    for (i = 0; i < n; i++) {
        len += strlen(parts[i]) + 1;
    }
    data = apr_palloc(pool, len);
    for (i = 0; i < n; i++) {
        apr_size_t one = strlen(parts[i]) + 1;

        memcpy(data + at, parts[i], one);
        at += one;
    }
    return HMAC(EVP_sha256(), key, 32, (const unsigned char *)data, len, digest, &made) &&
           made == 32;
}

/* base64url of hmac_parts. */
static void mac_of(apr_pool_t *pool, const unsigned char key[32], const char *const *parts,
                   int n, char out[MAC_B64])
{
    unsigned char digest[32];

    if (hmac_parts(pool, key, parts, n, digest)) {
        okey_b64url_encode_into(out, digest, 32);
    }
    else {
        /* Nothing verifies against it. */
        memset(out, 0, MAC_B64);
    }
}

static void person_hex(const char *email, char out[PERSON_HEX])
{
    unsigned char person[16];

    okey_ledger_person(email, person);
    hex(out, person, sizeof(person));
}

static const char *person_key(redis_t *r, apr_pool_t *pool, const char *hexed)
{
    return apr_pstrcat(pool, r->prefix, "u:", hexed, NULL);
}

/* A short opaque name for what under domain: hex of the first 16 bytes of
 * its HMAC. */
static const char *opaque(redis_t *r, apr_pool_t *pool, const char *domain, const char *what)
{
    const char *parts[] = {r->prefix, domain, what};
    unsigned char digest[32];
    char *out = apr_palloc(pool, 33);

    if (!hmac_parts(pool, r->mac_key, parts, 3, digest)) {
        okey_sha256(what, strlen(what), digest);
    }
    hex(out, digest, 16);
    return out;
}

static int plain(const char *text)
{
    return text && !strchr(text, '|');
}

/* The body of key's record, added at added, with its owner as its name
 * gives it; NULL when its name is not ours or a part cannot be filed. */
static const char *record_body(apr_pool_t *pool, const okey_owned_key_t *key,
                               apr_time_t added, const char **owner)
{
    const char *tag = okey_keys_name_tag(pool, key->name);
    apr_int64_t named = 0;

    if (!tag || !okey_keys_parse_name(pool, key->name, &named, owner) ||
        !plain(key->service_account_id) || !plain(key->project_id) || !plain(tag) ||
        !key->service_account_id[0] || !key->project_id[0]) {
        return NULL;
    }
    return apr_psprintf(pool, "v1|%" APR_INT64_T_FMT "|%s|%s|%" APR_INT64_T_FMT
                        "|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT,
                        (apr_int64_t)added, key->project_id, tag, named, key->created_at,
                        key->expires);
}

/* body as the record of id in the person hexed: with its MAC. */
static const char *record_signed(redis_t *r, apr_pool_t *pool, const char *hexed,
                                 const char *id, const char *body)
{
    const char *parts[] = {r->prefix, "record", hexed, id, body};
    char mac[MAC_B64];

    mac_of(pool, r->mac_key, parts, 5, mac);
    return apr_pstrcat(pool, body, "|", mac, NULL);
}

typedef struct {
    apr_int64_t added, named, created_at, expires;
    const char *project_id, *tag;
} record_t;

static int number(const char *text, apr_int64_t *out)
{
    char *end = NULL;

    if (!text[0] || (!apr_isdigit(text[0]) && text[0] != '-')) {
        return 0;
    }
    *out = apr_strtoi64(text, &end, 10);
    return errno != ERANGE && end && !*end;
}

/* Reads and verifies text, the record of id in the person hexed. */
static int record_read(redis_t *r, apr_pool_t *pool, const char *hexed, const char *id,
                       const char *text, apr_size_t len, record_t *rec)
{
    char *copy = apr_pstrmemdup(pool, text, len);
    char *fields[RECORD_FIELDS];
    char *last = NULL;
    char *mark = strrchr(copy, '|');
    char mac[MAC_B64];
    int n = 0, ok;

    if (!mark || strlen(copy) != len || strlen(mark + 1) != MAC_B64 - 1) {
        return 0;
    }
    *mark = '\0';
    {
        const char *parts[] = {r->prefix, "record", hexed, id, copy};

        mac_of(pool, r->mac_key, parts, 5, mac);
    }
    ok = !CRYPTO_memcmp(mac, mark + 1, MAC_B64 - 1);
    /* The tag may be empty: split by hand rather than by apr_strtok. */
    for (fields[n++] = copy, last = copy; ok && n < RECORD_FIELDS - 1 && *last; last++) {
        if (*last == '|') {
            *last = '\0';
            fields[n++] = last + 1;
        }
    }
    ok = ok && n == RECORD_FIELDS - 1 && !strchr(fields[6], '|') && !strcmp(fields[0], "v1") &&
         number(fields[1], &rec->added) && number(fields[4], &rec->named) &&
         number(fields[5], &rec->created_at) && number(fields[6], &rec->expires);
    if (ok) {
        rec->project_id = fields[2];
        rec->tag = fields[3];
    }
    return ok;
}

/* The keys of email that reply (a HGETALL of its hash) holds, in
 * project_id (NULL: any), expiring after after, oldest first. */
static apr_array_header_t *view(redis_t *r, apr_pool_t *pool, const char *email,
                                const redisReply *all, const char *project_id,
                                apr_int64_t after)
{
    apr_array_header_t *keys = apr_array_make(pool, 4, sizeof(okey_owned_key_t));
    char hexed[PERSON_HEX];
    apr_size_t i;

    person_hex(email, hexed);
    for (i = 0; all && all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2) {
        const redisReply *field = all->element[i], *value = all->element[i + 1];
        const char *id;
        record_t rec;

        if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) {
            continue;
        }
        id = apr_pstrmemdup(pool, field->str, field->len);
        if (record_read(r, pool, hexed, id, value->str, value->len, &rec) &&
            rec.expires > after && (!project_id || !strcmp(project_id, rec.project_id))) {
            okey_owned_key_t *key = apr_array_push(keys);

            key->service_account_id = id;
            key->name = okey_ledger_name(pool, email, rec.named, rec.tag);
            key->project_id = rec.project_id;
            key->created_at = rec.created_at;
            key->expires = rec.expires;
            key->rank = okey_terms_rank(rec.added, rec.created_at);
        }
    }
    okey_terms_sort(keys);
    return keys;
}

/* --- project ids ------------------------------------------------------------------------ */

static const char *project_text(redis_t *r, apr_pool_t *pool, const char *project,
                                const char *id)
{
    const char *body = apr_pstrcat(pool, "v1|", id, NULL);
    const char *parts[] = {r->prefix, "project", project, body};
    char mac[MAC_B64];

    mac_of(pool, r->mac_key, parts, 4, mac);
    return apr_pstrcat(pool, body, "|", mac, NULL);
}

static apr_status_t project_get(void *baton, apr_pool_t *pool, const char *project,
                                const char **id)
{
    redis_t *r = baton;
    const char *argv[] = {"HGET", r->k_projects, project};
    redisReply *reply = NULL;
    apr_status_t rv = run_command(r, pool, 3, argv, &reply);

    *id = NULL;
    if (rv == APR_SUCCESS && reply->type == REDIS_REPLY_STRING) {
        const char *text = apr_pstrmemdup(pool, reply->str, reply->len);
        const char *bar = strrchr(text, '|');
        const char *stored = !strncmp(text, "v1|", 3) && bar > text + 3
                             ? apr_pstrmemdup(pool, text + 3, (apr_size_t)(bar - text - 3))
                             : NULL;

        /* A project id that does not verify is as good as none stored. */
        if (stored && plain(stored) &&
            !strcmp(project_text(r, pool, project, stored), text)) {
            *id = stored;
        }
    }
    return rv;
}

static apr_status_t project_set(void *baton, const char *project, const char *id,
                                const char *stale)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    redisReply *reply = NULL;

    if (rv == APR_SUCCESS && id && !plain(id)) {
        rv = APR_EINVAL;
    }
    else if (rv == APR_SUCCESS && id) {
        const char *argv[] = {"HSET", r->k_projects, project,
                              project_text(r, pool, project, id)};

        rv = run_command(r, pool, 4, argv, &reply);
    }
    else if (rv == APR_SUCCESS && stale && plain(stale)) {
        const char *argv[] = {"1", r->k_projects, project_text(r, pool, project, stale),
                              project};

        rv = run(r, pool, S_DEL_IF, 4, argv, &reply);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static const char *lock_key(redis_t *r, apr_pool_t *pool, const char *project)
{
    return apr_pstrcat(pool, r->prefix, "lock:", opaque(r, pool, "lock", project), NULL);
}

static void draw_token(char out[33])
{
    unsigned char drawn[16];

    if (RAND_bytes(drawn, sizeof(drawn)) != 1 &&
        apr_generate_random_bytes(drawn, sizeof(drawn)) != APR_SUCCESS) {
        /* Still unique within this process, should both generators fail. */
        apr_time_t now = apr_time_now();

        memset(drawn, 0, sizeof(drawn));
        memcpy(drawn, &now, sizeof(now));
    }
    hex(out, drawn, sizeof(drawn));
}

/* Remembers token as this process's for project's lock. */
static void keep_token(redis_t *r, const char *project, const char *token)
{
    lock_token_t *kept;

    apr_thread_mutex_lock(r->mutex);
    kept = apr_hash_get(r->locks, project, APR_HASH_KEY_STRING);
    if (!kept) {
        kept = apr_pcalloc(r->pool, sizeof(*kept));
        apr_hash_set(r->locks, apr_pstrdup(r->pool, project), APR_HASH_KEY_STRING, kept);
    }
    apr_cpystrn(kept->token, token, sizeof(kept->token));
    apr_thread_mutex_unlock(r->mutex);
}

static apr_status_t project_lock(void *baton, const char *project, apr_interval_time_t wait,
                                 apr_interval_time_t length, int *taken)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_time_t deadline = apr_time_now() + (wait > 0 ? wait : 0);
    char token[33];
    conn_t conn = {NULL, 0};
    apr_status_t rv = pool ? take(r, pool, &conn) : APR_ENOMEM;
    apr_int64_t px = length / 1000 > 0 ? length / 1000 : 1;
    const char *argv[] = {"SET", NULL, token, "NX", "PX", NULL};
    int turns = 0;

    *taken = 0;
    draw_token(token);
    if (rv == APR_SUCCESS) {
        argv[1] = lock_key(r, pool, project);
        argv[5] = i64(pool, px);
    }
    /* Each turn but the last waits LOCK_POLL: bounded by the deadline. */
    while (rv == APR_SUCCESS && !*taken) {
        redisReply *reply = NULL;
        apr_time_t now;

        rv = command(r, &conn, pool, 6, argv, lengths(pool, 6, argv), &reply);
        rv = rv == APR_SUCCESS && is_error(reply) ? APR_EGENERAL : rv;
        *taken = rv == APR_SUCCESS && reply->type == REDIS_REPLY_STATUS;
        now = apr_time_now();
        if (rv != APR_SUCCESS || *taken || now >= deadline || ++turns > 100000) {
            break;
        }
        apr_sleep(deadline - now < LOCK_POLL ? deadline - now : LOCK_POLL);
    }
    give_back(r, &conn);
    if (*taken) {
        keep_token(r, project, token);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t project_unlock(void *baton, const char *project)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    const lock_token_t *kept;
    char token[33] = "";
    redisReply *reply = NULL;

    apr_thread_mutex_lock(r->mutex);
    kept = apr_hash_get(r->locks, project, APR_HASH_KEY_STRING);
    if (kept) {
        apr_cpystrn(token, kept->token, sizeof(token));
    }
    apr_thread_mutex_unlock(r->mutex);
    /* Only a lock this process took is given back: another's lapses. */
    if (rv == APR_SUCCESS && token[0]) {
        const char *argv[] = {"1", lock_key(r, pool, project), token, ""};

        rv = run(r, pool, S_DEL_IF, 4, argv, &reply);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* --- the reap lease --------------------------------------------------------------------- */

static const char *px_of(apr_pool_t *pool, apr_interval_time_t length)
{
    apr_int64_t px = (length + 999) / 1000;

    return i64(pool, px > 0 ? px : 1);
}

static apr_status_t lease_claim(void *baton, apr_time_t now, apr_int64_t interval,
                                apr_interval_time_t length, int force,
                                okey_ledger_lease_t *lease, int *claimed)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    char token[33];
    redisReply *reply = NULL;

    *claimed = 0;
    draw_token(token);
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"3", r->k_lease, r->k_reap, r->k_suspects,
                              i64(pool, now), i64(pool, apr_time_from_sec(interval)),
                              i64(pool, length), force ? "1" : "0", token,
                              i64(pool, now + length), i64(pool, apr_time_sec(now)),
                              px_of(pool, length)};

        rv = run(r, pool, S_CLAIM, 12, argv, &reply);
    }
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_INTEGER) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && reply->integer == 1) {
        *claimed = 1;
        apr_cpystrn(lease->token, token, sizeof(lease->token));
        lease->expires = now + length;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t lease_renew(void *baton, okey_ledger_lease_t *lease, apr_time_t now,
                                apr_interval_time_t length, int *held)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    redisReply *reply = NULL;

    *held = 0;
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"1", r->k_lease, lease->token, i64(pool, now), i64(pool, length),
                              i64(pool, now + length), px_of(pool, length)};

        rv = run(r, pool, S_RENEW, 7, argv, &reply);
    }
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_INTEGER) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && reply->integer == 1) {
        *held = 1;
        lease->expires = now + length;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t lease_release(void *baton, const okey_ledger_lease_t *lease)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    redisReply *reply = NULL;

    if (rv == APR_SUCCESS && lease->token[0]) {
        const char *argv[] = {"1", r->k_lease, lease->token};

        rv = run(r, pool, S_RELEASE, 3, argv, &reply);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t lease_due_in(void *baton, apr_time_t now, apr_int64_t interval,
                                 apr_int64_t *seconds, int *held)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    redisReply *reply = NULL;

    *seconds = interval;
    *held = 0;
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"3", r->k_lease, r->k_reap, r->k_suspects, i64(pool, now),
                              i64(pool, apr_time_from_sec(interval)),
                              i64(pool, apr_time_sec(now)), i64(pool, interval),
                              i64(pool, OKEY_LEASE_MAX)};

        rv = run(r, pool, S_DUE_IN, 9, argv, &reply);
    }
    if (rv == APR_SUCCESS &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
         reply->element[0]->type != REDIS_REPLY_INTEGER ||
         reply->element[1]->type != REDIS_REPLY_INTEGER)) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        *seconds = reply->element[0]->integer;
        *held = reply->element[1]->integer == 1;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t reap_request(void *baton)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    const char *argv[] = {"HSET", r->k_reap, "requested", "1"};
    redisReply *reply = NULL;
    apr_status_t rv = pool ? run_command(r, pool, 4, argv, &reply) : APR_ENOMEM;

    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* --- orphan checks ---------------------------------------------------------------------- */

/* name sealed with AES-256-GCM under the seal key: base64url of nonce,
 * text and tag; NULL when sealing failed. */
static const char *seal(redis_t *r, apr_pool_t *pool, const char *name)
{
    apr_size_t len = strlen(name);
    unsigned char *out = apr_palloc(pool, 12 + len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, done = 0;
    int ok = ctx && RAND_bytes(out, 12) == 1 &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, r->seal_key, out) == 1 &&
             EVP_EncryptUpdate(ctx, out + 12, &n, (const unsigned char *)name, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, out + 12 + n, &done) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + len) == 1;

    EVP_CIPHER_CTX_free(ctx);
    return ok ? okey_b64url_encode(pool, out, 12 + len + 16) : NULL;
}

static const char *unseal(redis_t *r, apr_pool_t *pool, const char *text, apr_size_t text_len)
{
    apr_size_t len = 0;
    unsigned char *in = okey_b64url_decoden(pool, text, text_len, &len);
    char *name = in && len > 28 ? apr_palloc(pool, len - 28 + 1) : NULL;
    EVP_CIPHER_CTX *ctx = name ? EVP_CIPHER_CTX_new() : NULL;
    int n = 0, done = 0;
    int ok = ctx &&
             EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, r->seal_key, in) == 1 &&
             EVP_DecryptUpdate(ctx, (unsigned char *)name, &n, in + 12, (int)(len - 28)) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, in + len - 16) == 1 &&
             EVP_DecryptFinal_ex(ctx, (unsigned char *)name + n, &done) == 1;

    EVP_CIPHER_CTX_free(ctx);
    if (ok) {
        name[len - 28] = '\0';
    }
    return ok && strlen(name) == len - 28 ? name : NULL;
}

static apr_status_t suspect_add(void *baton, const char *name, apr_int64_t due)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    conn_t conn = {NULL, 0};
    apr_status_t rv = pool ? take(r, pool, &conn) : APR_ENOMEM;
    const char *sealed = rv == APR_SUCCESS ? seal(r, pool, name) : NULL;

    if (rv == APR_SUCCESS && !sealed) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        const char *id = opaque(r, pool, "suspect", name);
        const char *zadd[] = {"ZADD", r->k_suspects, i64(pool, due), id};
        const char *hset[] = {"HSET", r->k_suspect_names, id, sealed};
        int argc[] = {4, 4};
        const char **argv[] = {zadd, hset};
        size_t *lens[] = {lengths(pool, 4, zadd), lengths(pool, 4, hset)};
        redisReply *replies[2] = {NULL, NULL};

        rv = exchange(r, &conn, pool, 2, argc, argv, lens, replies);
        if (rv == APR_SUCCESS && (is_error(replies[0]) || is_error(replies[1]))) {
            rv = APR_EGENERAL;
        }
    }
    give_back(r, &conn);
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t suspects_due(void *baton, apr_pool_t *pool, apr_int64_t now,
                                 apr_hash_t **names)
{
    redis_t *r = baton;
    const char *argv[] = {"2", r->k_suspects, r->k_suspect_names, i64(pool, now)};
    redisReply *reply = NULL;
    apr_status_t rv = run(r, pool, S_SUSPECTS_DUE, 4, argv, &reply);
    apr_size_t i;

    *names = NULL;
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_ARRAY) {
        rv = APR_EGENERAL;
    }
    for (i = 0; rv == APR_SUCCESS && i < reply->elements; i++) {
        const redisReply *each = reply->element[i];
        const char *name = each->type == REDIS_REPLY_STRING
                           ? unseal(r, pool, each->str, each->len) : NULL;

        if (name) {
            *names = *names ? *names : apr_hash_make(pool);
            apr_hash_set(*names, name, APR_HASH_KEY_STRING, apr_pcalloc(pool, sizeof(int)));
        }
    }
    if (rv != APR_SUCCESS) {
        *names = NULL;
    }
    return rv;
}

static apr_status_t suspects_drop(void *baton, apr_hash_t *names)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    int n = names ? (int)apr_hash_count(names) : 0;
    const char **zrem = pool ? apr_palloc(pool, sizeof(*zrem) * (apr_size_t)(n + 2)) : NULL;
    const char **hdel = pool ? apr_palloc(pool, sizeof(*hdel) * (apr_size_t)(n + 2)) : NULL;
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    apr_hash_index_t *hi;
    conn_t conn = {NULL, 0};
    int i = 2;

    for (hi = n && pool ? apr_hash_first(pool, names) : NULL; hi; hi = apr_hash_next(hi)) {
        zrem[i] = hdel[i] = opaque(r, pool, "suspect", apr_hash_this_key(hi));
        i++;
    }
    if (rv == APR_SUCCESS && n > 0) {
        rv = take(r, pool, &conn);
    }
    if (rv == APR_SUCCESS && n > 0) {
        int argc[] = {n + 2, n + 2};
        const char **argv[] = {zrem, hdel};
        size_t *lens[2];
        redisReply *replies[2] = {NULL, NULL};

        zrem[0] = "ZREM", zrem[1] = r->k_suspects;
        hdel[0] = "HDEL", hdel[1] = r->k_suspect_names;
        lens[0] = lengths(pool, n + 2, zrem);
        lens[1] = lengths(pool, n + 2, hdel);
        rv = exchange(r, &conn, pool, 2, argc, argv, lens, replies);
        if (rv == APR_SUCCESS && (is_error(replies[0]) || is_error(replies[1]))) {
            rv = APR_EGENERAL;
        }
    }
    give_back(r, &conn);
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* --- records of issued keys ------------------------------------------------------------- */

/* What a fill writes for one listed key. */
typedef struct {
    const char *key;    /* the person's hash */
    const char *hexed;
    const char *id;
    const char *text;
} put_t;

/* Replaces, one at a time, the records kept by a batch (reply of
 * S_FILL_PUT) that do not verify: a forged record cannot hide a key. */
static apr_status_t replace_forged(redis_t *r, conn_t *conn, apr_pool_t *pool,
                                   const put_t *batch, int n, const redisReply *kept)
{
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;

    for (i = 0; rv == APR_SUCCESS && i + 1 < kept->elements; i += 2) {
        const redisReply *at = kept->element[i], *text = kept->element[i + 1];
        apr_int64_t place = at->type == REDIS_REPLY_INTEGER ? at->integer : 0;
        record_t rec;

        if (place < 1 || place > n || text->type != REDIS_REPLY_STRING) {
            rv = APR_EGENERAL;
        }
        else if (!record_read(r, pool, batch[place - 1].hexed, batch[place - 1].id,
                              text->str, text->len, &rec)) {
            const put_t *put = &batch[place - 1];
            const char *argv[] = {"1", put->key, put->id,
                                  apr_pstrmemdup(pool, text->str, text->len), put->text};
            redisReply *reply = NULL;

            rv = script(r, conn, pool, S_REPLACE, 5, argv, &reply);
        }
    }
    return rv;
}

/* Writes n records of a fill, in one round trip (more only to replace
 * forged records). */
static apr_status_t fill_batch(redis_t *r, conn_t *conn, apr_pool_t *pool, const put_t *batch,
                               int n, apr_time_t started)
{
    const char **argv = apr_palloc(pool, sizeof(*argv) * (apr_size_t)(3 * n + 4));
    redisReply *reply = NULL;
    apr_status_t rv;
    int i, argc = 0;

    argv[argc++] = apr_itoa(pool, n + 2);
    argv[argc++] = r->k_gone;
    argv[argc++] = r->k_count;
    for (i = 0; i < n; i++) {
        argv[argc++] = batch[i].key;
    }
    argv[argc++] = i64(pool, started);
    for (i = 0; i < n; i++) {
        argv[argc++] = batch[i].id;
        argv[argc++] = batch[i].text;
    }
    rv = script(r, conn, pool, S_FILL_PUT, argc, argv, &reply);
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_ARRAY) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && reply->elements > 0) {
        rv = replace_forged(r, conn, pool, batch, n, reply);
    }
    return rv;
}

/* Writes the records of live (the listing that began at started) in
 * batches; *ids receives the listed ids. */
static apr_status_t fill_put(redis_t *r, conn_t *conn, apr_pool_t *pool,
                             const apr_array_header_t *live, apr_time_t started,
                             apr_hash_t **ids)
{
    put_t *batch = apr_palloc(pool, sizeof(*batch) * FILL_BATCH);
    apr_status_t rv = APR_SUCCESS;
    apr_pool_t *round = NULL;
    int i, n = 0;

    *ids = apr_hash_make(pool);
    rv = apr_pool_create(&round, pool);
    for (i = 0; rv == APR_SUCCESS && i < live->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(live, i, okey_owned_key_t);
        const char *owner = NULL, *body;
        char hexed[PERSON_HEX];
        put_t *put = &batch[n];

        if (!key->service_account_id || !key->name || !key->project_id) {
            continue;
        }
        apr_hash_set(*ids, key->service_account_id, APR_HASH_KEY_STRING, "");
        /* Filed under the owner its name gives, whose hash the MAC names. */
        body = record_body(round, key, 0, &owner);
        if (!body) {
            continue;
        }
        person_hex(owner, hexed);
        put->hexed = apr_pstrdup(round, hexed);
        put->key = person_key(r, round, hexed);
        put->id = key->service_account_id;
        put->text = record_signed(r, round, put->hexed, put->id, body);
        if (++n == FILL_BATCH) {
            rv = fill_batch(r, conn, round, batch, n, started);
            apr_pool_clear(round);
            n = 0;
        }
    }
    if (rv == APR_SUCCESS && n > 0) {
        rv = fill_batch(r, conn, round, batch, n, started);
    }
    return rv;
}

/* Removes, among the hashes that reply (HGETALL of each of keys) holds,
 * the records that do not verify, or are of no listed key and were not
 * added since started. */
static apr_status_t sweep_batch(redis_t *r, conn_t *conn, apr_pool_t *pool,
                                const redisReply *keys, redisReply **replies,
                                apr_hash_t *ids, apr_time_t started)
{
    apr_array_header_t *argv = apr_array_make(pool, 64, sizeof(const char *));
    apr_array_header_t *args = apr_array_make(pool, 64, sizeof(const char *));
    apr_size_t prefix_len = strlen(r->prefix) + 2;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t k, i;

    APR_ARRAY_PUSH(argv, const char *) = NULL;
    APR_ARRAY_PUSH(argv, const char *) = r->k_count;
    for (k = 0; k < keys->elements; k++) {
        const redisReply *all = replies[k];
        const char *key = apr_pstrmemdup(pool, keys->element[k]->str, keys->element[k]->len);
        const char *hexed = key + prefix_len;

        for (i = 0; all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2) {
            const redisReply *field = all->element[i], *value = all->element[i + 1];
            const char *id = apr_pstrmemdup(pool, field->str, field->len);
            record_t rec;
            int valid = strlen(hexed) == PERSON_HEX - 1 &&
                        record_read(r, pool, hexed, id, value->str, value->len, &rec);

            if (!valid || (!apr_hash_get(ids, id, APR_HASH_KEY_STRING) &&
                           rec.added < started)) {
                APR_ARRAY_PUSH(argv, const char *) = key;
                APR_ARRAY_PUSH(args, const char *) = id;
                APR_ARRAY_PUSH(args, const char *) = apr_pstrmemdup(pool, value->str,
                                                                     value->len);
                APR_ARRAY_PUSH(args, const char *) = valid ? "1" : "0";
            }
        }
    }
    if (args->nelts > 0) {
        redisReply *reply = NULL;

        APR_ARRAY_IDX(argv, 0, const char *) = apr_itoa(pool, argv->nelts - 1);
        apr_array_cat(argv, args);
        rv = script(r, conn, pool, S_SWEEP, argv->nelts, (const char **)argv->elts, &reply);
    }
    return rv;
}

/* text with the characters SCAN's MATCH reads as a pattern escaped. */
static const char *glob_escape(apr_pool_t *pool, const char *text)
{
    char *out = apr_palloc(pool, 2 * strlen(text) + 1);
    char *at = out;

    for (; *text; text++) {
        if (strchr("*?[]\\", *text)) {
            *at++ = '\\';
        }
        *at++ = *text;
    }
    *at = '\0';
    return out;
}

/* Walks every person's hash with SCAN, sweeping as it goes. */
static apr_status_t sweep(redis_t *r, conn_t *conn, apr_pool_t *pool, apr_hash_t *ids,
                          apr_time_t started)
{
    const char *match = apr_pstrcat(pool, glob_escape(pool, r->prefix), "u:*", NULL);
    const char *cursor = "0";
    apr_status_t rv = APR_SUCCESS;
    apr_pool_t *round = NULL;
    int turns = 0;

    rv = apr_pool_create(&round, pool);
    do {
        const char *scan[] = {"SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT};
        redisReply *reply = NULL;

        apr_pool_clear(round);
        rv = command(r, conn, round, 6, scan, lengths(round, 6, scan), &reply);
        if (rv == APR_SUCCESS &&
            (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
             reply->element[0]->type != REDIS_REPLY_STRING ||
             reply->element[1]->type != REDIS_REPLY_ARRAY)) {
            rv = APR_EGENERAL;
        }
        if (rv == APR_SUCCESS) {
            const redisReply *keys = reply->element[1];
            int n = (int)keys->elements, i;
            int *argc = apr_palloc(round, sizeof(*argc) * (apr_size_t)(n + 1));
            const char ***argv = apr_palloc(round, sizeof(*argv) * (apr_size_t)(n + 1));
            size_t **lens = apr_palloc(round, sizeof(*lens) * (apr_size_t)(n + 1));
            redisReply **replies = apr_pcalloc(round, sizeof(*replies) * (apr_size_t)(n + 1));

            cursor = apr_pstrmemdup(pool, reply->element[0]->str, reply->element[0]->len);
            for (i = 0; i < n; i++) {
                const char **one = apr_palloc(round, sizeof(*one) * 2);

                one[0] = "HGETALL";
                one[1] = apr_pstrmemdup(round, keys->element[i]->str, keys->element[i]->len);
                argc[i] = 2;
                argv[i] = one;
                lens[i] = lengths(round, 2, one);
            }
            rv = n > 0 ? exchange(r, conn, round, n, argc, argv, lens, replies) : APR_SUCCESS;
            for (i = 0; rv == APR_SUCCESS && i < n; i++) {
                rv = is_error(replies[i]) ? APR_EGENERAL : APR_SUCCESS;
            }
            if (rv == APR_SUCCESS && n > 0) {
                rv = sweep_batch(r, conn, round, keys, replies, ids, started);
            }
        }
    } while (rv == APR_SUCCESS && strcmp(cursor, "0") && ++turns < SCAN_MAX);
    apr_pool_destroy(round);
    return rv;
}

static apr_status_t fill(void *baton, apr_pool_t *pool, const apr_array_header_t *live,
                         apr_time_t started)
{
    redis_t *r = baton;
    apr_pool_t *work = NULL;
    conn_t conn = {NULL, 0};
    apr_hash_t *ids = NULL;
    apr_status_t rv = apr_pool_create(&work, pool);

    if (rv == APR_SUCCESS) {
        rv = take(r, work, &conn);
    }
    if (rv == APR_SUCCESS) {
        rv = fill_put(r, &conn, work, live, started, &ids);
    }
    if (rv == APR_SUCCESS) {
        rv = sweep(r, &conn, work, ids, started);
    }
    if (rv == APR_SUCCESS) {
        const char *set[] = {"SET", r->k_filled, "1"};
        const char *trim[] = {"ZREMRANGEBYSCORE", r->k_gone, "-inf",
                              apr_pstrcat(work, "(", i64(work, started - GONE_KEEP), NULL)};
        int argc[] = {3, 4};
        const char **argv[] = {set, trim};
        size_t *lens[] = {lengths(work, 3, set), lengths(work, 4, trim)};
        redisReply *replies[2] = {NULL, NULL};

        rv = exchange(r, &conn, work, 2, argc, argv, lens, replies);
        if (rv == APR_SUCCESS && (is_error(replies[0]) || is_error(replies[1]))) {
            rv = APR_EGENERAL;
        }
    }
    give_back(r, &conn);
    if (work) {
        apr_pool_destroy(work);
    }
    return rv;
}

/* email's records and whether the ledger is filled, in one round trip. */
static apr_status_t read_person(redis_t *r, apr_pool_t *pool, const char *email,
                                redisReply **all, int *filled)
{
    char hexed[PERSON_HEX];
    const char *hgetall[] = {"HGETALL", NULL};
    const char *exists[] = {"EXISTS", r->k_filled};
    int argc[] = {2, 2};
    const char **argv[] = {hgetall, exists};
    size_t *lens[2];
    redisReply *replies[2] = {NULL, NULL};
    conn_t conn;
    apr_status_t rv = take(r, pool, &conn);

    person_hex(email, hexed);
    hgetall[1] = person_key(r, pool, hexed);
    lens[0] = lengths(pool, 2, hgetall);
    lens[1] = lengths(pool, 2, exists);
    if (rv == APR_SUCCESS) {
        rv = exchange(r, &conn, pool, 2, argc, argv, lens, replies);
    }
    if (rv == APR_SUCCESS && (replies[0]->type != REDIS_REPLY_ARRAY ||
                              replies[1]->type != REDIS_REPLY_INTEGER)) {
        rv = APR_EGENERAL;
    }
    give_back(r, &conn);
    *all = rv == APR_SUCCESS ? replies[0] : NULL;
    *filled = rv == APR_SUCCESS && replies[1]->integer == 1;
    return rv;
}

/* Writes key's record, added at added, unless a record of the person
 * ranks as late (counting none past latest): then *newer holds the
 * highest rank and nothing changed. Else *all is the person's hash after
 * the write. */
static apr_status_t record_once(redis_t *r, apr_pool_t *pool, const char *hexed,
                                const okey_owned_key_t *key, apr_time_t added,
                                apr_time_t latest, redisReply **all, int *filled,
                                apr_int64_t *newer)
{
    const char *owner = NULL;
    const char *text = record_body(pool, key, added, &owner);
    const char *argv[] = {"3", person_key(r, pool, hexed), r->k_filled, r->k_count,
                          key->service_account_id,
                          record_signed(r, pool, hexed, key->service_account_id, text),
                          i64(pool, added), i64(pool, latest)};
    redisReply *reply = NULL;
    apr_status_t rv = run(r, pool, S_RECORD, 8, argv, &reply);

    *newer = 0;
    if (rv == APR_SUCCESS &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
         reply->element[0]->type != REDIS_REPLY_INTEGER)) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS && reply->element[0]->integer == -1) {
        const redisReply *rank = reply->element[1];

        *newer = rank->type == REDIS_REPLY_INTEGER ? rank->integer : 0;
        rv = *newer > 0 ? APR_SUCCESS : APR_EGENERAL;
    }
    else if (rv == APR_SUCCESS) {
        *filled = reply->element[0]->integer == 1;
        *all = reply->element[1];
    }
    return rv;
}

static apr_status_t record(void *baton, apr_pool_t *pool, const char *email,
                           const okey_owned_key_t *key, apr_time_t now,
                           apr_array_header_t **keys, int *complete)
{
    redis_t *r = baton;
    char hexed[PERSON_HEX];
    const char *owner = NULL;
    redisReply *all = NULL;
    int filled = 0;
    apr_status_t rv;

    person_hex(email, hexed);
    if (record_body(pool, key, now, &owner)) {
        apr_time_t added = now;
        /* Another server's clock may be this far ahead of ours. */
        apr_time_t latest = now + apr_time_from_sec(OKEY_TERMS_CLOCK_SKEW);
        apr_int64_t newer = 0;
        apr_ssize_t id_len = APR_HASH_KEY_STRING;
        unsigned int spread = apr_hashfunc_default(key->service_account_id, &id_len);
        int tries = 0;

        /* Another server's clock ahead of ours, or records of the person
         * at once: try again after the newest, each a different way after
         * it, so that racers that lost together do not lose again. */
        do {
            added = okey_ledger_added(added, newer);
            added += newer ? (spread + 7919u * (unsigned int)tries) % RECORD_SPREAD : 0;
            rv = record_once(r, pool, hexed, key, added, latest, &all, &filled, &newer);
        } while (rv == APR_SUCCESS && newer && ++tries < RECORD_TRIES);
        rv = rv == APR_SUCCESS && newer ? APR_EAGAIN : rv;
    }
    else {
        /* A key whose name is not ours is not recorded, nor complete. */
        rv = read_person(r, pool, email, &all, &filled);
        filled = 0;
    }
    *keys = rv == APR_SUCCESS
            ? view(r, pool, email, all, key->project_id, apr_time_sec(now))
            : apr_array_make(pool, 1, sizeof(okey_owned_key_t));
    *complete = rv == APR_SUCCESS && filled;
    return rv;
}

static apr_status_t forget(void *baton, const char *email, const char *project_id,
                           const char *service_account_id, apr_time_t now)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    char hexed[PERSON_HEX];
    redisReply *reply = NULL;

    person_hex(email, hexed);
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"3", person_key(r, pool, hexed), r->k_gone, r->k_count,
                              service_account_id, project_id ? project_id : "",
                              i64(pool, now), i64(pool, now - GONE_KEEP)};

        rv = run(r, pool, S_FORGET, 8, argv, &reply);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t keys_of(void *baton, apr_pool_t *pool, const char *email,
                            const char *project_id, apr_array_header_t **keys,
                            int *complete)
{
    redis_t *r = baton;
    redisReply *all = NULL;
    int filled = 0;
    apr_status_t rv = read_person(r, pool, email, &all, &filled);

    /* Expired ones too: they work until the reaper deletes them. */
    *keys = rv == APR_SUCCESS ? view(r, pool, email, all, project_id, APR_INT64_MIN)
                              : apr_array_make(pool, 1, sizeof(okey_owned_key_t));
    *complete = filled;
    return rv;
}

/* The counter record, forget and fill keep: a record written into Redis
 * by anything else than this ledger moves it by at most one. */
static apr_status_t count(void *baton, apr_int64_t *records)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    const char *argv[] = {"GET", r->k_count};
    redisReply *reply = NULL;
    apr_status_t rv = pool ? run_command(r, pool, 2, argv, &reply) : APR_ENOMEM;
    apr_int64_t n = 0;

    if (rv == APR_SUCCESS && reply->type == REDIS_REPLY_STRING &&
        !number(apr_pstrmemdup(pool, reply->str, reply->len), &n)) {
        rv = APR_EGENERAL;
    }
    *records = rv == APR_SUCCESS && n > 0 ? n : 0;
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* --- one-time marks and rates ----------------------------------------------------------- */

static apr_status_t mark_once(void *baton, const char *what, apr_time_t now,
                              apr_time_t expires, int *first)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    redisReply *reply = NULL;

    *first = 1;
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"1",
                              apr_pstrcat(pool, r->prefix, "m:", opaque(r, pool, "mark", what),
                                          NULL),
                              i64(pool, now), i64(pool, expires), px_of(pool, expires - now)};

        rv = run(r, pool, S_MARK, 5, argv, &reply);
    }
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_INTEGER) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        *first = reply->integer == 1;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t may_list(void *baton, const char *email, apr_time_t now,
                             apr_interval_time_t every, int *allowed,
                             apr_int64_t *retry_after)
{
    redis_t *r = baton;
    apr_pool_t *pool = scratch(r);
    apr_status_t rv = pool ? APR_SUCCESS : APR_ENOMEM;
    char hexed[PERSON_HEX];
    redisReply *reply = NULL;

    *allowed = 1;
    *retry_after = 0;
    person_hex(email, hexed);
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"1", apr_pstrcat(pool, r->prefix, "l:", hexed, NULL),
                              i64(pool, now), i64(pool, every), px_of(pool, every)};

        rv = run(r, pool, S_MAY_LIST, 5, argv, &reply);
    }
    if (rv == APR_SUCCESS &&
        (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
         reply->element[0]->type != REDIS_REPLY_INTEGER ||
         reply->element[1]->type != REDIS_REPLY_INTEGER)) {
        rv = APR_EGENERAL;
    }
    if (rv == APR_SUCCESS) {
        *allowed = reply->element[0]->integer == 1;
        *retry_after = reply->element[1]->integer;
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

/* --- what outlives a stop ------------------------------------------------------------------
 *
 * One hash per kind, store:keys and store:spend: name -> "<text>|<mac>",
 * the MAC over the prefix, the kind, the name and the text, so that a text
 * moved to another name or kind, or written by anyone without the key,
 * reads as absent. A replace writes a hash of a name of its own, then
 * renames it over the kind's: readers see the one or the other. */

static const char *const store_kinds[OKEY_STORE_KINDS] = {"keys", "spend"};

static int store_ok(okey_store_e kind, const char *name, const char *text)
{
    return (unsigned)kind < OKEY_STORE_KINDS && okey_store_name_valid(name) &&
           (!text || strlen(text) <= OKEY_STORE_TEXT_MAX);
}

static const char *store_key(redis_t *r, apr_pool_t *pool, okey_store_e kind)
{
    return apr_pstrcat(pool, r->prefix, "store:", store_kinds[kind], NULL);
}

static const char *store_sealed(redis_t *r, apr_pool_t *pool, okey_store_e kind,
                                const char *name, const char *text)
{
    const char *parts[] = {r->prefix, "store", store_kinds[kind], name, text};
    char mac[MAC_B64];

    mac_of(pool, r->mac_key, parts, 5, mac);
    return apr_pstrcat(pool, text, "|", mac, NULL);
}

/* The text value (len bytes) holds for name, or NULL when it does not verify. */
static const char *store_open(redis_t *r, apr_pool_t *pool, okey_store_e kind,
                              const char *name, const char *value, apr_size_t len)
{
    const char *text = NULL;
    char *copy;
    char *mark;

    if (len >= MAC_B64 && len <= OKEY_STORE_TEXT_MAX + MAC_B64 && !memchr(value, '\0', len)) {
        copy = apr_pstrmemdup(pool, value, len);
        mark = copy + len - MAC_B64;
        if (*mark == '|') {
            *mark = '\0';
            text = CRYPTO_memcmp(store_sealed(r, pool, kind, name, copy) + (mark - copy) + 1,
                                 mark + 1, MAC_B64 - 1) ? NULL : copy;
        }
    }
    return text;
}

static apr_status_t store_put(void *baton, okey_store_e kind, const char *name,
                              const char *text)
{
    redis_t *r = baton;
    apr_pool_t *pool = NULL;
    apr_status_t rv = text && store_ok(kind, name, text) ? APR_SUCCESS : APR_EINVAL;
    redisReply *reply = NULL;

    pool = rv == APR_SUCCESS ? scratch(r) : NULL;
    rv = rv == APR_SUCCESS && !pool ? APR_ENOMEM : rv;
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"HSET", store_key(r, pool, kind), name,
                              store_sealed(r, pool, kind, name, text)};

        rv = run_command(r, pool, 4, argv, &reply);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static apr_status_t store_get(void *baton, apr_pool_t *pool, okey_store_e kind,
                              const char *name, const char **text)
{
    redis_t *r = baton;
    apr_status_t rv = store_ok(kind, name, NULL) ? APR_SUCCESS : APR_EINVAL;
    redisReply *reply = NULL;

    *text = NULL;
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"HGET", store_key(r, pool, kind), name};

        rv = run_command(r, pool, 3, argv, &reply);
    }
    if (rv == APR_SUCCESS && reply->type == REDIS_REPLY_STRING) {
        *text = store_open(r, pool, kind, name, reply->str, reply->len);
    }
    else if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_NIL) {
        rv = APR_EGENERAL;
    }
    return rv;
}

static apr_status_t store_all(void *baton, apr_pool_t *pool, okey_store_e kind,
                              apr_hash_t **entries)
{
    redis_t *r = baton;
    apr_status_t rv = (unsigned)kind < OKEY_STORE_KINDS ? APR_SUCCESS : APR_EINVAL;
    redisReply *reply = NULL;
    apr_size_t i;

    *entries = apr_hash_make(pool);
    /* One read of the whole hash, never a scan: a scan across a replace
     * would mix the two. */
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"1", store_key(r, pool, kind), STORE_ENTRIES_MAX};

        rv = run(r, pool, S_STORE_ALL, 3, argv, &reply);
    }
    if (rv == APR_SUCCESS && reply->type != REDIS_REPLY_ARRAY) {
        rv = APR_EGENERAL;
    }
    for (i = 0; rv == APR_SUCCESS && i + 1 < reply->elements; i += 2) {
        const redisReply *field = reply->element[i], *value = reply->element[i + 1];
        const char *name = field->type == REDIS_REPLY_STRING
                           ? apr_pstrmemdup(pool, field->str, field->len) : NULL;
        const char *text = name && strlen(name) == field->len &&
                           value->type == REDIS_REPLY_STRING && store_ok(kind, name, NULL)
                           ? store_open(r, pool, kind, name, value->str, value->len) : NULL;

        if (text) {
            apr_hash_set(*entries, name, APR_HASH_KEY_STRING, text);
        }
    }
    if (rv != APR_SUCCESS) {
        *entries = apr_hash_make(pool);
    }
    return rv;
}

/* Runs the commands (argv, each argc long) on conn, one round trip each;
 * an error reply fails. */
static apr_status_t each_command(redis_t *r, conn_t *conn, apr_pool_t *pool,
                                 const apr_array_header_t *commands)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < commands->nelts && rv == APR_SUCCESS; i++) {
        const apr_array_header_t *argv = APR_ARRAY_IDX(commands, i, apr_array_header_t *);
        redisReply *reply = NULL;

        rv = command(r, conn, pool, argv->nelts, (const char **)argv->elts,
                     lengths(pool, argv->nelts, (const char **)argv->elts), &reply);
        rv = rv == APR_SUCCESS && is_error(reply) ? APR_EGENERAL : rv;
    }
    return rv;
}

/* The names of names (or the entries of entries, sealed) as commands of
 * verb on key, at most STORE_BATCH names each. */
static apr_array_header_t *batches(redis_t *r, apr_pool_t *pool, okey_store_e kind,
                                   const char *verb, const char *key, apr_hash_t *names,
                                   int with_texts)
{
    apr_array_header_t *commands = apr_array_make(pool, 1, sizeof(apr_array_header_t *));
    apr_array_header_t *argv = NULL;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(pool, names); hi; hi = apr_hash_next(hi)) {
        const char *name = apr_hash_this_key(hi);

        if (!argv || argv->nelts >= 2 + STORE_BATCH * (with_texts ? 2 : 1)) {
            argv = apr_array_make(pool, 2 + STORE_BATCH * 2, sizeof(const char *));
            APR_ARRAY_PUSH(argv, const char *) = verb;
            APR_ARRAY_PUSH(argv, const char *) = key;
            APR_ARRAY_PUSH(commands, apr_array_header_t *) = argv;
        }
        APR_ARRAY_PUSH(argv, const char *) = name;
        if (with_texts) {
            APR_ARRAY_PUSH(argv, const char *) =
                store_sealed(r, pool, kind, name, apr_hash_this_val(hi));
        }
    }
    return commands;
}

static int all_names_ok(okey_store_e kind, apr_hash_t *names, int with_texts)
{
    apr_hash_index_t *hi;
    int ok = (unsigned)kind < OKEY_STORE_KINDS;

    for (hi = names ? apr_hash_first(NULL, names) : NULL; hi && ok; hi = apr_hash_next(hi)) {
        ok = store_ok(kind, apr_hash_this_key(hi), with_texts ? apr_hash_this_val(hi) : NULL) &&
             (!with_texts || apr_hash_this_val(hi));
    }
    return ok;
}

/* Runs the commands on a connection of its own. */
static apr_status_t run_commands(redis_t *r, apr_pool_t *pool,
                                 const apr_array_header_t *commands)
{
    conn_t conn = {NULL, 0};
    apr_status_t rv = commands->nelts ? take(r, pool, &conn) : APR_SUCCESS;

    if (rv == APR_SUCCESS && commands->nelts) {
        rv = each_command(r, &conn, pool, commands);
    }
    give_back(r, &conn);
    return rv;
}

static apr_status_t store_drop(void *baton, okey_store_e kind, apr_hash_t *names)
{
    redis_t *r = baton;
    apr_status_t rv = all_names_ok(kind, names, 0) ? APR_SUCCESS : APR_EINVAL;
    apr_pool_t *pool = rv == APR_SUCCESS && names ? scratch(r) : NULL;

    rv = rv == APR_SUCCESS && names && !pool ? APR_ENOMEM : rv;
    if (pool) {
        rv = run_commands(r, pool, batches(r, pool, kind, "HDEL", store_key(r, pool, kind),
                                           names, 0));
        apr_pool_destroy(pool);
    }
    return rv;
}

/* Writes entries into a hash of their own, then renames it over kind's. */
static apr_status_t store_swap(redis_t *r, apr_pool_t *pool, okey_store_e kind,
                               apr_hash_t *entries)
{
    char token[33];
    const char *aside;
    apr_array_header_t *commands;
    apr_array_header_t *expire = apr_array_make(pool, 3, sizeof(const char *));
    conn_t conn = {NULL, 0};
    apr_status_t rv;

    draw_token(token);
    aside = apr_pstrcat(pool, store_key(r, pool, kind), ":new:", token, NULL);
    commands = batches(r, pool, kind, "HSET", aside, entries, 1);
    /* A replace that dies half way leaves nothing that lasts. */
    APR_ARRAY_PUSH(expire, const char *) = "PEXPIRE";
    APR_ARRAY_PUSH(expire, const char *) = aside;
    APR_ARRAY_PUSH(expire, const char *) = STORE_ASIDE_PX;
    APR_ARRAY_PUSH(commands, apr_array_header_t *) = expire;
    rv = take(r, pool, &conn);
    if (rv == APR_SUCCESS) {
        rv = each_command(r, &conn, pool, commands);
    }
    if (rv == APR_SUCCESS) {
        const char *argv[] = {"2", aside, store_key(r, pool, kind)};
        redisReply *reply = NULL;

        rv = script(r, &conn, pool, S_STORE_SWAP, 3, argv, &reply);
    }
    if (rv != APR_SUCCESS && conn.c && !conn.broken) {
        const char *del[] = {"DEL", aside};
        redisReply *reply = NULL;

        command(r, &conn, pool, 2, del, lengths(pool, 2, del), &reply);
    }
    give_back(r, &conn);
    return rv;
}

static apr_status_t store_replace(void *baton, okey_store_e kind, apr_hash_t *entries)
{
    redis_t *r = baton;
    apr_status_t rv = all_names_ok(kind, entries, 1) ? APR_SUCCESS : APR_EINVAL;
    apr_pool_t *pool = rv == APR_SUCCESS ? scratch(r) : NULL;
    redisReply *reply = NULL;

    rv = rv == APR_SUCCESS && !pool ? APR_ENOMEM : rv;
    if (rv == APR_SUCCESS && (!entries || !apr_hash_count(entries))) {
        const char *argv[] = {"DEL", store_key(r, pool, kind)};

        rv = run_command(r, pool, 2, argv, &reply);
    }
    else if (rv == APR_SUCCESS) {
        rv = store_swap(r, pool, kind, entries);
    }
    if (pool) {
        apr_pool_destroy(pool);
    }
    return rv;
}

static const okey_ledger_ops_t redis_ops = {
    "redis",
    project_get, project_set, project_lock, project_unlock,
    lease_claim, lease_renew, lease_release, lease_due_in, reap_request,
    suspect_add, suspects_due, suspects_drop,
    fill, record, forget, keys_of, count,
    mark_once, may_list,
    store_put, store_get, store_all, store_drop, store_replace
};

/* --- making one ------------------------------------------------------------------------- */

/* %XX decoded; NULL when a % is not followed by two hex digits. */
static const char *unescape(apr_pool_t *pool, const char *text, apr_size_t len)
{
    char *out = apr_palloc(pool, len + 1);
    apr_size_t i, n = 0;

    for (i = 0; i < len; i++) {
        if (text[i] != '%') {
            out[n++] = text[i];
        }
        else if (i + 2 < len && apr_isxdigit(text[i + 1]) &&
                 apr_isxdigit(text[i + 2])) {
            char pair[3] = {text[i + 1], text[i + 2], '\0'};

            out[n++] = (char)strtol(pair, NULL, 16);
            i += 2;
        }
        else {
            return NULL;
        }
    }
    out[n] = '\0';
    return strlen(out) == n ? out : NULL;
}

/* A whole decimal number within [low, high] of at most 9 digits. */
static int bounded(const char *text, apr_size_t len, int low, int high, int *out)
{
    apr_size_t i;
    long value = 0;

    for (i = 0; i < len && apr_isdigit(text[i]); i++) {
        value = value * 10 + (text[i] - '0');
    }
    *out = (int)value;
    return len > 0 && len <= 9 && i == len && value >= low && value <= high;
}

#define DB_MAX 1000000

static int host_ok(const char *host)
{
    apr_size_t len = strlen(host), i;
    int ok = len > 0 && len < 254;

    for (i = 0; ok && i < len; i++) {
        ok = apr_isalnum(host[i]) || host[i] == '.' || host[i] == '-' || host[i] == ':';
    }
    return ok;
}

static int parse_tcp(apr_pool_t *pool, const char *rest, okey_redis_url_t *url,
                     const char **why)
{
    const char *at = strchr(rest, '@');
    const char *slash, *colon, *host_end;
    const char *hostport;

    if (at) {
        const char *colon_at = memchr(rest, ':', (apr_size_t)(at - rest));

        if (!colon_at) {
            *why = "a user in the URL needs its password, as in redis://user:password@host";
            return 0;
        }
        url->user = colon_at > rest ? unescape(pool, rest, (apr_size_t)(colon_at - rest))
                                    : NULL;
        url->password = unescape(pool, colon_at + 1, (apr_size_t)(at - colon_at - 1));
        /* A user's password may be left to OpenAIKeyLedgerPassword. */
        if (!url->password || (!url->password[0] && colon_at == rest) ||
            (colon_at > rest && !url->user)) {
            *why = "the user or password in the URL is empty or badly %-escaped";
            return 0;
        }
        url->password = url->password[0] ? url->password : NULL;
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    hostport = slash ? apr_pstrmemdup(pool, rest, (apr_size_t)(slash - rest)) : rest;
    if (hostport[0] == '[') {
        host_end = strchr(hostport, ']');
        url->host = host_end ? apr_pstrmemdup(pool, hostport + 1,
                                              (apr_size_t)(host_end - hostport - 1)) : NULL;
        colon = host_end && host_end[1] == ':' ? host_end + 1 : NULL;
        if (!host_end || (host_end[1] && !colon) || !strchr(url->host, ':')) {
            *why = "a bracketed host must be an IPv6 address, as in redis://[::1]:6379";
            return 0;
        }
    }
    else {
        colon = strchr(hostport, ':');
        url->host = colon ? apr_pstrmemdup(pool, hostport, (apr_size_t)(colon - hostport))
                          : hostport;
        if (strchr(url->host, ':')) {
            url->host = "";
        }
    }
    if (!host_ok(url->host)) {
        *why = "the host must be a name or an address, as in redis://127.0.0.1:6379/0";
        return 0;
    }
    url->port = 6379;
    if (colon && !bounded(colon + 1, strlen(colon + 1), 1, 65535, &url->port)) {
        *why = apr_psprintf(pool, "the port of %s must be a number from 1 to 65535", url->host);
        return 0;
    }
    if (slash && slash[1] && !bounded(slash + 1, strlen(slash + 1), 0, DB_MAX, &url->db)) {
        *why = "the database after the host must be a number, as in redis://127.0.0.1/2";
        return 0;
    }
    return 1;
}

static int parse_unix(apr_pool_t *pool, const char *rest, okey_redis_url_t *url,
                      const char **why)
{
    const char *query = strchr(rest, '?');

    url->path = query ? apr_pstrmemdup(pool, rest, (apr_size_t)(query - rest)) : rest;
    if (url->path[0] != '/' || url->path[1] == '\0' || strchr(url->path, '@')) {
        *why = "the socket must be an absolute path, as in redis+unix:///run/redis/redis.sock";
        return 0;
    }
    if (query && (strncmp(query, "?db=", 4) ||
                  !bounded(query + 4, strlen(query + 4), 0, DB_MAX, &url->db))) {
        *why = "after the socket's path only ?db=N may follow";
        return 0;
    }
    return 1;
}

int okey_redis_url_parse(apr_pool_t *pool, const char *url, okey_redis_url_t *parsed,
                         const char **why)
{
    int ok;

    memset(parsed, 0, sizeof(*parsed));
    *why = NULL;
    if (!strncmp(url, "redis://", 8)) {
        ok = parse_tcp(pool, url + 8, parsed, why);
    }
    else if (!strncmp(url, "redis+unix://", 13)) {
        ok = parse_unix(pool, url + 13, parsed, why);
    }
    else {
        *why = "a Redis ledger is redis://[[user]:password@]host[:port][/db] "
               "or redis+unix:///path/redis.sock[?db=N]";
        ok = 0;
    }
    return ok;
}

static void digest_hex(const char *text, char out[41])
{
    unsigned char digest[SHA_DIGEST_LENGTH];

    SHA1((const unsigned char *)text, strlen(text), digest);
    hex(out, digest, sizeof(digest));
}

static void name_keys(redis_t *r)
{
    apr_pool_t *p = r->pool;

    r->k_count = apr_pstrcat(p, r->prefix, "n", NULL);
    r->k_gone = apr_pstrcat(p, r->prefix, "gone", NULL);
    r->k_filled = apr_pstrcat(p, r->prefix, "filled", NULL);
    r->k_projects = apr_pstrcat(p, r->prefix, "projects", NULL);
    r->k_lease = apr_pstrcat(p, r->prefix, "lease", NULL);
    r->k_reap = apr_pstrcat(p, r->prefix, "reap", NULL);
    r->k_suspects = apr_pstrcat(p, r->prefix, "suspects", NULL);
    r->k_suspect_names = apr_pstrcat(p, r->prefix, "suspect-names", NULL);
}

static apr_status_t cleanup(void *data)
{
    redis_t *r = data;

    /* Only this process's own: a parent's sockets are left alone. */
    if (r->pid == getpid()) {
        drop_idle(r);
    }
    r->idle_count = 0;
    return APR_SUCCESS;
}

apr_status_t okey_ledger_redis_create(apr_pool_t *pool, const char *url, const char *password,
                                      const char *prefix, const unsigned char mac_key[32],
                                      apr_interval_time_t timeout, okey_ledger_t **ledger,
                                      const char **why)
{
    redis_t *r = apr_pcalloc(pool, sizeof(*r));
    apr_status_t rv = APR_SUCCESS;
    unsigned int len = 0;
    int i;

    *ledger = NULL;
    *why = NULL;
    if (!okey_redis_url_parse(pool, url, &r->url, why)) {
        return APR_EINVAL;
    }
    r->pool = pool;
    r->password = password ? password : r->url.password;
    if (r->url.user && !r->password) {
        *why = "the Redis user in the URL needs a password, there or in OpenAIKeyLedgerPassword";
        return APR_EINVAL;
    }
    r->prefix = apr_pstrdup(pool, prefix ? prefix : "");
    memcpy(r->mac_key, mac_key, sizeof(r->mac_key));
    if (!HMAC(EVP_sha256(), mac_key, 32, (const unsigned char *)"okey ledger seal", 16,
              r->seal_key, &len)) {
        *why = "cannot derive the ledger's keys";
        return APR_EGENERAL;
    }
    timeout = timeout > 0 ? timeout : apr_time_from_sec(5);
    r->timeout.tv_sec = (time_t)apr_time_sec(timeout);
    r->timeout.tv_usec = (suseconds_t)apr_time_usec(timeout);
    for (i = 0; i < S_COUNT; i++) {
        digest_hex(scripts[i], r->sha[i]);
    }
    name_keys(r);
    r->locks = apr_hash_make(pool);
    r->pid = getpid();
    rv = apr_thread_mutex_create(&r->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    if (rv == APR_SUCCESS) {
        apr_pool_cleanup_register(pool, r, cleanup, apr_pool_cleanup_null);
        *ledger = apr_pcalloc(pool, sizeof(**ledger));
        (*ledger)->ops = &redis_ops;
        (*ledger)->baton = r;
    }
    else {
        *why = "cannot make the ledger's mutex";
    }
    return rv;
}

apr_uint64_t okey_ledger_redis_round_trips(const okey_ledger_t *ledger)
{
    const redis_t *r = ledger && ledger->ops == &redis_ops ? ledger->baton : NULL;

    return r ? apr_atomic_read64((volatile apr_uint64_t *)&r->round_trips) : 0;
}
