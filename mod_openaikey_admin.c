/* openaikey-admin: everyone's live keys and spend, whose a key is, and
 * revoking a key or all of a person's keys. Who may use it is httpd's
 * authentication and Require; without an authenticated user it serves
 * nothing. */
#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <apr_strings.h>

#include "mod_openaikey.h"
#include "src/admin.h"
#include "src/policy.h"
#include "src/query.h"
#include "src/figures.h"

APLOG_USE_MODULE(openaikey);

/* A revoke or a search is a few hundred bytes. */
#define BODY_MAX 4096

/* What a request asks of the console. */
typedef struct {
    const char *q;              /* a search, or NULL */
    int page;
    const char *revoke;         /* a service account id, or NULL */
    const char *revoke_person;  /* an address, or NULL */
    int json_body;
} ask_t;

/* What the console read from the ledger for a request. */
typedef struct {
    apr_array_header_t *index;  /* NULL: no poll yet */
    apr_int64_t polled_at;
    apr_hash_t *attributions;   /* key id -> okey_attribution_t * */
} figures_t;

/* --- reading the request ---------------------------------------------------- */

/* Where this handler is configured, for the administrator. */
static const char *location_of(request_rec *r)
{
    /* The core's configuration names the innermost section that applied. */
    core_dir_config *core = ap_get_core_module_config(r->per_dir_config);

    return apr_psprintf(r->pool, "<Location %s> (request %s)",
                        core && core->d ? core->d : "?", ap_escape_logitem(r->pool, r->uri));
}

static okey_err_t *require_user(request_rec *r)
{
    return r->user && *r->user ? NULL
           : okey_err_make(r->pool, HTTP_INTERNAL_SERVER_ERROR, "The admin console is not "
                           "protected here, so it serves nothing.",
                           "openaikey-admin at %s reached without an authenticated user: "
                           "put authentication and Require in front of it",
                           location_of(r));
}

/* One value of name in fields; a repeated one is a 400. */
static okey_err_t *field(request_rec *r, const apr_array_header_t *fields, const char *name,
                         const char **value)
{
    int count = 0;

    *value = fields ? okey_query_get(fields, name, &count) : NULL;
    return count > 1 ? okey_err_make(r->pool, HTTP_BAD_REQUEST, "A field is repeated.",
                                     "admin request repeats %s", name)
           : NULL;
}

static okey_err_t *read_query_string(request_rec *r, ask_t *ask)
{
    const char *why = NULL;
    apr_array_header_t *fields = r->args ? okey_query_parse(r->pool, r->args, &why) : NULL;
    const char *page = NULL;
    okey_err_t *err = why ? okey_err_make(r->pool, HTTP_BAD_REQUEST, "The query string is "
                                          "malformed.", "admin query string: %s", why)
                          : NULL;

    if (!err) {
        err = field(r, fields, "q", &ask->q);
    }
    if (!err) {
        err = field(r, fields, "page", &page);
    }
    ask->page = page ? okey_admin_page_parse(page) : 1;
    if (!err && !ask->page) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "Pages are numbered from 1.",
                            "admin page that is not a number from 1 to %d",
                            OKEY_ADMIN_PAGE_MAX);
    }
    return err;
}

/* A POST from another site is refused even where a token would catch it:
 * JSON bodies carry none. The console's pages send no referrer, so a
 * browser posts their forms with "Origin: null"; it says they are its own
 * with "Sec-Fetch-Site: same-origin", and without that a null origin is
 * refused. */
static okey_err_t *same_origin(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *origin_host = origin ? ap_strstr_c(origin, "://") : NULL;
    int own = site && !strcmp(site, "same-origin");
    int cross = (site && !own && strcmp(site, "none")) ||
                (origin && !strcmp(origin, "null") ? !own
                 : origin && (!origin_host || !host || strcasecmp(origin_host + 3, host)));

    return cross ? okey_err_make(r->pool, HTTP_FORBIDDEN, "The admin console takes "
                                 "requests from its own pages only.",
                                 "admin POST from another origin (%s)",
                                 ap_escape_logitem(r->pool, origin ? origin : site))
           : NULL;
}

static okey_err_t *read_json_body(request_rec *r, const char *body, ask_t *ask)
{
    json_t *doc = okey_json_parse(r->pool, body, strlen(body), NULL);
    const char *fields[] = {"q", "revoke", "revoke_person"};
    okey_err_t *err = json_is_object(doc) ? NULL
                      : okey_err_make(r->pool, HTTP_BAD_REQUEST, "Send a JSON object.",
                                      "admin JSON body is not an object");
    size_t i;

    for (i = 0; !err && i < sizeof(fields) / sizeof(fields[0]); i++) {
        const json_t *value = json_object_get(doc, fields[i]);

        if (value && !json_is_string(value)) {
            err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "Each field is a string.",
                                "admin JSON %s is not a string", fields[i]);
        }
    }
    if (!err) {
        ask->q = okey_json_str(doc, "q") ? okey_json_str(doc, "q") : ask->q;
        ask->revoke = okey_json_str(doc, "revoke");
        ask->revoke_person = okey_json_str(doc, "revoke_person");
    }
    return err;
}

static okey_err_t *read_form_body(request_rec *r, okey_server_conf_t *conf, const char *body,
                                  ask_t *ask)
{
    const char *why = NULL;
    apr_array_header_t *fields = okey_query_parse(r->pool, body, &why);
    const char *q = NULL, *csrf = NULL;
    okey_err_t *err = why ? okey_err_make(r->pool, HTTP_BAD_REQUEST, "The form is "
                                          "malformed.", "admin form: %s", why)
                          : NULL;

    err = err ? err : field(r, fields, "q", &q);
    err = err ? err : field(r, fields, "revoke", &ask->revoke);
    err = err ? err : field(r, fields, "revoke_person", &ask->revoke_person);
    err = err ? err : field(r, fields, "csrf", &csrf);
    ask->q = q ? q : ask->q;
    /* A search changes nothing; a revoke needs this administrator's token. */
    if (!err && (ask->revoke || ask->revoke_person) &&
        !okey_admin_token_ok(r->pool, conf->state_key, r->user, csrf, okey_now())) {
        err = okey_err_make(r->pool, HTTP_FORBIDDEN, "This form has expired or belongs to "
                            "another administrator. Open the console and try again.",
                            "admin revoke form without %s's token",
                            ap_escape_logitem(r->pool, r->user));
    }
    return err;
}

static okey_err_t *read_body(request_rec *r, okey_server_conf_t *conf, ask_t *ask)
{
    const char *type = apr_table_get(r->headers_in, "Content-Type");
    const char *body = NULL;
    okey_err_t *err = same_origin(r);

    ask->json_body = type && !strncasecmp(type, "application/json", 16);
    err = err ? err : okey_read_body(r, BODY_MAX, &body);
    if (!err && ask->json_body) {
        err = read_json_body(r, body, ask);
    }
    else if (!err && type && !strncasecmp(type, "application/x-www-form-urlencoded", 33)) {
        err = read_form_body(r, conf, body, ask);
    }
    else if (!err) {
        err = okey_err_make(r->pool, HTTP_UNSUPPORTED_MEDIA_TYPE, "Send a form or "
                            "application/json.", "admin POST with content type %s",
                            type ? ap_escape_logitem(r->pool, type) : "(none)");
    }
    if (!err && ask->revoke && ask->revoke_person) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "Revoke one key or one person's "
                            "keys, not both.", "admin POST names a key and a person");
    }
    return err;
}

/* --- revoking ---------------------------------------------------------------- */

/* The keys of email that still exist upstream (of okey_owned_key_t), all
 * of them, or the one of service_account_id. */
static okey_err_t *victims_of(request_rec *r, okey_server_conf_t *conf, const char *email,
                              const char *service_account_id, apr_array_header_t **victims)
{
    apr_array_header_t *owned = NULL;
    okey_err_t *err = okey_keys_owned(conf->runtime->keys, r->pool, email, NULL, okey_now(),
                                      1, &owned);
    int i;

    *victims = apr_array_make(r->pool, 4, sizeof(okey_owned_key_t));
    for (i = 0; !err && i < owned->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(owned, i, okey_owned_key_t);

        if (!service_account_id || !strcmp(key->service_account_id, service_account_id)) {
            APR_ARRAY_PUSH(*victims, okey_owned_key_t) = *key;
        }
    }
    if (!err && !(*victims)->nelts) {
        err = okey_err_make(r->pool, HTTP_NOT_FOUND, service_account_id
                            ? "That key no longer exists: it expired or was revoked."
                            : "That person holds no keys.",
                            "admin revoke: %s holds no key %s", email,
                            service_account_id ? service_account_id : "at all");
    }
    return err;
}

/* Whose the key to revoke is, or whose keys; a 400 for what cannot be an
 * id or an address, a 404 for one no key of ours has. */
static okey_err_t *owner_of(request_rec *r, const ask_t *ask, const figures_t *figures,
                            const char **email)
{
    const okey_attribution_t *who = NULL;
    okey_err_t *err = NULL;

    *email = NULL;
    if (ask->revoke_person) {
        *email = okey_lower(r->pool, ask->revoke_person);
        err = okey_policy_address_valid(*email) ? NULL
              : okey_err_make(r->pool, HTTP_BAD_REQUEST, "That is not an e-mail address.",
                              "admin revoke_person is not an address");
    }
    else if (!okey_admin_id_valid(ask->revoke, "svc_acct_")) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, "That is not a service account id "
                            "(svc_acct_...).", "admin revoke is not a service account id");
    }
    else if (!(who = okey_admin_account(figures->attributions, ask->revoke))) {
        err = okey_err_make(r->pool, HTTP_NOT_FOUND, "No key of this server has that "
                            "service account id.", "admin revoke of %s: no key of ours",
                            ask->revoke);
    }
    else {
        *email = who->email;
    }
    return err;
}

/* Deletes what ask names; *gone: the keys that are gone. */
static okey_err_t *revoke_asked(request_rec *r, okey_server_conf_t *conf, const ask_t *ask,
                                const figures_t *figures, apr_array_header_t **gone)
{
    const char *email = NULL;
    apr_array_header_t *victims = NULL;
    okey_err_t *err = owner_of(r, ask, figures, &email);
    int entered = !err && okey_in_flight_enter(r, conf->runtime, &err);

    if (entered) {
        err = victims_of(r, conf, email, ask->revoke, &victims);
        if (!err) {
            *gone = okey_report_revokes(r, okey_keys_revoke(conf->runtime->keys, r->pool,
                                                            email, victims),
                                        email, OKEY_REVOKED_ADMIN);
            err = (*gone)->nelts == victims->nelts ? NULL
                  : okey_err_make(r->pool, HTTP_BAD_GATEWAY, "OpenAI did not confirm every "
                                  "revoke. Search again to see what is left.",
                                  "admin revoke: %d of %d failed",
                                  victims->nelts - (*gone)->nelts, victims->nelts);
        }
        okey_in_flight_leave(conf->runtime);
    }
    return err;
}

/* --- what the console shows --------------------------------------------------- */

static void read_figures(request_rec *r, okey_server_conf_t *conf, figures_t *figures)
{
    const char *text = NULL;
    apr_hash_t *entries = NULL;

    okey_ledger_store_get(conf->ledger, r->pool, OKEY_STORE_SPEND, OKEY_FIGURES_INDEX, &text);
    figures->polled_at = 0;
    figures->index = text ? okey_spend_index_parse(r->pool, text, &figures->polled_at) : NULL;
    okey_ledger_store_all(conf->ledger, r->pool, OKEY_STORE_KEYS, &entries);
    figures->attributions = okey_attributions_parse(r->pool, entries);
}

/* The project a budget is held in: the server's, by id. NULL: all. */
static const char *budget_project(request_rec *r, okey_server_conf_t *conf)
{
    const okey_config_t *cfg = conf->cfg;
    const char *project_id = okey_keys_is_project_id(cfg->project) ? cfg->project : NULL;

    if (cfg->budget.set && !project_id) {
        okey_ledger_project_get(conf->ledger, r->pool, cfg->project, &project_id);
    }
    return project_id;
}

/* keys (of okey_admin_key_t) less those the ledger, where it answers for
 * their owner, no longer records: a key revoked since the last usage poll
 * is gone, though that poll listed it. */
static apr_array_header_t *still_recorded(request_rec *r, okey_server_conf_t *conf,
                                          const apr_array_header_t *keys)
{
    apr_array_header_t *kept = apr_array_make(r->pool, keys->nelts + 1, sizeof(okey_admin_key_t));
    int i;

    for (i = 0; i < keys->nelts; i++) {
        const okey_admin_key_t *key = &APR_ARRAY_IDX(keys, i, okey_admin_key_t);
        apr_array_header_t *recorded = NULL;
        int complete = 0;

        okey_ledger_keys_of(conf->ledger, r->pool, key->who.email, key->who.project_id,
                            &recorded, &complete);
        if (!complete || okey_keys_held(recorded, key->who.service_account_id)) {
            APR_ARRAY_PUSH(kept, okey_admin_key_t) = *key;
        }
    }
    return kept;
}

/* The live keys the search finds. */
static apr_array_header_t *search(request_rec *r, okey_server_conf_t *conf,
                                  const okey_admin_query_t *query, const figures_t *figures)
{
    apr_array_header_t *owners = okey_admin_owners(r->pool, query, figures->index,
                                                   figures->attributions);
    apr_hash_t *documents = apr_hash_make(r->pool);
    apr_array_header_t *keys;
    int i;

    for (i = 0; query->by != OKEY_ADMIN_BY_NOTHING && i < owners->nelts; i++) {
        const char *email = APR_ARRAY_IDX(owners, i, const char *);
        okey_person_spend_t *person = okey_figures_person(conf->ledger, r->pool, email);

        if (person) {
            apr_hash_set(documents, email, APR_HASH_KEY_STRING, person);
        }
    }
    keys = still_recorded(r, conf, okey_admin_keys(r->pool, query, owners, documents,
                                                   figures->attributions, okey_now()));
    if (query->by != OKEY_ADMIN_BY_NOTHING) {
        /* What was searched stays out of the log: a pasted key above all. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, OKEY_LOGNO(500) "admin %s searched "
                      "(%s) and found %d live keys", ap_escape_logitem(r->pool, r->user),
                      query->by == OKEY_ADMIN_BY_KEY ? "a key value"
                      : query->by == OKEY_ADMIN_BY_ACCOUNT ? "a service account id"
                      : query->by == OKEY_ADMIN_BY_KEY_ID ? "a key id" : "an address",
                      keys->nelts);
    }
    return keys;
}

static json_t *people_json(const okey_admin_people_t *people, const okey_budget_t *budget)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < people->people->nelts; i++) {
        const okey_admin_person_t *person = &APR_ARRAY_IDX(people->people, i,
                                                           okey_admin_person_t);

        json_array_append_new(list, json_pack("{s:s, s:i, s:f, s:o, s:b}", "email",
                                              person->email, "live_keys", person->live_keys,
                                              "spend_usd", person->spend_usd, "budget_usd",
                                              budget->set ? json_real(budget->amount)
                                                          : json_null(),
                                              "over_budget", person->over_budget));
    }
    return list;
}

static json_t *keys_json(const apr_array_header_t *keys)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < keys->nelts; i++) {
        const okey_admin_key_t *key = &APR_ARRAY_IDX(keys, i, okey_admin_key_t);

        json_array_append_new(list, json_pack(
            "{s:s, s:o, s:s, s:s, s:I, s:I, s:o, s:o}",
            "service_account_id", key->who.service_account_id,
            "api_key_id", key->api_key_id ? json_string(key->api_key_id) : json_null(),
            "email", key->who.email, "project", key->who.project_id,
            "created_at", (json_int_t)key->who.created_at,
            "expires_at", (json_int_t)key->who.expires,
            "last_used_at", key->last_used_at >= 0 ? json_integer(key->last_used_at)
                                                   : json_null(),
            "cost_usd", key->cost_usd >= 0 ? json_real(key->cost_usd) : json_null()));
    }
    return list;
}

static json_t *revoked_json(const apr_array_header_t *gone)
{
    json_t *list = json_array();
    int i;

    for (i = 0; i < gone->nelts; i++) {
        json_array_append_new(list, json_string(APR_ARRAY_IDX(gone, i, okey_owned_key_t)
                                                    .service_account_id));
    }
    return list;
}

static const char *revoked_message(request_rec *r, const apr_array_header_t *gone)
{
    const char *ids = "";
    int i;

    for (i = 0; i < gone->nelts; i++) {
        ids = apr_pstrcat(r->pool, ids, i ? ", " : "",
                          APR_ARRAY_IDX(gone, i, okey_owned_key_t).service_account_id, NULL);
    }
    return apr_psprintf(r->pool, "Revoked %d key%s: %s. Spend figures change with the next "
                        "usage poll.", gone->nelts, gone->nelts == 1 ? "" : "s", ids);
}

static int send_console(request_rec *r, okey_server_conf_t *conf, const ask_t *ask,
                        const okey_admin_query_t *query, const figures_t *figures,
                        const apr_array_header_t *gone)
{
    okey_admin_people_t people;
    apr_array_header_t *keys = search(r, conf, query, figures);
    const char *nonce = NULL;
    okey_err_t *err = NULL;
    int status = OK;

    okey_admin_people(r->pool, figures->index, &conf->cfg->budget, budget_project(r, conf),
                      okey_now(), ask->page, &people);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    if (okey_accepts_json(r) || ask->json_body) {
        json_t *doc = okey_json_own(r->pool, json_pack(
            "{s:o, s:o, s:o}", "people", people_json(&people, &conf->cfg->budget),
            "keys", keys_json(keys),
            "next_page", people.next_page ? json_integer(people.next_page) : json_null()));

        if (gone) {
            json_object_set_new(doc, "revoked", revoked_json(gone));
        }
        okey_send_json(r, doc);
    }
    else if ((err = okey_random_b64url(r->pool, 18, &nonce)) != NULL) {
        status = okey_send_error(r, err);
    }
    else {
        okey_page_admin_t admin = {r->user, r->uri,
                                   okey_admin_token(r->pool, conf->state_key, r->user,
                                                    okey_now()),
                                   &people, &conf->cfg->budget, figures->polled_at, query,
                                   keys, gone ? revoked_message(r, gone) : NULL};

        status = okey_send_html(r, HTTP_OK, okey_page_admin(r->pool, &admin, nonce));
    }
    return status;
}

int okey_admin_handler(request_rec *r)
{
    okey_err_t *err = okey_method_error(r, "GET, HEAD, POST");
    okey_server_conf_t *conf = err ? NULL : okey_ready_conf(r, &err);
    ask_t ask = {NULL, 1, NULL, NULL, 0};
    okey_admin_query_t query;
    figures_t figures = {NULL, 0, NULL};
    apr_array_header_t *gone = NULL;
    const char *why = NULL;

    err = err ? err : require_user(r);
    err = err ? err : read_query_string(r, &ask);
    if (!err && r->method_number == M_POST) {
        err = read_body(r, conf, &ask);
    }
    if (!err && (why = okey_admin_query_parse(r->pool, ask.q, &query)) != NULL) {
        err = okey_err_make(r->pool, HTTP_BAD_REQUEST, apr_pstrcat(r->pool, "Search for an "
                            "address, a service account id, a key id or a key: ", why, ".",
                            NULL), "admin search: %s", why);
    }
    if (!err) {
        read_figures(r, conf, &figures);
    }
    if (!err && (ask.revoke || ask.revoke_person)) {
        err = revoke_asked(r, conf, &ask, &figures, &gone);
    }
    if (err && err->endpoint) {
        okey_shm_count_upstream_error(r->server, (okey_endpoint_e)err->endpoint);
    }
    return err ? okey_send_error(r, err) : send_console(r, conf, &ask, &query, &figures, gone);
}
