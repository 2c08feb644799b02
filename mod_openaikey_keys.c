/* Self-service: openaikey-keys ("My keys"), the session that authorizes
 * it, and the per-address cap a sign-in enforces. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>

#include "mod_openaikey.h"
#include "src/figures.h"
#include "src/query.h"
#include "src/session.h"

APLOG_USE_MODULE(openaikey);

#define KEYS_HANDLER "openaikey-keys"
#define KEYS_PATH "/keys"
/* A revoke form or JSON body is a few hundred bytes. */
#define BODY_MAX 4096
/* How often one person may have My keys list the projects: when asked to
 * refresh, and when the ledger cannot answer or vouch for a revoke. */
#define REFRESH_EVERY apr_time_from_sec(60)
#define LISTING_EVERY apr_time_from_sec(3)

/* --- the session ------------------------------------------------------------ */

const okey_session_t *okey_session_start(request_rec *r, okey_server_conf_t *conf,
                                         const char *email, const char *subject)
{
    const okey_config_t *cfg = conf->cfg;
    okey_session_t *session = NULL;
    const char *sealed = NULL;
    okey_err_t *err = cfg->session_lifetime
                      ? okey_session_new(r->pool, email, cfg->issuer, subject, okey_now(),
                                         cfg->session_lifetime, &session)
                      : NULL;

    if (!err && session) {
        err = okey_session_seal(r->pool, conf->state_key, session, &sealed);
    }
    if (err) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, OKEY_LOGNO(106) "no My keys "
                      "session for %s: %s", email, err->log_msg);
        session = NULL;
    }
    if (sealed) {
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       okey_session_set_cookie(r->pool, sealed, cfg->session_lifetime,
                                               cfg->redirect_is_https));
    }
    return session;
}

/* The request's session, or NULL; a cookie that is no longer good is
 * cleared, and why is logged. */
static const okey_session_t *current_session(request_rec *r, okey_server_conf_t *conf)
{
    int secure = conf->cfg->redirect_is_https;
    const char *sealed = okey_session_cookie(r->pool, apr_table_get(r->headers_in,
                                                                    "Cookie"), secure);
    const char *why = NULL;
    const okey_session_t *session = sealed
        ? okey_session_open(r->pool, conf->state_key, sealed, okey_now(), &why) : NULL;

    if (session && !okey_strieq(session->issuer, conf->cfg->issuer)) {
        why = "session cookie names another issuer";
        session = NULL;
    }
    if (why) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OKEY_LOGNO(107) "%s", why);
        apr_table_addn(r->err_headers_out, "Set-Cookie",
                       okey_session_set_cookie(r->pool, NULL, 0, secure));
    }
    return session;
}

const char *okey_keys_url(request_rec *r)
{
    request_rec *sub = ap_sub_req_lookup_uri(KEYS_PATH, r, NULL);
    int served = sub->status == HTTP_OK && sub->handler &&
                 !strcmp(sub->handler, KEYS_HANDLER);

    ap_destroy_sub_req(sub);
    return served ? KEYS_PATH : NULL;
}

/* --- openaikey-keys -------------------------------------------------------- */

/* What a POST asks to revoke: an id, or "all". */
static okey_err_t *read_revoke(request_rec *r, okey_server_conf_t *conf,
                               const okey_session_t *session, const char **target)
{
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    const char *body = NULL;
    okey_err_t *err = okey_read_body(r, BODY_MAX, &body);
    int is_json = type && !strncasecmp(type, "application/json", 16);
    int is_form = type && !strncasecmp(type, "application/x-www-form-urlencoded", 33);

    *target = NULL;
    if (!err && is_json) {
        json_t *doc = okey_json_parse(r->pool, body, strlen(body), NULL);

        *target = doc ? okey_json_str(doc, "revoke") : NULL;
    }
    else if (!err && is_form) {
        const char *why = NULL;
        apr_array_header_t *fields = okey_query_parse(r->pool, body, &why);
        int ids = 0, tokens = 0;
        const char *csrf = okey_query_get(fields, "csrf", &tokens);

        *target = okey_query_get(fields, "service_account", &ids);
        if (ids > 1 || tokens != 1 ||
            !okey_session_csrf_ok(r->pool, conf->state_key, session, csrf)) {
            err = okey_err_make(r->pool, HTTP_FORBIDDEN, "This form has expired or "
                                "belongs to another sign-in. Open My keys and try again.",
                                "revoke form without this session's CSRF token");
            *target = NULL;
        }
    }
    else if (!err) {
        err = okey_err_make(r->pool, HTTP_UNSUPPORTED_MEDIA_TYPE, "Send the revoke as a "
                            "form or as application/json.", "revoke with content type %s",
                            type ? ap_escape_logitem(r->pool, type) : "(none)");
    }
    if (!err && (!*target || !*target[0] || strlen(*target) > 128)) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "Say which key to revoke: its "
                            "service account id, or all.", "revoke names no key");
    }
    return err;
}

/* The keys of owned that target names (one id, or all); a named id that is
 * not among them is a 404, and nothing changes. */
static okey_err_t *pick_victims(request_rec *r, const apr_array_header_t *owned,
                                const char *target, apr_array_header_t **victims)
{
    int all = !strcmp(target, "all");
    okey_err_t *err = NULL;
    int i;

    *victims = apr_array_make(r->pool, 4, sizeof(okey_owned_key_t));
    for (i = 0; i < owned->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(owned, i, okey_owned_key_t);

        if (all || !strcmp(key->service_account_id, target)) {
            APR_ARRAY_PUSH(*victims, okey_owned_key_t) = *key;
        }
    }
    if (!all && (*victims)->nelts == 0) {
        err = okey_err_make(r->pool, HTTP_NOT_FOUND, "You have no key with that id. "
                            "It may have expired or been revoked already.",
                            "revoke of %s: no key of this session's address has it",
                            ap_escape_logitem(r->pool, target));
    }
    return err;
}

/* owned without the keys in gone. */
static apr_array_header_t *remaining(apr_pool_t *pool, const apr_array_header_t *owned,
                                     const apr_array_header_t *gone)
{
    apr_array_header_t *left = apr_array_make(pool, owned->nelts + 1,
                                              sizeof(okey_owned_key_t));
    int i, j;

    for (i = 0; i < owned->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(owned, i, okey_owned_key_t);
        int revoked = 0;

        for (j = 0; j < gone->nelts && !revoked; j++) {
            revoked = !strcmp(key->service_account_id,
                              APR_ARRAY_IDX(gone, j, okey_owned_key_t).service_account_id);
        }
        if (!revoked) {
            APR_ARRAY_PUSH(left, okey_owned_key_t) = *key;
        }
    }
    return left;
}

/* -1 (unknown) as null. */
static json_t *known(apr_int64_t figure)
{
    return figure < 0 ? json_null() : json_integer(figure);
}

/* A key's usage members, null where no report has said. */
static void add_figures(json_t *doc, const okey_key_spend_t *figures)
{
    json_object_set_new(doc, "api_key_id", figures ? json_string(figures->api_key_id)
                                                   : json_null());
    json_object_set_new(doc, "last_used_at", known(figures ? figures->last_used_at : -1));
    json_object_set_new(doc, "requests", known(figures ? figures->requests : -1));
    json_object_set_new(doc, "input_tokens", known(figures ? figures->input_tokens : -1));
    json_object_set_new(doc, "output_tokens", known(figures ? figures->output_tokens : -1));
    json_object_set_new(doc, "cost_usd", figures && figures->cost_usd >= 0
                                         ? json_real(figures->cost_usd) : json_null());
}

static json_t *keys_json(const apr_array_header_t *keys, const okey_person_spend_t *person)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < keys->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(keys, i, okey_owned_key_t);
        json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:I}",
                                "service_account_id", key->service_account_id,
                                "name", key->name, "project_id", key->project_id,
                                "created_at", (json_int_t)key->created_at, "expires_at",
                                (json_int_t)key->expires);

        add_figures(doc, okey_spend_key(person, key->service_account_id));
        json_array_append_new(list, doc);
    }
    return list;
}

static json_t *spend_json(const okey_spend_view_t *spend)
{
    return json_pack("{s:s, s:o, s:o, s:I}", "period", okey_period_names[spend->period],
                     "amount_usd", spend->person ? json_real(spend->amount_usd) : json_null(),
                     "budget_usd", spend->budget->set ? json_real(spend->budget->amount)
                                                      : json_null(),
                     "resets_at", (json_int_t)spend->resets_at);
}

/* What the last usage poll found email spent: in the server's project
 * when it has a budget, else in all its projects. */
static void spend_of(request_rec *r, okey_server_conf_t *conf, const char *email,
                     okey_spend_view_t *spend)
{
    const okey_config_t *cfg = conf->cfg;
    okey_person_spend_t *person = cfg->usage_interval
                                  ? okey_figures_person(conf->ledger, r->pool, email) : NULL;
    const char *project_id = NULL;

    if (cfg->budget.set) {
        project_id = okey_keys_is_project_id(cfg->project) ? cfg->project : NULL;
        if (!project_id) {
            okey_ledger_project_get(conf->ledger, r->pool, cfg->project, &project_id);
        }
    }
    okey_spend_view(spend, person, project_id ? project_id : (cfg->budget.set ? "" : NULL),
                    &cfg->budget, okey_now());
}

static int send_keys(request_rec *r, okey_server_conf_t *conf,
                     const okey_session_t *session, const apr_array_header_t *owned,
                     const apr_array_header_t *gone)
{
    const char *nonce = NULL;
    okey_err_t *err = NULL;
    int status = OK;
    okey_spend_view_t spend;

    spend_of(r, conf, session->email, &spend);
    if (okey_accepts_json(r)) {
        json_t *doc = okey_json_own(r->pool, json_pack("{s:s, s:s, s:o, s:o}", "email",
                                                       session->email, "project",
                                                       conf->cfg->project, "keys",
                                                       keys_json(owned, spend.person),
                                                       "spend", spend_json(&spend)));

        if (gone) {
            json_object_set_new(doc, "revoked", keys_json(gone, spend.person));
        }
        okey_send_json(r, doc);
    }
    else if ((err = okey_random_b64url(r->pool, 18, &nonce)) != NULL) {
        status = okey_send_error(r, err);
    }
    else {
        okey_page_links_t links = {r->uri, okey_session_csrf(r->pool, conf->state_key,
                                                             session)};
        const char *message = !gone ? NULL
                              : gone->nelts == 1 ? "Revoked 1 key."
                              : apr_psprintf(r->pool, "Revoked %d keys.", gone->nelts);

        okey_lifetimes_t lifetimes = {conf->cfg->expiration, conf->cfg->max_expiration};

        status = okey_send_html(r, HTTP_OK,
                                okey_page_my_keys(r->pool, session->email,
                                                  conf->cfg->project, owned, okey_now(),
                                                  message, &links, &lifetimes, nonce,
                                                  &spend));
    }
    return status;
}

/* A revoke without a session changes nothing, and says so: a script must
 * not take it for done. */
static okey_err_t *no_session_post(request_rec *r)
{
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    int json = okey_accepts_json(r) || (type && !strncasecmp(type, "application/json", 16));
    okey_err_t *err = okey_err_make(r->pool, json ? HTTP_UNAUTHORIZED : HTTP_FORBIDDEN,
                                    "Sign in to My keys first: nothing was revoked.",
                                    "revoke without a valid My keys session");

    if (json) {
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Cookie");
    }
    return err;
}

/* Whether the request asks for a fresh listing: ?refresh=1. */
static int wants_refresh(request_rec *r)
{
    const char *why = NULL;
    apr_array_header_t *fields = r->args ? okey_query_parse(r->pool, r->args, &why) : NULL;
    int count = 0;
    const char *refresh = fields ? okey_query_get(fields, "refresh", &count) : NULL;

    return count == 1 && refresh && !strcmp(refresh, "1");
}

/* How much a view of My keys trusts the ledger. */
typedef enum {
    VIEW_LEDGER,   /* the ledger, unless it cannot answer */
    VIEW_REFRESH,  /* asked for a refresh: a listing, once a REFRESH_EVERY */
    VIEW_LISTING   /* a revoke the ledger cannot vouch for: a listing */
} view_e;

/* Records listed keys the ledger lacks, so that the next view and revoke
 * need no listing. */
static void record_listed(request_rec *r, okey_server_conf_t *conf, const char *email,
                          const apr_array_header_t *known, const apr_array_header_t *listed)
{
    apr_array_header_t *view = NULL;
    int complete = 0;
    int i;

    for (i = 0; i < listed->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(listed, i, okey_owned_key_t);

        if (!okey_keys_held(known, key->service_account_id)) {
            okey_ledger_record(conf->ledger, r->pool, email, key, apr_time_now(), &view,
                               &complete);
        }
    }
}

/* What a request must see, given what the ledger holds (known): "Revoke
 * all" and a key the ledger does not hold are judged by a listing, so that
 * no key a person means to be rid of survives a stale ledger. */
static view_e view_for(request_rec *r, const apr_array_header_t *known, const char *target)
{
    return target && (!strcmp(target, "all") || !okey_keys_held(known, target))
           ? VIEW_LISTING : wants_refresh(r) ? VIEW_REFRESH : VIEW_LEDGER;
}

/* The person's keys (of okey_owned_key_t), expired ones too, for target (a
 * key to revoke, all, or NULL): from the ledger, or from a listing of the
 * projects, at most once a REFRESH_EVERY per person for a refresh and once
 * a LISTING_EVERY otherwise. A listing asked sooner gets the ledger's
 * answer, or, when it cannot answer, 429. */
static okey_err_t *keys_of(request_rec *r, okey_server_conf_t *conf, const char *email,
                           const char *target, apr_array_header_t **owned)
{
    view_e view;
    apr_array_header_t *known = NULL;
    int complete = 0;
    int allowed = 0;
    apr_int64_t wait = 0;
    okey_err_t *err = NULL;

    okey_ledger_keys_of(conf->ledger, r->pool, email, NULL, &known, &complete);
    *owned = known;
    view = view_for(r, known, target);
    if (!complete) {
        okey_ledger_reap_request(conf->ledger);
        view = VIEW_LISTING;
    }
    if (view != VIEW_LEDGER) {
        okey_ledger_may_list(conf->ledger, email, apr_time_now(),
                             view == VIEW_REFRESH ? REFRESH_EVERY : LISTING_EVERY, &allowed,
                             &wait);
    }
    if (allowed) {
        err = okey_keys_owned(conf->runtime->keys, r->pool, email, NULL, okey_now(), 1,
                              owned);
    }
    else if (!complete) {
        err = okey_err_make(r->pool, HTTP_TOO_MANY_REQUESTS,
                            apr_psprintf(r->pool, "My keys was opened very often just now. "
                                         "Please wait %" APR_INT64_T_FMT " seconds.", wait),
                            "My keys of %s: a listing is needed and the listing limit is "
                            "reached, retry in %" APR_INT64_T_FMT " s", email, wait);
        err->retry_after = wait;
    }
    if (allowed && !err) {
        record_listed(r, conf, email, known, *owned);
    }
    return err;
}

/* No session: a page that signs in for My keys, or a 401 for scripts. */
static int send_sign_in(request_rec *r, const okey_config_t *cfg)
{
    okey_lifetimes_t lifetimes = {cfg->expiration, cfg->max_expiration};
    const char *nonce = NULL;
    okey_err_t *err = okey_random_b64url(r->pool, 18, &nonce);
    int status = OK;

    if (okey_accepts_json(r)) {
        r->status = HTTP_UNAUTHORIZED;
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", "Cookie");
        okey_send_json(r, okey_json_own(r->pool, json_pack(
            "{s:s, s:s}", "error", "sign in first", "sign_in", "/?next=keys")));
    }
    else if (err) {
        status = okey_send_error(r, err);
    }
    else {
        status = okey_send_html(r, HTTP_OK, okey_page_keys_sign_in(r->pool, &lifetimes,
                                                                   nonce));
    }
    return status;
}

int okey_keys_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD, POST");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    const okey_session_t *session = NULL;
    apr_array_header_t *owned = NULL, *victims = NULL, *gone = NULL;
    const char *target = NULL;
    int entered = 0;

    if (!err && !conf->cfg->session_lifetime) {
        err = okey_err_make(r->pool, HTTP_NOT_FOUND, "This server does not offer My "
                            "keys.", "openaikey-keys with OpenAIKeySessionLifetime 0");
    }
    session = err ? NULL : current_session(r, conf);
    if (!err && !session && r->method_number == M_POST) {
        err = no_session_post(r);
    }
    if (!err && session && r->method_number == M_POST) {
        err = read_revoke(r, conf, session, &target);
    }
    entered = !err && session && okey_in_flight_enter(r, conf->runtime, &err);
    if (entered) {
        err = keys_of(r, conf, session->email, target, &owned);
        if (!err && target) {
            err = pick_victims(r, owned, target, &victims);
        }
        if (!err && victims) {
            gone = okey_report_revokes(r, okey_keys_revoke(conf->runtime->keys, r->pool,
                                                           session->email, victims),
                                       session->email, OKEY_REVOKED_USER);
            owned = remaining(r->pool, owned, gone);
            err = gone->nelts == victims->nelts ? NULL
                  : okey_err_make(r->pool, HTTP_BAD_GATEWAY, "OpenAI did not confirm "
                                  "every revoke. Open My keys to see what is left.",
                                  "%d of %d revokes failed", victims->nelts - gone->nelts,
                                  victims->nelts);
        }
        okey_in_flight_leave(conf->runtime);
    }
    if (err && err->endpoint) {
        okey_shm_count_upstream_error(r->server, (okey_endpoint_e)err->endpoint);
    }
    return err ? okey_send_error(r, err)
           : !session ? send_sign_in(r, conf->cfg) : send_keys(r, conf, session, owned, gone);
}
