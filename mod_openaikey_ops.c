/* Operations: openaikey-cleanup (a reap on demand), openaikey-status
 * (JSON) and openaikey-metrics (Prometheus text). None of them shows a
 * secret, a file path or upstream text. */
#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"

#include <apr_strings.h>

#include "mod_openaikey.h"
#include "src/figures.h"

APLOG_USE_MODULE(openaikey);

/* A reap that ended this recently is reported instead of starting one. */
#define RECENT_REAP 2
#define REAP_POLL apr_time_from_msec(50)

/* How long /revoke waits for a reap before answering 202: long enough for
 * a small project, short enough not to hold a worker. */
static apr_interval_time_t reap_wait(const okey_config_t *cfg)
{
    apr_int64_t seconds = 2 * cfg->timeout;

    return apr_time_from_sec(seconds < 2 ? 2 : (seconds > 20 ? 20 : seconds));
}

static json_t *last_reap_json(apr_pool_t *pool, const okey_stats_t *stats)
{
    json_t *reap = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
                             "projects", (json_int_t)stats->last_projects,
                             "listed", (json_int_t)stats->last_listed,
                             "deleted", (json_int_t)stats->last_deleted,
                             "failed", (json_int_t)stats->last_failed,
                             "kept", (json_int_t)stats->last_kept,
                             "not_attempted", (json_int_t)stats->last_skipped);

    json_object_set_new(reap, "start", stats->last_start
                        ? json_string(okey_iso8601(pool, stats->last_start)) : json_null());
    json_object_set_new(reap, "end", stats->last_end
                        ? json_string(okey_iso8601(pool, stats->last_end)) : json_null());
    json_object_set_new(reap, "result",
                        !stats->last_end ? json_null()
                        : json_string(stats->last_ok ? "ok"
                                      : (stats->last_error_class[0]
                                         ? stats->last_error_class : "failed")));
    json_object_set_new(reap, "running", json_boolean(stats->reap_running));
    return reap;
}

/* The counts of project, zero when none was counted yet. */
static okey_project_stats_t project_stats(const okey_stats_t *stats, const char *project)
{
    okey_project_stats_t found;
    int i;

    memset(&found, 0, sizeof(found));
    for (i = 0; i < OKEY_STATS_PROJECTS; i++) {
        if (!strcmp(stats->projects[i].name, project)) {
            found = stats->projects[i];
        }
    }
    return found;
}

/* Every project the server issues into (its own and its profiles'), with
 * its counts. */
static json_t *projects_json(apr_pool_t *pool, const okey_config_t *cfg,
                             const okey_stats_t *stats)
{
    apr_array_header_t *names = okey_terms_projects(pool, cfg);
    json_t *list = json_array();
    int i;

    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        okey_project_stats_t counts = project_stats(stats, name);

        json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "name", name,
                                              "keys_issued", (json_int_t)counts.keys_issued,
                                              "keys_reaped",
                                              (json_int_t)counts.keys_reaped));
    }
    return list;
}

static json_t *revoked_json(const okey_stats_t *stats)
{
    json_t *revoked = json_object();
    int by;

    for (by = 0; by < OKEY_REVOKED_COUNT; by++) {
        json_object_set_new(revoked, okey_revoked_names[by],
                            json_integer((json_int_t)stats->keys_revoked[by]));
    }
    return revoked;
}

int okey_status_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    okey_stats_t stats;
    json_t *doc;

    if (err) {
        return okey_send_error(r, err);
    }
    okey_shm_snapshot(r->server, &stats);
    doc = okey_json_own(r->pool, json_pack(
        "{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "version", OKEY_VERSION,
        "server", conf->cfg->server_name, "project", conf->cfg->project,
        "projects", projects_json(r->pool, conf->cfg, &stats),
        "keys_issued", (json_int_t)stats.keys_issued, "issue_failures",
        (json_int_t)stats.issue_failures, "reaps", (json_int_t)stats.reaps,
        "keys_reaped", (json_int_t)stats.keys_reaped, "reap_failures",
        (json_int_t)stats.reap_failures, "keys_revoked", revoked_json(&stats),
        "last_reap", last_reap_json(r->pool, &stats)));
    okey_send_json(r, doc);
    return OK;
}

/* --- openaikey-cleanup ---------------------------------------------------- */

/* Marks a reap as wanted and wakes this child's reaper to run it. */
static void ask_for_reap(request_rec *r, okey_runtime_t *rt)
{
    okey_ledger_reap_request(okey_server_conf(r->server)->ledger);
    okey_runtime_wake_reaper(rt);
}

/* Waits a bounded time for the reap under way to end, or asks this child's
 * reaper for one and waits for that. 1 when it ended in time. */
static int reap_and_wait(request_rec *r, okey_server_conf_t *conf,
                         okey_stats_t *stats)
{
    okey_runtime_t *rt = conf->runtime;
    apr_time_t deadline = apr_time_now() + reap_wait(conf->cfg);
    apr_uint64_t reaps_before = stats->reaps;
    int done = 0;

    if (!stats->reap_running) {
        ask_for_reap(r, rt);
    }
    while (!done && apr_time_now() < deadline) {
        apr_sleep(REAP_POLL);
        okey_shm_snapshot(r->server, stats);
        done = stats->reaps > reaps_before && !stats->reap_running;
        /* Its child was stopping (the MPM retires idle children): ask this
         * child's reaper to run it again. */
        if (done && stats->last_cancelled) {
            reaps_before = stats->reaps;
            done = 0;
            ask_for_reap(r, rt);
        }
    }
    return done;
}

static void send_reap_report(request_rec *r, okey_server_conf_t *conf,
                             const okey_stats_t *stats)
{
    if (okey_accepts_json(r)) {
        okey_send_json(r, okey_json_own(r->pool, last_reap_json(r->pool, stats)));
    }
    else {
        apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
        ap_set_content_type(r, "text/plain; charset=utf-8");
        ap_rprintf(r, "reap of project %s: listed %d, deleted %d, failed %d, kept %d, "
                   "not attempted %d%s%s\n", conf->cfg->project, stats->last_listed,
                   stats->last_deleted, stats->last_failed, stats->last_kept,
                   stats->last_skipped, stats->last_error_class[0] ? "; " : "",
                   stats->last_error_class);
    }
}

static int send_reap_pending(request_rec *r)
{
    apr_table_setn(r->err_headers_out, "Retry-After", "10");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    r->status = HTTP_ACCEPTED;
    if (okey_accepts_json(r)) {
        okey_send_json(r, okey_json_own(r->pool, json_pack("{s:b}", "running", 1)));
    }
    else {
        ap_set_content_type(r, "text/plain; charset=utf-8");
        ap_rputs("a reap is under way; ask again later for its result\n", r);
    }
    return OK;
}

int okey_cleanup_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, POST");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    okey_stats_t stats;
    int reported = 0;

    if (!err && okey_in_flight_enter(r, conf->runtime, &err)) {
        okey_shm_snapshot(r->server, &stats);
        /* Reaps are idempotent: a fresh result is as good as a new reap, and
         * callers cannot make the server reap back to back. */
        reported = !stats.reap_running && stats.last_end && !stats.last_cancelled &&
                   okey_now() - stats.last_end < RECENT_REAP;
        reported = reported || reap_and_wait(r, conf, &stats);
        okey_in_flight_leave(conf->runtime);
    }
    if (err) {
        return okey_send_error(r, err);
    }
    if (!reported) {
        return send_reap_pending(r);
    }
    send_reap_report(r, conf, &stats);
    return OK;
}

/* --- openaikey-metrics ---------------------------------------------------- */

/* A label value as the text format wants it escaped. */
static const char *label(apr_pool_t *pool, const char *value)
{
    char *out = apr_palloc(pool, strlen(value) * 2 + 1);
    char *o = out;

    for (; *value; value++) {
        if (*value == '\\' || *value == '"' || *value == '\n') {
            *o++ = '\\';
        }
        *o++ = *value == '\n' ? 'n' : *value;
    }
    *o = '\0';
    return out;
}

static void metric_head(request_rec *r, const char *name, const char *type,
                        const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(request_rec *r, const char *name, const char *server,
                    apr_uint64_t value, const char *help)
{
    metric_head(r, name, "counter", help);
    ap_rprintf(r, "%s{server=\"%s\"} %" APR_UINT64_T_FMT "\n", name, server, value);
}

static void labelled(request_rec *r, const char *name, const char *server,
                     const char *key, const char *const *names,
                     const apr_uint64_t *values, int first, int count)
{
    int i;

    for (i = first; i < count; i++) {
        ap_rprintf(r, "%s{server=\"%s\",%s=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
                   server, key, names[i], values[i]);
    }
}

/* One counter per project the server issues into; reaped picks which. */
static void project_counter(request_rec *r, const char *name, const char *help,
                            const char *server, apr_array_header_t *projects,
                            const okey_stats_t *st, int reaped)
{
    int i;

    metric_head(r, name, "counter", help);
    for (i = 0; i < projects->nelts; i++) {
        const char *project = APR_ARRAY_IDX(projects, i, const char *);
        okey_project_stats_t counts = project_stats(st, project);

        ap_rprintf(r, "%s{server=\"%s\",project=\"%s\"} %" APR_UINT64_T_FMT "\n", name,
                   server, label(r->pool, project),
                   reaped ? counts.keys_reaped : counts.keys_issued);
    }
}

/* The period a project's spend is reported for: its budget's, else a month. */
static okey_period_e spend_period(const okey_terms_t *terms)
{
    okey_period_e period = OKEY_PERIOD_MONTH;
    int i;

    for (i = 0; terms && terms->issuers && i < terms->issuers->nelts; i++) {
        const okey_config_t *issuer = APR_ARRAY_IDX(terms->issuers, i, const okey_config_t *);

        period = issuer->budget.set ? issuer->budget.period : period;
    }
    return period;
}

/* What the fleet's last usage poll found each project cost this period,
 * read from the ledger (never from OpenAI), and how polls went. */
static void write_spend_metrics(request_rec *r, const char *server, okey_server_conf_t *conf,
                                const okey_stats_t *st)
{
    apr_array_header_t *projects = okey_terms_projects(r->pool, conf->cfg);
    okey_person_spend_t *fleet = okey_figures_fleet(conf->ledger, r->pool);
    apr_int64_t polled_at = fleet ? fleet->polled_at : 0;
    int i;

    metric_head(r, "openaikey_spend_usd", "gauge",
                "Cost OpenAI reported for the project's keys this period, USD.");
    for (i = 0; i < projects->nelts; i++) {
        const char *project = APR_ARRAY_IDX(projects, i, const char *);
        okey_period_e period = spend_period(okey_terms_for(r->pool, conf->cfg, project));
        const char *id = okey_keys_is_project_id(project) ? project : NULL;

        if (!id) {
            okey_ledger_project_get(conf->ledger, r->pool, project, &id);
        }
        ap_rprintf(r, "openaikey_spend_usd{server=\"%s\",project=\"%s\",period=\"%s\"} "
                   "%.6f\n", server, label(r->pool, project), okey_period_names[period],
                   id ? okey_spend_in_period(fleet, id, period, okey_now()) : 0.0);
    }
    counter(r, "openaikey_budget_refusals_total", server, st->denied[OKEY_DENIED_BUDGET],
            "Sign-ins and issues refused: the person was at or over their budget.");
    counter(r, "openaikey_usage_poll_failures_total", server, st->usage_poll_failures,
            "Usage polls this server ran that failed.");
    metric_head(r, "openaikey_last_usage_poll_timestamp_seconds", "gauge",
                "When the last usage poll of the fleet ended, Unix seconds (0: none yet).");
    ap_rprintf(r, "openaikey_last_usage_poll_timestamp_seconds{server=\"%s\"} %"
               APR_INT64_T_FMT "\n", server,
               polled_at > st->last_usage_poll ? polled_at : st->last_usage_poll);
}

/* Keys issued into and reaped from each project the server issues into. */
static void write_project_metrics(request_rec *r, const char *server,
                                  const okey_config_t *cfg, const okey_stats_t *st)
{
    apr_array_header_t *projects = okey_terms_projects(r->pool, cfg);

    project_counter(r, "openaikey_project_keys_issued_total", "Keys issued, by project.",
                    server, projects, st, 0);
    project_counter(r, "openaikey_project_keys_reaped_total",
                    "Expired keys deleted by the reaper, by project.", server, projects,
                    st, 1);
}

static void write_metrics(request_rec *r, const char *server, const okey_stats_t *st)
{
    counter(r, "openaikey_keys_issued_total", server, st->keys_issued,
            "Keys issued.");
    counter(r, "openaikey_issue_failures_total", server, st->issue_failures,
            "Sign-ins that failed for a reason on the server's side.");
    metric_head(r, "openaikey_sign_ins_denied_total", "counter",
                "Sign-ins refused, by reason.");
    labelled(r, "openaikey_sign_ins_denied_total", server, "reason", okey_denied_names,
             st->denied, 1, OKEY_DENIED_COUNT);
    metric_head(r, "openaikey_upstream_errors_total", "counter",
                "Failed requests to the provider or the Admin API, by endpoint.");
    labelled(r, "openaikey_upstream_errors_total", server, "endpoint",
             okey_endpoint_names, st->upstream_errors, 1, OKEY_ENDPOINT_COUNT);
    counter(r, "openaikey_keys_reaped_total", server, st->keys_reaped,
            "Expired keys deleted by the reaper.");
    metric_head(r, "openaikey_keys_revoked_total", "counter",
                "Live keys deleted before their expiry, by who asked.");
    labelled(r, "openaikey_keys_revoked_total", server, "by", okey_revoked_names,
             st->keys_revoked, 0, OKEY_REVOKED_COUNT);
    counter(r, "openaikey_reaps_total", server, st->reaps, "Reaps run.");
    counter(r, "openaikey_reap_failures_total", server, st->reap_failures,
            "Reaps that could not finish or left deletes failed.");
    metric_head(r, "openaikey_last_reap_timestamp_seconds", "gauge",
                "When the last reap ended, Unix seconds (0: none yet).");
    ap_rprintf(r, "openaikey_last_reap_timestamp_seconds{server=\"%s\"} %"
               APR_INT64_T_FMT "\n", server, st->last_end);
    metric_head(r, "openaikey_last_reap_duration_seconds", "gauge",
                "How long the last reap took.");
    ap_rprintf(r, "openaikey_last_reap_duration_seconds{server=\"%s\"} %.3f\n", server,
               st->last_duration);
    metric_head(r, "openaikey_reap_running", "gauge", "1 while a reap runs.");
    ap_rprintf(r, "openaikey_reap_running{server=\"%s\"} %d\n", server,
               st->reap_running);
    metric_head(r, "openaikey_ledger_up", "gauge",
                "1 while the ledger's backend answers; 0 while this server falls back "
                "to its own shared memory.");
    ap_rprintf(r, "openaikey_ledger_up{server=\"%s\"} %d\n", server, st->ledger_up);
    metric_head(r, "openaikey_ledger_records", "gauge", "Keys the ledger records.");
    ap_rprintf(r, "openaikey_ledger_records{server=\"%s\"} %" APR_INT64_T_FMT "\n", server,
               st->ledger_records);
    counter(r, "openaikey_ledger_errors_total", server, st->ledger_errors,
            "Calls the ledger's backend failed.");
}

int okey_metrics_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    okey_stats_t stats;

    if (err) {
        return okey_send_error(r, err);
    }
    okey_shm_snapshot(r->server, &stats);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (!r->header_only) {
        write_metrics(r, label(r->pool, conf->cfg->server_name), &stats);
        write_project_metrics(r, label(r->pool, conf->cfg->server_name), conf->cfg, &stats);
        if (conf->cfg->usage_interval) {
            write_spend_metrics(r, label(r->pool, conf->cfg->server_name), conf, &stats);
        }
    }
    return OK;
}
