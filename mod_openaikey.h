/* What the glue files of mod_openaikey share. Not a public API.
 *
 *   mod_openaikey.c         module record, directives, configuration, hooks,
 *                           handler dispatch and the response helpers
 *   mod_openaikey_signin.c  openaikey-login, openaikey-callback,
 *                           openaikey-issue
 *   mod_openaikey_keys.c    openaikey-keys, the My keys session, the cap
 *   mod_openaikey_admin.c   openaikey-admin, the admin console
 *   mod_openaikey_ops.c     openaikey-cleanup, openaikey-status,
 *                           openaikey-metrics
 *   mod_openaikey_shm.c     shared memory: counters, places in flight
 *   mod_openaikey_ledger.c  each key server's ledger (src/ledger.h)
 *   mod_openaikey_reaper.c  the reaper thread of each child
 */
#ifndef MOD_OPENAIKEY_H
#define MOD_OPENAIKEY_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include <apr_atomic.h>
#include <apr_hash.h>

#include "src/config.h"
#include "src/keys.h"
#include "src/ledger.h"
#include "src/oidc.h"
#include "src/page.h"
#include "src/reap_run.h"
#include "src/session.h"
#include "src/state.h"

extern module AP_MODULE_DECLARE_DATA openaikey_module;

typedef struct okey_reaper_thread_t okey_reaper_thread_t;

/* Per-process objects of one key server, made in child_init. */
typedef struct okey_runtime_t {
    okey_http_t *http;
    okey_oidc_t *oidc;
    okey_keys_t *keys;
    okey_logger_t logger;
    server_rec *server;
    apr_uint32_t max_in_flight;       /* of the key server, in all children */
    okey_reaper_thread_t *reaper;     /* the child's, or NULL */
} okey_runtime_t;

typedef struct okey_server_conf_t {
    okey_raw_config_t raw;
    okey_config_t *cfg;           /* resolved in check_config; NULL: unused */
    okey_state_key_t *state_key;  /* derived in post_config */
    int slot;                     /* in shared memory, set in post_config */
    unsigned char slot_id[32];    /* what the slot must still hold */
    okey_ledger_t *ledger;        /* made in post_config */
    okey_logger_t logger;         /* the server's error log */
    okey_runtime_t *runtime;      /* made in child_init */
} okey_server_conf_t;

okey_server_conf_t *okey_server_conf(server_rec *s);

/* A <Location>'s settings: a profile where any is set. */
typedef struct okey_dir_conf_t {
    okey_raw_config_t raw;   /* NULL where the section sets nothing */
    const char *path;        /* of the section, for messages */
    int is_profile;
} okey_dir_conf_t;

/* The settings that apply where per_dir says: the server's, or a profile's
 * built on them (in pool). NULL with *err when the profile is invalid. */
const okey_config_t *okey_profile(request_rec *r, okey_server_conf_t *conf,
                                  ap_conf_vector_t *per_dir, okey_err_t **err);

/* --- responses (mod_openaikey.c) ----------------------------------------- */

int okey_send_html(request_rec *r, int status, okey_page_t page);
/* Logs err for the administrator, as okey_send_error does. */
void okey_log_error(request_rec *r, const okey_err_t *err);
/* What err tells the person. */
const char *okey_error_message(const okey_err_t *err);
int okey_send_error(request_rec *r, const okey_err_t *err);
void okey_send_json(request_rec *r, json_t *doc);
/* NULL when the method is in allow (an Allow header value), else the 405. */
okey_err_t *okey_method_error(request_rec *r, const char *allow);
/* The request's key server, or NULL with *err when it is not configured. */
okey_server_conf_t *okey_ready_conf(request_rec *r, okey_err_t **err);
int okey_accepts_json(request_rec *r);
/* The request body, at most max bytes (else a 413), as a string. */
okey_err_t *okey_read_body(request_rec *r, apr_size_t max, const char **body);

/* Wakes the child's reaper, if it has one, to look for due reaps now. */
void okey_runtime_wake_reaper(okey_runtime_t *rt);

/* Takes one of the key server's upstream places, shared by all children,
 * or answers 503 with Retry-After when all are taken (*err). Release with
 * okey_in_flight_leave once done. */
int okey_in_flight_enter(request_rec *r, okey_runtime_t *rt, okey_err_t **err);
void okey_in_flight_leave(okey_runtime_t *rt);

/* --- handlers ------------------------------------------------------------- */

int okey_login_handler(request_rec *r);
int okey_callback_handler(request_rec *r);
int okey_cleanup_handler(request_rec *r);
int okey_status_handler(request_rec *r);
int okey_metrics_handler(request_rec *r);
int okey_keys_handler(request_rec *r);
int okey_issue_handler(request_rec *r);
int okey_admin_handler(request_rec *r);

/* --- self-service (mod_openaikey_keys.c) ---------------------------------- */

/* Sets the My keys session cookie for a verified address; NULL when the
 * server offers no self-service or the session could not be made. */
const okey_session_t *okey_session_start(request_rec *r, okey_server_conf_t *conf,
                                         const char *email, const char *subject);
/* The path of this server's My keys, or NULL when it serves none. */
const char *okey_keys_url(request_rec *r);
void okey_audit_revoked(request_rec *r, const okey_owned_key_t *key, const char *email,
                        okey_revoked_by_e by);
/* Audits and counts what a revoke did (revokes of okey_revoke_t) for
 * email; returns the keys that are gone (of okey_owned_key_t). */
apr_array_header_t *okey_report_revokes(request_rec *r, const apr_array_header_t *revokes,
                                        const char *email, okey_revoked_by_e by);

/* --- shared memory (mod_openaikey_shm.c) ---------------------------------- */

/* Counts of one project a key server issues into. */
#define OKEY_STATS_PROJECTS 16
typedef struct okey_project_stats_t {
    char name[128];                   /* empty: unused */
    apr_uint64_t keys_issued, keys_reaped;
} okey_project_stats_t;

/* A key server's record in shared memory, as /status and /metrics see it. */
typedef struct okey_stats_t {
    apr_uint64_t keys_issued, issue_failures, reaps, keys_reaped, reap_failures;
    apr_uint64_t denied[OKEY_DENIED_COUNT];
    apr_uint64_t upstream_errors[OKEY_ENDPOINT_COUNT];
    apr_uint64_t keys_revoked[OKEY_REVOKED_COUNT];
    int reap_running;
    apr_int64_t last_start, last_end;  /* Unix seconds */
    double last_duration;              /* seconds */
    int last_ok;
    int last_cancelled;                /* its child stopped it */
    int last_listed, last_deleted, last_failed, last_kept, last_skipped;
    int last_projects;
    char last_error_class[48];         /* e.g. "upstream 500"; never text */
    int ledger_up;                     /* the ledger's backend answers */
    apr_int64_t ledger_records;        /* keys it records */
    apr_uint64_t ledger_errors;        /* calls its backend failed */
    apr_uint64_t usage_poll_failures;
    apr_int64_t last_usage_poll;       /* this server's last good poll; 0: none */
    okey_project_stats_t projects[OKEY_STATS_PROJECTS];
} okey_stats_t;

void okey_shm_register(apr_pool_t *pconf);
int okey_shm_post_config(apr_pool_t *pconf, server_rec *main_server);
apr_status_t okey_shm_child_init(apr_pool_t *pchild, server_rec *main_server);

/* The state-cookie key bytes drawn once for the parent's life, for key
 * servers without a passphrase: the same across restarts, so that sign-ins
 * in flight survive them. NULL when no random bytes could be had. */
const unsigned char *okey_shm_random_key(void);

void okey_shm_count_issue(server_rec *s, int issued);
/* Records how a usage poll this server ran went. */
void okey_shm_usage_polled(server_rec *s, int ok);
void okey_shm_count_denied(server_rec *s, okey_denied_e reason);
void okey_shm_count_upstream_error(server_rec *s, okey_endpoint_e endpoint);
void okey_shm_count_revoked(server_rec *s, okey_revoked_by_e by, int n);
/* Counts keys issued into and reaped from the project named project. */
void okey_shm_count_project(server_rec *s, const char *project, int issued, int reaped);
void okey_shm_snapshot(server_rec *s, okey_stats_t *stats);

/* Takes one of the key server's max places for requests waiting on
 * upstream services, counted across its children; 0 when all are taken. A
 * child that dies holding places stops counting once httpd sees it die. */
int okey_shm_in_flight_enter(server_rec *s, apr_uint32_t max);
/* Gives back a place this process took. */
void okey_shm_in_flight_leave(server_rec *s);

/* Records that a reap began, and how the reap ended, for /status. */
void okey_shm_reap_started(server_rec *s);
void okey_shm_finish_reap(server_rec *s, const okey_reap_summary_t *summary);

/* --- the ledger (mod_openaikey_ledger.c) ------------------------------------ */

void okey_ledger_register(apr_pool_t *pconf);
/* Makes each key server's ledger (conf->ledger), and the state directory
 * of each that keeps files; after okey_shm_post_config. */
int okey_ledger_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *main_server);
apr_status_t okey_ledger_child_init(apr_pool_t *pchild, server_rec *main_server);

/* --- the reaper thread (mod_openaikey_reaper.c) --------------------------- */

apr_status_t okey_reaper_start(apr_pool_t *pchild, server_rec *main_server,
                               okey_reaper_thread_t **reaper);
/* Set once the child is told to stop. */
volatile const int *okey_reaper_stopping(okey_reaper_thread_t *reaper);
/* Wakes the reaper so that it looks for due or requested reaps now. */
void okey_reaper_wake(okey_reaper_thread_t *reaper);
void okey_reaper_hooks(void);

#endif
