/* What the two glue files of mod_openaikey share. Not a public API. */
#ifndef MOD_OPENAIKEY_H
#define MOD_OPENAIKEY_H

#include "httpd.h"
#include "http_config.h"

#include "src/config.h"
#include "src/keys.h"
#include "src/oidc.h"
#include "src/reaper.h"
#include "src/state.h"

extern module AP_MODULE_DECLARE_DATA openaikey_module;

/* Per-process objects of one key server, made in child_init. */
typedef struct okey_runtime_t {
    okey_http_t *http;
    okey_oidc_t *oidc;
    okey_keys_t *keys;
    okey_logger_t logger;
} okey_runtime_t;

typedef struct okey_server_conf_t {
    okey_raw_config_t raw;
    okey_config_t *cfg;           /* resolved in check_config; NULL: unused */
    okey_state_key_t *state_key;  /* derived in post_config */
    int slot;                     /* in shared memory, set in post_config */
    okey_runtime_t *runtime;      /* made in child_init */
} okey_server_conf_t;

/* A key server's record in shared memory: the reap single-flight and the
 * counters of /status, common to every child. */
typedef struct okey_slot_t {
    char key[256];               /* which server; empty: free */
    int running;                 /* a reap is under way */
    apr_int64_t last_start;      /* Unix seconds; the single-flight timestamp */
    apr_int64_t last_end;
    int last_ok;
    int last_listed, last_deleted, last_failed, last_kept;
    char last_error[256];
    apr_uint64_t keys_issued, issue_failures, reaps, keys_reaped, reap_failures;
} okey_slot_t;

okey_server_conf_t *okey_server_conf(server_rec *s);

void okey_shared_register(apr_pool_t *pconf);
void okey_shared_hooks(void);
int okey_shared_post_config(apr_pool_t *pconf, server_rec *main_server);
void okey_shared_child_init(apr_pool_t *pchild, server_rec *main_server);

/* Counts one sign-in's outcome for /status. */
void okey_shared_count_issue(server_rec *s, int issued);

/* Reaps now unless a reap is under way, in which case waits for it; either
 * way *slot is the record after that reap. */
void okey_shared_reap_now(server_rec *s, apr_pool_t *pool, okey_slot_t *slot);

/* A consistent copy of a server's record. */
void okey_shared_snapshot(server_rec *s, okey_slot_t *slot);

#endif
