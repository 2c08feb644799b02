/* Self-contained pages: no external CSS, fonts or scripts. */
#include "page.h"

#include <apr_strings.h>
#include <string.h>

#include "lifetime.h"

static const char STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;"
    "max-width:60rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f;"
    "line-height:1.5}"
    "h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:2rem}"
    "select{font:inherit;padding:.3rem}"
    "code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}"
    "pre{background:#f4f4f6;padding:.75rem;border-radius:6px;"
    "overflow-x:auto;word-break:break-all;white-space:pre-wrap}"
    "button{font:inherit;padding:.4rem 1rem;border-radius:6px;"
    "border:1px solid #888;background:#fff;cursor:pointer}"
    "dt{font-weight:600}dd{margin:0 0 .5rem 0}"
    "form{display:inline;margin:0}table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;"
    "vertical-align:top;font-size:.9rem}"
    "td.n,th.n{text-align:right;white-space:nowrap}.unknown{color:#6e6e73;font-style:italic}"
    ".note{color:#555;font-size:.9rem}.actions{margin:1rem 0}"
    /* The admin console: a search box as tall as its button, and key rows
     * whose ids, values and times read on one line each. */
    "#q{font:inherit;padding:.4rem .6rem;border-radius:6px;border:1px solid #888;"
    "max-width:100%}#found{margin-bottom:.5rem}"
    "#keys code,#keys td:nth-child(5),#keys td:nth-child(6){white-space:nowrap}"
    "#people td:first-child{font-weight:500}tr.over td{background:#fff4f2}";

static const char SCRIPT[] =
    "(function(){"
    "var k=document.getElementById('key'),b=document.getElementById('copy'),"
    "e=document.getElementById('local');"
    "b.addEventListener('click',function(){"
    "navigator.clipboard.writeText(k.textContent).then(function(){"
    "b.textContent='Copied';},function(){b.textContent='Copy failed';});});"
    "var t=new Date(e.getAttribute('data-utc'));"
    "if(!isNaN(t)){e.textContent=t.toLocaleString();}"
    "})();";

const char *okey_html_escape(apr_pool_t *pool, const char *text)
{
    apr_size_t len = strlen(text);
    char *out = apr_palloc(pool, len * 6 + 1);
    char *dst = out;
    const char *src;

    for (src = text; *src; src++) {
        const char *entity = NULL;

        switch (*src) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = "&quot;"; break;
        case '\'': entity = "&#39;"; break;
        default: break;
        }
        if (entity) {
            memcpy(dst, entity, strlen(entity));
            dst += strlen(entity);
        }
        else {
            *dst++ = *src;
        }
    }
    *dst = '\0';
    return out;
}

/* The CSP of a page whose inline style and script carry nonce, and whose
 * forms post to this origin only. */
static const char *page_csp(apr_pool_t *pool, const char *nonce)
{
    return apr_psprintf(pool,
                        "default-src 'none'; style-src 'nonce-%s'; "
                        "script-src 'nonce-%s'; base-uri 'none'; "
                        "form-action 'self'; frame-ancestors 'none'",
                        nonce, nonce);
}

static const char *page_head(apr_pool_t *pool, const char *title, const char *nonce,
                             const char *extra)
{
    return apr_pstrcat(
        pool,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">", extra ? extra : "",
        "<title>", okey_html_escape(pool, title), "</title>"
        "<style nonce=\"", nonce, "\">", STYLE, "</style></head><body>\n"
        "<h1>", okey_html_escape(pool, title), "</h1>\n", NULL);
}

/* A form that posts one revoke (an id, or all) with the session's token. */
static const char *revoke_form(apr_pool_t *pool, const okey_page_links_t *links,
                               const char *id, const char *label)
{
    return apr_pstrcat(pool, "<form method=\"post\" action=\"",
                       okey_html_escape(pool, links->keys_url), "\">"
                       "<input type=\"hidden\" name=\"service_account\" value=\"",
                       okey_html_escape(pool, id), "\">"
                       "<input type=\"hidden\" name=\"csrf\" value=\"",
                       okey_html_escape(pool, links->csrf), "\">"
                       "<button type=\"submit\">", label, "</button></form>", NULL);
}

static const char *revoked_list(apr_pool_t *pool, const apr_array_header_t *revoked)
{
    const char *items = "";
    int i;

    for (i = 0; revoked && i < revoked->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(revoked, i, okey_owned_key_t);

        items = apr_pstrcat(pool, items, "<li><code>",
                            okey_html_escape(pool, key->service_account_id),
                            "</code> (created ", okey_iso8601(pool, key->created_at),
                            ")</li>", NULL);
    }
    return *items ? apr_pstrcat(pool, "<p id=\"revoked\">To stay within the limit "
                                "of keys per person, this sign-in revoked your "
                                "oldest keys:</p><ul>", items, "</ul>\n", NULL)
                  : "";
}

okey_page_t okey_page_key(apr_pool_t *pool, const okey_issued_t *issued,
                          const apr_array_header_t *revoked,
                          const okey_page_links_t *links, const char *script_nonce)
{
    okey_page_t page;
    const char *key = okey_html_escape(pool, issued->api_key);
    const char *utc = okey_iso8601(pool, issued->expires);
    int self_service = links->keys_url && links->csrf;

    page.csp = page_csp(pool, script_nonce);
    page.html = apr_pstrcat(
        pool, page_head(pool, "Your temporary OpenAI API key", script_nonce, NULL),
        "<p>Signed in as <strong>", okey_html_escape(pool, issued->email),
        "</strong>.</p>\n"
        "<pre id=\"key\">", key, "</pre>\n"
        "<p><button id=\"copy\" type=\"button\">Copy key</button></p>\n"
        "<p>In a shell:</p>\n<pre>export OPENAI_API_KEY=", key, "</pre>\n"
        "<dl><dt>Project</dt><dd>", okey_html_escape(pool, issued->project),
        "</dd>\n<dt>Expires</dt><dd id=\"lifetime\">in ",
        okey_lifetime_text(pool, issued->lifetime), "</dd><dd><time datetime=\"", utc,
        "\">", utc, "</time> (UTC)<br><span id=\"local\" data-utc=\"", utc,
        "\"></span></dd></dl>\n", revoked_list(pool, revoked),
        self_service ? revoke_form(pool, links, issued->service_account_id,
                                   "Revoke this key now") : "",
        self_service ? apr_pstrcat(pool, "<p><a id=\"my-keys\" href=\"",
                                   okey_html_escape(pool, links->keys_url),
                                   "\">My keys</a></p>\n", NULL) : "",
        "<p class=\"note\">The key is shown once and deletes itself when it "
        "expires. Keep it secret; sign in again for a new one.</p>\n"
        "<script nonce=\"", script_nonce, "\">", SCRIPT, "</script>\n"
        "</body></html>\n", NULL);
    return page;
}

/* A figure, or "unknown": never 0 for what no report has said. */
static const char *count_text(apr_pool_t *pool, apr_int64_t count)
{
    return count < 0 ? "<span class=\"unknown\">unknown</span>"
                     : apr_psprintf(pool, "%" APR_INT64_T_FMT, count);
}

/* The usage columns of one key's row. */
static const char *usage_cells(apr_pool_t *pool, const okey_key_spend_t *figures)
{
    apr_int64_t used = figures ? figures->last_used_at : -1;

    return apr_pstrcat(pool, "<td>", used < 0 ? count_text(pool, -1)
                                     : used == 0 ? "never" : okey_iso8601(pool, used),
                       "</td><td class=\"n\">", count_text(pool, figures ? figures->requests : -1),
                       "</td><td class=\"n\">",
                       count_text(pool, figures ? figures->input_tokens : -1), " / ",
                       count_text(pool, figures ? figures->output_tokens : -1),
                       "</td><td class=\"n\">",
                       figures && figures->cost_usd >= 0 ? okey_usd(pool, figures->cost_usd)
                                                         : count_text(pool, -1),
                       "</td>", NULL);
}

/* What the person spent this period, against their budget. */
static const char *spend_summary(apr_pool_t *pool, const okey_spend_view_t *spend)
{
    const char *period = okey_period_names[spend->period];
    const char *text = !spend->person
        ? "<p id=\"spend\">Spend: <span class=\"unknown\">unknown</span> (no usage "
          "report has named your keys yet).</p>\n"
        : apr_pstrcat(pool, "<p id=\"spend\">Spent this ", period, ": <strong>",
                      okey_usd(pool, spend->amount_usd), "</strong>",
                      spend->budget->set
                          ? apr_pstrcat(pool, " of your <strong>",
                                        okey_usd(pool, spend->budget->amount),
                                        "</strong> budget", NULL) : "",
                      "; the ", period, " ends at ", okey_iso8601(pool, spend->resets_at),
                      ". Figures as of ", okey_iso8601(pool, spend->person->polled_at),
                      ", as OpenAI reports them (with a delay).</p>\n", NULL);

    return text;
}

static const char *key_rows(apr_pool_t *pool, const apr_array_header_t *owned,
                            apr_int64_t now, const okey_page_links_t *links,
                            const okey_spend_view_t *spend)
{
    const char *rows = "";
    int i;

    for (i = 0; i < owned->nelts; i++) {
        const okey_owned_key_t *key = &APR_ARRAY_IDX(owned, i, okey_owned_key_t);
        const char *left = key->expires > now
                           ? apr_pstrcat(pool, "in ", okey_lifetime_text(pool,
                                                                          key->expires - now),
                                         NULL)
                           : "expired; being deleted";

        rows = apr_pstrcat(pool, rows, "<tr><td><code>",
                           okey_html_escape(pool, key->service_account_id),
                           "</code></td><td>", okey_iso8601(pool, key->created_at),
                           "</td><td>", okey_iso8601(pool, key->expires), "<br>",
                           left, "</td>",
                           usage_cells(pool, okey_spend_key(spend->person,
                                                            key->service_account_id)),
                           "<td>",
                           revoke_form(pool, links, key->service_account_id, "Revoke"),
                           "</td></tr>\n", NULL);
    }
    return rows;
}

/* A form that starts a sign-in for a new key with a chosen lifetime: the
 * default, and common lifetimes up to the longest allowed. */
static const char *lifetime_options(apr_pool_t *pool, const okey_lifetimes_t *lifetimes)
{
    static const apr_int64_t common[] = {900, 3600, 28800, 86400, 604800, 2592000};
    const char *options = apr_psprintf(pool, "<option value=\"%" APR_INT64_T_FMT
                                       "\" selected>%s</option>", lifetimes->standard,
                                       okey_lifetime_text(pool, lifetimes->standard));
    apr_size_t i;

    for (i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        if (common[i] <= lifetimes->longest && common[i] != lifetimes->standard) {
            options = apr_psprintf(pool, "%s<option value=\"%" APR_INT64_T_FMT "\">%s"
                                   "</option>", options, common[i],
                                   okey_lifetime_text(pool, common[i]));
        }
    }
    return options;
}

static const char *new_key_form(apr_pool_t *pool, const okey_lifetimes_t *lifetimes)
{
    const char *options = lifetime_options(pool, lifetimes);

    return apr_pstrcat(pool, "<h2>A new key</h2>\n<div class=\"actions\"><form id=\"new-key\" method=\"get\" "
                       "action=\"/\"><label for=\"ttl\">Lifetime </label>"
                       "<select id=\"ttl\" name=\"ttl\">", options, "</select> "
                       "<button type=\"submit\">Sign in for a new key</button></form></div>\n",
                       NULL);
}

okey_page_t okey_page_issue(apr_pool_t *pool, const char *email, const char *action,
                            const char *token, const okey_lifetimes_t *lifetimes,
                            const char *nonce)
{
    okey_page_t page;

    page.csp = page_csp(pool, nonce);
    page.html = apr_pstrcat(
        pool, page_head(pool, "Get a temporary OpenAI API key", nonce, NULL),
        "<p>Signed in as <strong>", okey_html_escape(pool, email), "</strong>.</p>\n"
        "<form id=\"issue\" method=\"post\" action=\"", okey_html_escape(pool, action),
        "\"><input type=\"hidden\" name=\"csrf\" value=\"",
        okey_html_escape(pool, token), "\"><div class=\"actions\">"
        "<label for=\"ttl\">Lifetime </label><select id=\"ttl\" name=\"ttl\">",
        lifetime_options(pool, lifetimes), "</select> "
        "<button type=\"submit\">Get a key</button></div></form>\n"
        "<p class=\"note\">The key is shown once and deletes itself when it expires."
        "</p>\n</body></html>\n", NULL);
    return page;
}

okey_page_t okey_page_keys_sign_in(apr_pool_t *pool, const okey_lifetimes_t *lifetimes,
                                   const char *nonce)
{
    okey_page_t page;

    page.csp = page_csp(pool, nonce);
    page.html = apr_pstrcat(
        pool, page_head(pool, "My keys", nonce, NULL),
        "<p>Sign in to see and revoke the keys you hold.</p>\n"
        "<p><a id=\"sign-in\" href=\"/?next=keys\">Sign in</a></p>\n",
        new_key_form(pool, lifetimes), "</body></html>\n", NULL);
    return page;
}

okey_page_t okey_page_my_keys(apr_pool_t *pool, const char *email,
                              const char *project, const apr_array_header_t *owned,
                              apr_int64_t now, const char *message,
                              const okey_page_links_t *links,
                              const okey_lifetimes_t *lifetimes, const char *nonce,
                              const okey_spend_view_t *spend)
{
    okey_page_t page;

    page.csp = page_csp(pool, nonce);
    page.html = apr_pstrcat(
        pool, page_head(pool, "My keys", nonce, NULL),
        "<p>Signed in as <strong>", okey_html_escape(pool, email),
        "</strong>. Keys in project <strong>", okey_html_escape(pool, project),
        "</strong>. A key's value cannot be shown again; revoke what you no longer "
        "need.</p>\n",
        message ? apr_pstrcat(pool, "<p id=\"message\" role=\"status\">",
                              okey_html_escape(pool, message), "</p>\n", NULL) : "",
        owned->nelts
            ? apr_pstrcat(pool, spend_summary(pool, spend),
                          "<table id=\"keys\"><thead><tr><th>Service account"
                          "</th><th>Created (UTC)</th><th>Expires (UTC)</th>"
                          "<th>Last used</th><th>Requests</th><th>Tokens in / out</th>"
                          "<th>Cost</th><th></th>"
                          "</tr></thead><tbody>\n", key_rows(pool, owned, now, links, spend),
                          "</tbody></table>\n<div class=\"actions\">",
                          revoke_form(pool, links, "all", "Revoke all my keys"), "</div>\n",
                          NULL)
            : "<p id=\"none\">You have no keys.</p>\n",
        new_key_form(pool, lifetimes), "</body></html>\n", NULL);
    return page;
}

/* --- the admin console --------------------------------------------------- */

/* A time on the console, to the minute: the column says UTC. */
static const char *admin_time(apr_pool_t *pool, apr_int64_t unix_seconds)
{
    char *text = apr_pstrdup(pool, okey_iso8601(pool, unix_seconds));
    char *t = strchr(text, 'T');

    if (t && strlen(t) >= 6) {
        *t = ' ';
        t[6] = '\0';
    }
    return text;
}

/* A form that posts one field (revoke or revoke_person) with the token. */
static const char *admin_form(apr_pool_t *pool, const okey_page_admin_t *admin,
                              const char *field, const char *value, const char *label)
{
    return apr_pstrcat(pool, "<form method=\"post\" action=\"",
                       okey_html_escape(pool, admin->action), "\">"
                       "<input type=\"hidden\" name=\"", field, "\" value=\"",
                       okey_html_escape(pool, value), "\">"
                       "<input type=\"hidden\" name=\"csrf\" value=\"",
                       okey_html_escape(pool, admin->token), "\">"
                       "<button type=\"submit\">", label, "</button></form>", NULL);
}

static const char *admin_search_form(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    /* A pasted key is never echoed back, nor posted anywhere but here. */
    const char *value = admin->query->by == OKEY_ADMIN_BY_KEY ? "" : admin->query->text;

    return apr_pstrcat(pool, "<form id=\"search\" method=\"post\" action=\"",
                       okey_html_escape(pool, admin->action), "\">"
                       "<input type=\"hidden\" name=\"csrf\" value=\"",
                       okey_html_escape(pool, admin->token), "\">"
                       "<label for=\"q\">Find </label><input id=\"q\" name=\"q\" size=\"48\" "
                       "autocomplete=\"off\" value=\"", okey_html_escape(pool, value), "\" "
                       "placeholder=\"address, svc_acct_…, key_…, or a leaked sk-… key\"> "
                       "<button type=\"submit\">Search</button></form>\n"
                       "<p class=\"note\">Searches are sent in the request body, so a pasted "
                       "key never lands in a URL or an access log; it is compared with the "
                       "keys' redacted forms and neither stored nor logged.</p>\n", NULL);
}

static const char *admin_people_rows(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    const char *rows = "";
    const char *budget = admin->budget->set ? okey_usd(pool, admin->budget->amount) : "none";
    int i;

    for (i = 0; i < admin->people->people->nelts; i++) {
        const okey_admin_person_t *person = &APR_ARRAY_IDX(admin->people->people, i,
                                                           okey_admin_person_t);
        const char *email = okey_html_escape(pool, person->email);

        rows = apr_pstrcat(pool, rows, person->over_budget ? "<tr class=\"over\">" : "<tr>",
                           "<td><a href=\"?q=",
                           okey_html_escape(pool, okey_form_escape(pool, person->email)),
                           "\">", email, "</a></td><td class=\"n\">",
                           apr_itoa(pool, person->live_keys), "</td><td class=\"n\">",
                           okey_usd(pool, person->spend_usd), "</td><td class=\"n\">", budget,
                           "</td><td>", person->over_budget ? "<strong>over</strong>" : "no",
                           "</td></tr>\n", NULL);
    }
    return rows;
}

static const char *admin_paging(apr_pool_t *pool, const okey_admin_people_t *people)
{
    const char *previous = people->page > 1
        ? apr_psprintf(pool, "<a id=\"previous\" href=\"?page=%d\">Previous</a> ",
                       people->page - 1) : "";
    const char *next = people->next_page
        ? apr_psprintf(pool, " <a id=\"next\" href=\"?page=%d\">Next</a>", people->next_page)
        : "";

    return apr_psprintf(pool, "<p class=\"note\">%sPage %d of %d (%d people)%s</p>\n",
                        previous, people->page,
                        (people->total + OKEY_ADMIN_PAGE_SIZE - 1) / OKEY_ADMIN_PAGE_SIZE
                            ? (people->total + OKEY_ADMIN_PAGE_SIZE - 1) / OKEY_ADMIN_PAGE_SIZE
                            : 1,
                        people->total, next);
}

static const char *admin_people(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    const char *period = okey_period_names[admin->people->period];

    return !admin->polled_at
        ? "<p id=\"no-poll\">No usage poll has reported yet: spend is "
          "<span class=\"unknown\">unknown</span>.</p>\n"
        : apr_pstrcat(pool, "<h2>People</h2>\n<p class=\"note\">Spend this ", period,
                      ", as OpenAI reported it at ", okey_iso8601(pool, admin->polled_at),
                      "; highest first.</p>\n"
                      "<table id=\"people\"><thead><tr><th>Address</th>"
                      "<th class=\"n\">Live keys</th><th class=\"n\">Spend this ", period,
                      "</th><th class=\"n\">Budget</th><th>Over?</th></tr>"
                      "</thead><tbody>\n", admin_people_rows(pool, admin),
                      "</tbody></table>\n", admin_paging(pool, admin->people), NULL);
}

static const char *admin_key_rows(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    const char *rows = "";
    int i;

    for (i = 0; i < admin->keys->nelts; i++) {
        const okey_admin_key_t *key = &APR_ARRAY_IDX(admin->keys, i, okey_admin_key_t);
        apr_int64_t used = key->last_used_at;

        rows = apr_pstrcat(pool, rows, "<tr><td>", okey_html_escape(pool, key->who.email),
                           "</td><td><code>",
                           okey_html_escape(pool, key->who.service_account_id),
                           "</code><br><code>",
                           key->api_key_id ? okey_html_escape(pool, key->api_key_id) : "",
                           "</code></td><td>", key->who.redacted
                               ? apr_pstrcat(pool, "<code>",
                                             okey_html_escape(pool, key->who.redacted),
                                             "</code>", NULL)
                               : count_text(pool, -1),
                           "</td><td>", okey_html_escape(pool, key->who.project_id),
                           "</td><td>", admin_time(pool, key->who.created_at), "<br>",
                           admin_time(pool, key->who.expires), "</td><td>",
                           used < 0 ? count_text(pool, -1)
                           : used == 0 ? "never" : admin_time(pool, used),
                           "</td><td class=\"n\">",
                           key->cost_usd >= 0 ? okey_usd(pool, key->cost_usd)
                                              : count_text(pool, -1),
                           "</td><td>", admin_form(pool, admin, "revoke",
                                                   key->who.service_account_id, "Revoke"),
                           "</td></tr>\n", NULL);
    }
    return rows;
}

/* One "revoke all" form per person among the keys found. */
static const char *admin_owner_forms(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    const char *forms = "";
    const char *last = "";
    int i;

    for (i = 0; i < admin->keys->nelts; i++) {
        const char *email = APR_ARRAY_IDX(admin->keys, i, okey_admin_key_t).who.email;

        if (strcmp(email, last)) {
            forms = apr_pstrcat(pool, forms, "<p>",
                                admin_form(pool, admin, "revoke_person", email,
                                           apr_pstrcat(pool, "Revoke all keys of ",
                                                       okey_html_escape(pool, email), NULL)),
                                "</p>\n", NULL);
        }
        last = email;
    }
    return forms;
}

static const char *admin_found(apr_pool_t *pool, const okey_page_admin_t *admin)
{
    const char *searched = okey_html_escape(pool, admin->query->shown);

    return admin->query->by == OKEY_ADMIN_BY_NOTHING ? ""
        : !admin->keys->nelts
        ? apr_pstrcat(pool, "<h2>Search</h2>\n<p id=\"found\">No live key matches <code>",
                      searched, "</code>.</p>\n", NULL)
        : apr_pstrcat(pool, "<h2>Search</h2>\n<p id=\"found\">Live keys matching <code>",
                      searched, "</code>:</p>\n"
                      "<table id=\"keys\"><thead><tr><th>Owner</th><th>Service account / key"
                      "</th><th>Key</th><th>Project</th><th>Created / expires (UTC)</th>"
                      "<th>Last used (UTC)</th><th class=\"n\">Cost</th><th></th></tr>"
                      "</thead><tbody>\n",
                      admin_key_rows(pool, admin), "</tbody></table>\n",
                      admin_owner_forms(pool, admin), NULL);
}

okey_page_t okey_page_admin(apr_pool_t *pool, const okey_page_admin_t *admin,
                            const char *nonce)
{
    okey_page_t page;

    page.csp = page_csp(pool, nonce);
    page.html = apr_pstrcat(
        pool, page_head(pool, "Keys and spend", nonce,
                        apr_pstrcat(pool, "<style nonce=\"", nonce, "\">html body{max-width:"
                                    "72rem}</style>", NULL)),
        "<p>Signed in as <strong>", okey_html_escape(pool, admin->user),
        "</strong> (administrator).</p>\n",
        admin->message ? apr_pstrcat(pool, "<p id=\"message\" role=\"status\">",
                                     okey_html_escape(pool, admin->message), "</p>\n", NULL)
                       : "",
        admin_search_form(pool, admin), admin_found(pool, admin),
        admin_people(pool, admin), "</body></html>\n", NULL);
    return page;
}

okey_page_t okey_page_link(apr_pool_t *pool, const char *title, const char *message,
                           const char *url, const char *link_text, int refresh)
{
    okey_page_t page;
    const char *href = okey_html_escape(pool, url);

    page.csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'";
    page.html = apr_psprintf(
        pool,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">%s"
        "<title>%s</title><style>%s</style></head><body>\n"
        "<h1>%s</h1>\n<p>%s</p>\n<p><a id=\"next\" href=\"%s\">%s</a></p>\n"
        "</body></html>\n",
        refresh ? apr_pstrcat(pool, "<meta http-equiv=\"refresh\" content=\"0;url=",
                              href, "\">", NULL) : "",
        okey_html_escape(pool, title), STYLE, okey_html_escape(pool, title),
        okey_html_escape(pool, message), href, okey_html_escape(pool, link_text));
    return page;
}

/* A title and one message: the shape of error pages and of plain notices. */
static okey_page_t message_page(apr_pool_t *pool, const char *head_title, const char *title,
                                const char *message)
{
    okey_page_t page;

    page.csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'";
    page.html = apr_pstrcat(
        pool, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>", okey_html_escape(pool, head_title), "</title><style>", STYLE,
        "</style></head><body>\n<h1>", okey_html_escape(pool, title), "</h1>\n<p>",
        okey_html_escape(pool, message), "</p>\n</body></html>\n", NULL);
    return page;
}

okey_page_t okey_page_message(apr_pool_t *pool, const char *title, const char *message)
{
    return message_page(pool, title, title, message);
}

okey_page_t okey_page_error(apr_pool_t *pool, int status, const char *title,
                            const char *message)
{
    return message_page(pool, apr_psprintf(pool, "%d %s", status, title), title, message);
}
