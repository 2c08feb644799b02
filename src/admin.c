/* The admin console's views of the ledger's spend figures. */
#include "admin.h"

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define TOKEN_LABEL "mod_openaikey admin v1"
#define ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define ID_MAX 100

/* --- people ------------------------------------------------------------------ */

static int by_spend(const void *a, const void *b)
{
    const okey_admin_person_t *left = a;
    const okey_admin_person_t *right = b;

    return left->spend_usd > right->spend_usd ? -1
           : left->spend_usd < right->spend_usd ? 1 : strcmp(left->email, right->email);
}

void okey_admin_people(apr_pool_t *pool, const apr_array_header_t *index,
                       const okey_budget_t *budget, const char *budget_project_id,
                       apr_int64_t now, int page, okey_admin_people_t *out)
{
    int count = index ? index->nelts : 0;
    okey_admin_person_t *all = apr_pcalloc(pool, sizeof(*all) * (count + 1));
    int listed = 0;
    int first, i;

    out->period = budget->set ? budget->period : OKEY_PERIOD_MONTH;
    for (i = 0; i < count; i++) {
        const okey_person_spend_t *person = APR_ARRAY_IDX(index, i, okey_person_spend_t *);
        okey_admin_person_t *shown = &all[listed];

        shown->email = person->email;
        shown->live_keys = person->live_keys;
        shown->spend_usd = okey_spend_in_period(person, NULL, out->period, now);
        shown->over_budget = okey_spend_over(person, budget_project_id, budget, now);
        listed += shown->live_keys > 0 || shown->spend_usd > 0;
    }
    qsort(all, (size_t)listed, sizeof(*all), by_spend);
    out->page = page;
    out->total = listed;
    out->people = apr_array_make(pool, OKEY_ADMIN_PAGE_SIZE, sizeof(okey_admin_person_t));
    first = (page - 1) * OKEY_ADMIN_PAGE_SIZE;
    for (i = first; i >= 0 && i < listed && i < first + OKEY_ADMIN_PAGE_SIZE; i++) {
        APR_ARRAY_PUSH(out->people, okey_admin_person_t) = all[i];
    }
    out->next_page = first >= 0 && first + OKEY_ADMIN_PAGE_SIZE < listed ? page + 1 : 0;
}

int okey_admin_page_parse(const char *text)
{
    apr_size_t digits = text ? strspn(text, "0123456789") : 0;
    int page = digits && digits <= 6 && !text[digits] && text[0] != '0' ? atoi(text) : 0;

    return page <= OKEY_ADMIN_PAGE_MAX ? page : 0;
}

/* --- the search ---------------------------------------------------------------- */

int okey_admin_id_valid(const char *id, const char *prefix)
{
    apr_size_t head = strlen(prefix);
    apr_size_t rest = id && !strncmp(id, prefix, head) ? strlen(id + head) : 0;

    return rest > 0 && rest <= ID_MAX && strspn(id + head, ID_CHARS) == rest;
}

/* What a page may say of a pasted key: as much as a listing's redacted
 * form shows, and never more than a third of it. */
static const char *key_shown(apr_pool_t *pool, const char *key)
{
    const char *dots = strstr(key, "...");
    apr_size_t len = strlen(key);
    apr_size_t end = len / 6 < 4 ? len / 6 : 4;

    return dots ? key : apr_pstrcat(pool, apr_pstrndup(pool, key, 3), "...",
                                    key + len - end, NULL);
}

/* A pasted key: sk- and then key characters, or a redacted form's "...". */
static int key_text_valid(const char *text)
{
    const char *dots = strstr(text, "...");
    apr_size_t len = strlen(text);

    return len > 6 && len <= OKEY_ADMIN_QUERY_MAX &&
           (dots ? strspn(text, ID_CHARS) == (apr_size_t)(dots - text) &&
                       strspn(dots + 3, ID_CHARS) == strlen(dots + 3)
                 : strspn(text, ID_CHARS) == len);
}

static int printable(const char *text)
{
    const unsigned char *c;
    int ok = 1;

    for (c = (const unsigned char *)text; *c && ok; c++) {
        ok = *c >= 0x20 && *c != 0x7f;
    }
    return ok;
}

/* q without the blanks around it. */
static char *trimmed(apr_pool_t *pool, const char *q)
{
    apr_size_t start = strspn(q, " \t");
    apr_size_t end = strlen(q);

    while (end > start && (q[end - 1] == ' ' || q[end - 1] == '\t')) {
        end--;
    }
    return apr_pstrndup(pool, q + start, end - start);
}

const char *okey_admin_query_parse(apr_pool_t *pool, const char *q, okey_admin_query_t *query)
{
    const char *text = q ? trimmed(pool, q) : "";
    const char *why = NULL;

    query->by = OKEY_ADMIN_BY_NOTHING;
    query->text = text;
    query->shown = "";
    if (strlen(text) > OKEY_ADMIN_QUERY_MAX || !printable(text)) {
        why = "the search is too long or holds control characters";
    }
    else if (!strncmp(text, "sk-", 3)) {
        query->by = OKEY_ADMIN_BY_KEY;
        why = key_text_valid(text) ? NULL : "that is not an API key or its redacted form";
    }
    else if (!strncmp(text, "svc_acct_", 9)) {
        query->by = OKEY_ADMIN_BY_ACCOUNT;
        why = okey_admin_id_valid(text, "svc_acct_") ? NULL
              : "that is not a service account id";
    }
    else if (!strncmp(text, "key_", 4)) {
        query->by = OKEY_ADMIN_BY_KEY_ID;
        why = okey_admin_id_valid(text, "key_") ? NULL : "that is not a key id";
    }
    else if (*text) {
        query->text = okey_lower(pool, text);
        query->by = okey_policy_address_valid(query->text) ? OKEY_ADMIN_BY_ADDRESS
                                                           : OKEY_ADMIN_BY_PART;
    }
    if (why) {
        query->by = OKEY_ADMIN_BY_NOTHING;
        query->text = "";
    }
    else {
        query->shown = query->by == OKEY_ADMIN_BY_KEY ? key_shown(pool, query->text)
                                                      : query->text;
    }
    return why;
}

/* Whether the key (its id, whose it is) is one query names; addresses are
 * matched by okey_admin_owners, so any key of an owner is. */
static int key_matches(const okey_admin_query_t *query, const char *api_key_id,
                       const okey_attribution_t *who)
{
    int matches = query->by == OKEY_ADMIN_BY_ADDRESS || query->by == OKEY_ADMIN_BY_PART;

    if (query->by == OKEY_ADMIN_BY_ACCOUNT) {
        matches = who->service_account_id && !strcmp(who->service_account_id, query->text);
    }
    else if (query->by == OKEY_ADMIN_BY_KEY_ID) {
        matches = api_key_id && !strcmp(api_key_id, query->text);
    }
    else if (query->by == OKEY_ADMIN_BY_KEY) {
        matches = okey_spend_key_matches(who->redacted, query->text);
    }
    return matches;
}

static int owner_matches(apr_pool_t *pool, const okey_admin_query_t *query,
                         const char *email)
{
    const char *lower = query->by == OKEY_ADMIN_BY_ADDRESS || query->by == OKEY_ADMIN_BY_PART
                        ? okey_lower(pool, email) : NULL;

    return lower && (query->by == OKEY_ADMIN_BY_ADDRESS ? !strcmp(lower, query->text)
                                                        : strstr(lower, query->text) != NULL);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

apr_array_header_t *okey_admin_owners(apr_pool_t *pool, const okey_admin_query_t *query,
                                      const apr_array_header_t *index,
                                      apr_hash_t *attributions)
{
    apr_hash_t *seen = apr_hash_make(pool);
    apr_array_header_t *owners = apr_array_make(pool, 4, sizeof(const char *));
    apr_hash_index_t *hi;
    int i;

    for (i = 0; index && i < index->nelts; i++) {
        const char *email = APR_ARRAY_IDX(index, i, okey_person_spend_t *)->email;

        if (owner_matches(pool, query, email)) {
            apr_hash_set(seen, okey_lower(pool, email), APR_HASH_KEY_STRING, "");
        }
    }
    for (hi = attributions ? apr_hash_first(pool, attributions) : NULL; hi;
         hi = apr_hash_next(hi)) {
        const void *id;
        void *value;
        const okey_attribution_t *who;

        apr_hash_this(hi, &id, NULL, &value);
        who = value;
        if (owner_matches(pool, query, who->email) ||
            (query->by >= OKEY_ADMIN_BY_ACCOUNT && key_matches(query, id, who))) {
            apr_hash_set(seen, okey_lower(pool, who->email), APR_HASH_KEY_STRING, "");
        }
    }
    if (query->by == OKEY_ADMIN_BY_ADDRESS) {
        apr_hash_set(seen, query->text, APR_HASH_KEY_STRING, "");
    }
    for (hi = apr_hash_first(pool, seen); hi; hi = apr_hash_next(hi)) {
        const void *email;

        apr_hash_this(hi, &email, NULL, NULL);
        APR_ARRAY_PUSH(owners, const char *) = email;
    }
    qsort(owners->elts, (size_t)owners->nelts, sizeof(const char *), by_text);
    if (owners->nelts > OKEY_ADMIN_OWNERS_MAX) {
        owners->nelts = OKEY_ADMIN_OWNERS_MAX;
    }
    return owners;
}

/* --- the keys a search found -------------------------------------------------- */

static int by_owner_and_age(const void *a, const void *b)
{
    const okey_admin_key_t *left = a;
    const okey_admin_key_t *right = b;
    int order = strcmp(left->who.email, right->who.email);

    return order ? order
           : left->who.created_at < right->who.created_at ? -1
           : left->who.created_at > right->who.created_at ? 1
           : strcmp(left->who.service_account_id, right->who.service_account_id);
}

static void add_key(apr_array_header_t *keys, const char *api_key_id,
                    const okey_attribution_t *who, apr_int64_t last_used_at, double cost_usd)
{
    okey_admin_key_t *key = apr_array_push(keys);

    key->api_key_id = api_key_id;
    key->who = *who;
    key->last_used_at = last_used_at;
    key->cost_usd = cost_usd;
}

/* The live keys the last poll found for person that query matches; listed
 * (key id -> "") records every key it named, live or not. */
static void polled_keys(const okey_admin_query_t *query, const okey_person_spend_t *person,
                        apr_hash_t *attributions, apr_hash_t *listed,
                        apr_array_header_t *keys)
{
    int i;

    for (i = 0; person && person->keys && i < person->keys->nelts; i++) {
        const okey_key_spend_t *figures = &APR_ARRAY_IDX(person->keys, i, okey_key_spend_t);
        okey_attribution_t who = figures->who;
        const okey_attribution_t *stored = apr_hash_get(attributions, figures->api_key_id,
                                                        APR_HASH_KEY_STRING);

        if (!who.redacted && stored) {
            who.redacted = stored->redacted;
        }
        apr_hash_set(listed, figures->api_key_id, APR_HASH_KEY_STRING, "");
        if (figures->live && key_matches(query, figures->api_key_id, &who)) {
            add_key(keys, figures->api_key_id, &who, figures->last_used_at, figures->cost_usd);
        }
    }
}

/* Keys of email issued since person's poll (or ever, without one) that
 * have not expired: live, though no report has named them yet. */
static void fresh_keys(const okey_admin_query_t *query, const char *email,
                       const okey_person_spend_t *person, apr_hash_t *attributions,
                       apr_hash_t *listed, apr_int64_t now, apr_array_header_t *keys)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, attributions); hi; hi = apr_hash_next(hi)) {
        const void *id;
        void *value;
        const okey_attribution_t *who;

        apr_hash_this(hi, &id, NULL, &value);
        who = value;
        if (okey_strieq(who->email, email) && !apr_hash_get(listed, id, APR_HASH_KEY_STRING) &&
            who->expires > now && (!person || who->created_at >= person->polled_at) &&
            key_matches(query, id, who)) {
            add_key(keys, id, who, -1, -1);
        }
    }
}

apr_array_header_t *okey_admin_keys(apr_pool_t *pool, const okey_admin_query_t *query,
                                    const apr_array_header_t *owners, apr_hash_t *documents,
                                    apr_hash_t *attributions, apr_int64_t now)
{
    apr_array_header_t *keys = apr_array_make(pool, 4, sizeof(okey_admin_key_t));
    apr_hash_t *none = apr_hash_make(pool);
    int i;

    for (i = 0; query->by != OKEY_ADMIN_BY_NOTHING && i < owners->nelts; i++) {
        const char *email = APR_ARRAY_IDX(owners, i, const char *);
        const okey_person_spend_t *person = documents
            ? apr_hash_get(documents, email, APR_HASH_KEY_STRING) : NULL;
        apr_hash_t *listed = apr_hash_make(pool);

        polled_keys(query, person, attributions ? attributions : none, listed, keys);
        fresh_keys(query, email, person, attributions ? attributions : none, listed, now,
                   keys);
    }
    qsort(keys->elts, (size_t)keys->nelts, sizeof(okey_admin_key_t), by_owner_and_age);
    return keys;
}

const okey_attribution_t *okey_admin_account(apr_hash_t *attributions,
                                             const char *service_account_id)
{
    const okey_attribution_t *found = NULL;
    apr_hash_index_t *hi;

    for (hi = attributions ? apr_hash_first(NULL, attributions) : NULL; hi && !found;
         hi = apr_hash_next(hi)) {
        void *value;

        apr_hash_this(hi, NULL, NULL, &value);
        found = !strcmp(((const okey_attribution_t *)value)->service_account_id,
                        service_account_id) ? value : NULL;
    }
    return found;
}

/* --- the form token ------------------------------------------------------------- */

static const char *token_mac(apr_pool_t *pool, const okey_state_key_t *key, const char *user,
                             const char *made)
{
    unsigned char mac[32];

    okey_state_key_mac(key, apr_pstrcat(pool, TOKEN_LABEL, "\n", made, "\n", user, NULL), mac);
    return okey_b64url_encode(pool, mac, sizeof(mac));
}

const char *okey_admin_token(apr_pool_t *pool, const okey_state_key_t *key, const char *user,
                             apr_int64_t now)
{
    const char *made = apr_off_t_toa(pool, now);

    return apr_pstrcat(pool, made, ".", token_mac(pool, key, user, made), NULL);
}

int okey_admin_token_ok(apr_pool_t *pool, const okey_state_key_t *key, const char *user,
                        const char *token, apr_int64_t now)
{
    const char *dot = token ? strchr(token, '.') : NULL;
    const char *made = dot ? apr_pstrndup(pool, token, (apr_size_t)(dot - token)) : "";
    apr_size_t digits = strspn(made, "0123456789");
    apr_int64_t when = digits && !made[digits] && digits <= 12 ? apr_atoi64(made) : -1;
    const char *expected = when >= 0 && user ? token_mac(pool, key, user, made) : NULL;

    return expected && when <= now + 60 && now - when <= OKEY_ADMIN_TOKEN_LIFETIME &&
           strlen(dot + 1) == strlen(expected) &&
           CRYPTO_memcmp(dot + 1, expected, strlen(expected)) == 0;
}
