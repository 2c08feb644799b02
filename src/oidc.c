/* OpenID Connect relying party. */
#include "oidc.h"

#include <apr_atomic.h>
#include <apr_base64.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <cjose/cjose.h>
#include <string.h>
#include <strings.h>

#define GOOGLE_ISSUER_BARE "accounts.google.com"

static const char SIGN_IN_FAILED[] =
    "Sign-in could not be completed. Please try again later.";

struct okey_oidc_t {
    const okey_config_t *cfg;
    okey_http_t *http;
    const okey_logger_t *logger;
    apr_thread_mutex_t *mutex;
    apr_pool_t *cache_root;       /* parent of the cached values' pools */
    apr_pool_t *provider_pool;    /* owns provider */
    okey_oidc_provider_t *provider;
    apr_int64_t provider_fetched;
    /* One discovery fetch at a time; the others wait for its outcome. */
    apr_thread_cond_t *discovered;
    int discovering;
    /* The last failed discovery, told again for OKEY_OIDC_DISCOVERY_RETRY
     * seconds rather than asked again of a provider that is down. */
    apr_int64_t discovery_failed;  /* 0: none remembered */
    okey_err_t discovery_error;    /* messages in failure_pool */
    apr_pool_t *failure_pool;
    okey_oidc_keyset_t *jwks;     /* one reference is the cache's */
    apr_int64_t jwks_fetched;
    apr_int64_t jwks_max_age;     /* seconds the provider lets it be kept */
    apr_int64_t jwks_tried;       /* last fetch attempt, good or not */
};

/* --- discovery -------------------------------------------------------- */

static int endpoint_ok(const char *issuer, const char *url)
{
    int issuer_https = strncasecmp(issuer, "https://", 8) == 0;

    return url && (strncasecmp(url, "https://", 8) == 0 ||
                   (!issuer_https && strncasecmp(url, "http://", 7) == 0));
}

static int lists_method(const json_t *methods, const char *method)
{
    size_t i;
    const json_t *item;
    int found = 0;

    json_array_foreach(methods, i, item) {
        found = found || (json_is_string(item) &&
                          strcmp(json_string_value(item), method) == 0);
    }
    return found;
}

okey_err_t *okey_oidc_discovery_parse(apr_pool_t *pool, const char *issuer,
                                      const char *text, apr_size_t len,
                                      okey_oidc_provider_t **provider)
{
    const char *parse_error = NULL;
    json_t *doc = okey_json_parse(pool, text, len, &parse_error);
    okey_oidc_provider_t *made = apr_pcalloc(pool, sizeof(*made));
    const json_t *methods = json_object_get(doc, "token_endpoint_auth_methods_supported");
    okey_err_t *err = NULL;

    made->issuer = okey_json_str(doc, "issuer");
    made->authorization_endpoint = okey_json_str(doc, "authorization_endpoint");
    made->token_endpoint = okey_json_str(doc, "token_endpoint");
    made->jwks_uri = okey_json_str(doc, "jwks_uri");
    made->token_auth_post = json_is_array(methods) &&
                            !lists_method(methods, "client_secret_basic") &&
                            lists_method(methods, "client_secret_post");
    if (!json_is_object(doc)) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED,
                            "discovery document of %s is not a JSON object: %s",
                            issuer, parse_error ? parse_error : "wrong type");
    }
    else if (!made->issuer || strcmp(okey_strip_slashes(pool, made->issuer), issuer)) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED,
                            "discovery document names issuer '%s', expected '%s'",
                            made->issuer ? made->issuer : "(none)", issuer);
    }
    else if (!endpoint_ok(issuer, made->authorization_endpoint) ||
             !endpoint_ok(issuer, made->token_endpoint) ||
             !endpoint_ok(issuer, made->jwks_uri)) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED,
                            "discovery document of %s lacks a valid "
                            "authorization_endpoint, token_endpoint or jwks_uri",
                            issuer);
    }
    *provider = err ? NULL : made;
    return err;
}

/* --- authorization request and code exchange -------------------------- */

static const char *authorize_base(apr_pool_t *pool,
                                  const okey_oidc_provider_t *provider,
                                  const okey_config_t *cfg)
{
    const char *endpoint = provider->authorization_endpoint;

    return apr_pstrcat(pool, endpoint, strchr(endpoint, '?') ? "&" : "?",
                       "response_type=code&scope=", okey_form_escape(pool, cfg->scope),
                       "&client_id=", okey_form_escape(pool, cfg->client_id),
                       "&redirect_uri=", okey_form_escape(pool, cfg->redirect_uri),
                       NULL);
}

const char *okey_oidc_authorize_url(apr_pool_t *pool,
                                    const okey_oidc_provider_t *provider,
                                    const okey_config_t *cfg, const char *state,
                                    const char *nonce, const char *challenge)
{
    const char *base = provider->authorize_base
                           ? provider->authorize_base
                           : authorize_base(pool, provider, cfg);

    return apr_pstrcat(pool, base, "&state=", state, "&nonce=", nonce,
                       "&code_challenge=", challenge,
                       "&code_challenge_method=S256", NULL);
}

void okey_oidc_token_request(apr_pool_t *pool,
                             const okey_oidc_provider_t *provider,
                             const okey_config_t *cfg, const char *code,
                             const char *verifier, okey_http_request_t *req)
{
    const char *body = apr_pstrcat(
        pool, "grant_type=authorization_code&code=", okey_form_escape(pool, code),
        "&redirect_uri=", okey_form_escape(pool, cfg->redirect_uri),
        "&code_verifier=", okey_form_escape(pool, verifier), NULL);

    memset(req, 0, sizeof(*req));
    req->method = "POST";
    req->url = provider->token_endpoint;
    req->content_type = "application/x-www-form-urlencoded";
    if (provider->token_auth_post) {
        body = apr_pstrcat(pool, body, "&client_id=",
                           okey_form_escape(pool, cfg->client_id),
                           "&client_secret=",
                           okey_form_escape(pool, cfg->client_secret), NULL);
    }
    else {
        /* RFC 6749 section 2.3.1: both parts form-encoded before base64. */
        const char *pair = apr_pstrcat(pool, okey_form_escape(pool, cfg->client_id),
                                       ":", okey_form_escape(pool, cfg->client_secret),
                                       NULL);
        char *encoded = apr_palloc(pool, apr_base64_encode_len((int)strlen(pair)));

        apr_base64_encode(encoded, pair, (int)strlen(pair));
        req->authorization = apr_pstrcat(pool, "Basic ", encoded, NULL);
    }
    req->body = body;
    req->body_len = strlen(body);
}

okey_err_t *okey_oidc_token_response(apr_pool_t *pool,
                                     const okey_http_response_t *resp,
                                     const char **id_token)
{
    json_t *doc = okey_json_parse(pool, resp->body, resp->body_len, NULL);
    const char *error = okey_json_str(doc, "error");
    okey_err_t *err = NULL;

    *id_token = okey_json_str(doc, "id_token");
    error = error ? okey_scrub(pool, apr_pstrndup(pool, error, 100)) : NULL;
    if (resp->status == 400 && error && !strcmp(error, "invalid_grant")) {
        err = okey_err_make(pool, 400, "This sign-in was already used or has "
                            "expired. Please start again.",
                            "token endpoint refused the code: invalid_grant");
        err->denied = OKEY_DENIED_STATE;
    }
    else if (resp->status != 200) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED,
                            "token endpoint answered %d%s%s%s", resp->status,
                            error ? " (" : "", error ? error : "",
                            error ? "); check OpenAIKeyClientID, "
                            "OpenAIKeyClientSecret and OpenAIKeyRedirectURI" : "");
        err->upstream_status = resp->status;
    }
    else if (!*id_token) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED,
                            "token endpoint answered 200 without an id_token");
    }
    return err;
}

/* --- ID-token verification --------------------------------------------- */

typedef struct {
    const char *kty;
    const char *crv; /* for EC, or NULL */
} alg_rule_t;

/* Only asymmetric algorithms: never none, never HMAC. */
static const alg_rule_t *alg_rule(const char *alg)
{
    static const alg_rule_t rsa = {"RSA", NULL};
    static const alg_rule_t ec256 = {"EC", "P-256"};
    const alg_rule_t *rule = NULL;

    if (alg && (!strcmp(alg, "RS256") || !strcmp(alg, "PS256"))) {
        rule = &rsa;
    }
    else if (alg && !strcmp(alg, "ES256")) {
        rule = &ec256;
    }
    return rule;
}

static int key_fits(const json_t *key, const char *alg, const alg_rule_t *rule)
{
    const char *kty = okey_json_str(key, "kty");
    const char *crv = okey_json_str(key, "crv");
    const char *key_alg = okey_json_str(key, "alg");
    const char *use = okey_json_str(key, "use");

    return kty && !strcmp(kty, rule->kty) &&
           (!rule->crv || (crv && !strcmp(crv, rule->crv))) &&
           (!key_alg || !strcmp(key_alg, alg)) && (!use || !strcmp(use, "sig"));
}

/* One key of a set: its JWK and, when cjose can take it, its import. */
typedef struct {
    const json_t *jwk;
    cjose_jwk_t *imported;
} keyset_key_t;

struct okey_oidc_keyset_t {
    apr_pool_t *pool;           /* owns everything here */
    volatile apr_uint32_t refs;
    int count;
    keyset_key_t *keys;
};

static apr_status_t release_imports(void *data)
{
    okey_oidc_keyset_t *set = data;
    int i;

    for (i = 0; i < set->count; i++) {
        cjose_jwk_release(set->keys[i].imported);
    }
    return APR_SUCCESS;
}

okey_oidc_keyset_t *okey_oidc_keyset_parse(apr_pool_t *parent, const char *text,
                                           apr_size_t len)
{
    apr_pool_t *pool;
    okey_oidc_keyset_t *set;
    const json_t *keys;
    const json_t *jwk;
    size_t i;

    apr_pool_create(&pool, parent);
    set = apr_pcalloc(pool, sizeof(*set));
    set->pool = pool;
    set->refs = 1;
    keys = json_object_get(okey_json_parse(pool, text, len, NULL), "keys");
    set->keys = apr_pcalloc(pool, sizeof(keyset_key_t) * (json_array_size(keys) + 1));
    json_array_foreach(keys, i, jwk) {
        keyset_key_t *key = &set->keys[set->count++];

        key->jwk = jwk;
        key->imported = json_is_object(jwk) && okey_jwk_decodable(jwk)
                        ? cjose_jwk_import_json((cjose_header_t *)jwk, NULL) : NULL;
    }
    apr_pool_cleanup_register(pool, set, release_imports, apr_pool_cleanup_null);
    if (!json_is_array(keys)) {
        apr_pool_destroy(pool);
        set = NULL;
    }
    return set;
}

void okey_oidc_keyset_hold(okey_oidc_keyset_t *keys)
{
    apr_atomic_inc32(&keys->refs);
}

void okey_oidc_keyset_release(okey_oidc_keyset_t *keys)
{
    if (keys && !apr_atomic_dec32(&keys->refs)) {
        apr_pool_destroy(keys->pool);
    }
}

/* The key for kid (or the only fitting key when the token names none). */
static const keyset_key_t *find_key(const okey_oidc_keyset_t *set, const char *kid,
                                    const char *alg, const alg_rule_t *rule)
{
    const keyset_key_t *found = NULL;
    int fitting = 0;
    int i;

    for (i = 0; set && i < set->count; i++) {
        const keyset_key_t *key = &set->keys[i];
        const char *key_kid = okey_json_str(key->jwk, "kid");

        if (key_fits(key->jwk, alg, rule)) {
            fitting++;
            if (kid ? (key_kid && !strcmp(key_kid, kid)) : !found) {
                found = key;
            }
        }
    }
    return (kid || fitting == 1) ? found : NULL;
}

static int json_is_timestamp(const json_t *value)
{
    return json_is_integer(value) || json_is_real(value);
}

static int issuer_accepted(const char *iss, const char *issuer)
{
    return iss && (!strcmp(iss, issuer) ||
                   (!strcmp(issuer, OKEY_GOOGLE_ISSUER) && !strcmp(iss, GOOGLE_ISSUER_BARE)));
}

static int audience_ok(const json_t *aud, const char *client_id, int *several)
{
    size_t i;
    const json_t *item;
    int found = 0;

    *several = json_is_array(aud) && json_array_size(aud) > 1;
    if (json_is_string(aud)) {
        found = !strcmp(json_string_value(aud), client_id);
    }
    json_array_foreach(aud, i, item) {
        found = found || (json_is_string(item) &&
                          !strcmp(json_string_value(item), client_id));
    }
    return found;
}

/* The first reason the claims fail, or NULL when all hold. */
static const char *claims_problem(apr_pool_t *pool, const json_t *claims,
                                  const okey_oidc_expect_t *expect)
{
    const json_t *exp = json_object_get(claims, "exp");
    const json_t *iat = json_object_get(claims, "iat");
    const char *azp = okey_json_str(claims, "azp");
    const char *nonce = okey_json_str(claims, "nonce");
    const char *iss = okey_json_str(claims, "iss");
    int several = 0;
    const char *problem = NULL;

    if (!issuer_accepted(iss, expect->issuer)) {
        problem = apr_psprintf(pool, "iss '%s' is not the issuer %s",
                               iss ? iss : "(none)", expect->issuer);
    }
    else if (!audience_ok(json_object_get(claims, "aud"), expect->client_id,
                          &several)) {
        problem = "aud does not contain the client ID";
    }
    else if (azp ? strcmp(azp, expect->client_id) != 0 : several) {
        problem = azp ? "azp is not the client ID"
                      : "several audiences and no azp";
    }
    else if (!json_is_timestamp(exp) ||
             json_number_value(exp) + OKEY_OIDC_SKEW <= (double)expect->now) {
        problem = "token expired (exp)";
    }
    else if (!json_is_timestamp(iat) ||
             json_number_value(iat) > (double)(expect->now + OKEY_OIDC_SKEW)) {
        problem = "token issued in the future (iat)";
    }
    else if (!nonce || !expect->nonce || strcmp(nonce, expect->nonce)) {
        problem = "nonce does not match the sign-in";
    }
    else if (!okey_json_str(claims, "sub")) {
        problem = "no sub claim";
    }
    return problem;
}

/* The groups of a claim that is an array of strings; none otherwise. */
static apr_array_header_t *groups_of(apr_pool_t *pool, const json_t *claim)
{
    apr_array_header_t *groups = apr_array_make(pool, 4, sizeof(const char *));
    const json_t *item;
    size_t i;

    json_array_foreach(claim, i, item) {
        if (!json_is_string(item)) {
            apr_array_clear(groups);
            break;
        }
        APR_ARRAY_PUSH(groups, const char *) = okey_lower(pool, json_string_value(item));
    }
    return groups;
}

static okey_oidc_identity_t *identity_from(apr_pool_t *pool, const json_t *claims,
                                           const char *groups_claim)
{
    okey_oidc_identity_t *id = apr_pcalloc(pool, sizeof(*id));
    const json_t *verified = json_object_get(claims, "email_verified");
    const char *email = okey_json_str(claims, "email");
    const char *hd = okey_json_str(claims, "hd");

    id->subject = apr_pstrdup(pool, okey_json_str(claims, "sub"));
    id->email = email ? apr_pstrdup(pool, email) : NULL;
    id->hd = hd ? apr_pstrdup(pool, hd) : NULL;
    id->groups = groups_of(pool, json_object_get(claims, groups_claim ? groups_claim
                                                                       : "groups"));
    id->email_verified = json_is_true(verified) ||
                         (json_is_string(verified) &&
                          !strcmp(json_string_value(verified), "true"));
    return id;
}

static json_t *verified_claims(apr_pool_t *pool, cjose_jws_t *jws)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    json_t *claims = NULL;

    if (cjose_jws_get_plaintext(jws, &plain, &plain_len, NULL)) {
        claims = okey_json_parse(pool, (const char *)plain, plain_len, NULL);
    }
    return json_is_object(claims) ? claims : NULL;
}

okey_oidc_verdict_e okey_oidc_verify_with(apr_pool_t *pool, const char *id_token,
                                          const okey_oidc_keyset_t *keys,
                                          const okey_oidc_expect_t *expect,
                                          okey_oidc_identity_t **identity,
                                          const char **reason)
{
    cjose_jws_t *jws = okey_jose_compact_ok(id_token, 3, NULL)
                       ? cjose_jws_import(id_token, strlen(id_token), NULL) : NULL;
    cjose_header_t *header = jws ? cjose_jws_get_protected(jws) : NULL;
    const char *alg = header ? cjose_header_get(header, CJOSE_HDR_ALG, NULL) : NULL;
    const char *kid = header ? cjose_header_get(header, CJOSE_HDR_KID, NULL) : NULL;
    const alg_rule_t *rule = alg_rule(alg);
    const keyset_key_t *key = rule ? find_key(keys, kid, alg, rule) : NULL;
    json_t *claims = NULL;
    okey_oidc_verdict_e verdict = OKEY_OIDC_REJECTED;

    *identity = NULL;
    *reason = NULL;
    if (!jws) {
        *reason = "ID token is not a compact JWS";
    }
    else if (!rule) {
        *reason = apr_psprintf(pool, "ID token algorithm '%s' is not accepted",
                               alg ? alg : "(none)");
    }
    else if (!key) {
        verdict = OKEY_OIDC_UNKNOWN_KID;
        *reason = apr_psprintf(pool, "no %s key with kid '%s' in the JWKS", alg,
                               kid ? kid : "(none)");
    }
    else if (!key->imported || !cjose_jws_verify(jws, key->imported, NULL)) {
        *reason = "ID token signature does not verify";
    }
    else if (!(claims = verified_claims(pool, jws))) {
        *reason = "ID token payload is not a JSON object";
    }
    else if (!(*reason = claims_problem(pool, claims, expect))) {
        verdict = OKEY_OIDC_VERIFIED;
        *identity = identity_from(pool, claims, expect->groups_claim);
    }
    cjose_jws_release(jws);
    return verdict;
}

okey_oidc_verdict_e okey_oidc_verify(apr_pool_t *pool, const char *id_token,
                                     const char *jwks, apr_size_t jwks_len,
                                     const okey_oidc_expect_t *expect,
                                     okey_oidc_identity_t **identity,
                                     const char **reason)
{
    okey_oidc_keyset_t *keys = okey_oidc_keyset_parse(pool, jwks, jwks_len);
    okey_oidc_verdict_e verdict = okey_oidc_verify_with(pool, id_token, keys, expect,
                                                        identity, reason);

    okey_oidc_keyset_release(keys);
    return verdict;
}

int okey_oidc_jwks_refetch_due(apr_int64_t last_fetch, apr_int64_t now)
{
    return last_fetch <= 0 || now - last_fetch >= OKEY_OIDC_JWKS_REFETCH_GAP ||
           now < last_fetch;
}

/* --- per-process client ------------------------------------------------ */

okey_oidc_t *okey_oidc_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http, const okey_logger_t *logger)
{
    okey_oidc_t *oidc = apr_pcalloc(pool, sizeof(*oidc));

    oidc->cfg = cfg;
    oidc->http = http;
    oidc->logger = logger;
    apr_thread_mutex_create(&oidc->mutex, APR_THREAD_MUTEX_DEFAULT, pool);
    apr_thread_cond_create(&oidc->discovered, pool);
    oidc->cache_root = okey_pool_for_threads(pool);
    return oidc;
}

static okey_err_t *fetch(okey_oidc_t *oidc, apr_pool_t *pool, const char *url,
                         okey_endpoint_e endpoint, const char *what,
                         okey_http_response_t *resp)
{
    okey_http_request_t req = {"GET", url, NULL, NULL, NULL, 0};
    okey_err_t *err = okey_http_perform(oidc->http, pool, &req, resp);

    if (!err && resp->status != 200) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED, "%s %s answered %d",
                            what, url, resp->status);
        err->upstream_status = resp->status;
    }
    if (err) {
        err->endpoint = endpoint;
    }
    else {
        okey_log(oidc->logger, OKEY_LOG_DEBUG, pool,
                 OKEY_LOGNO(202) "fetched %s %s in %.3f s", what, url, resp->seconds);
    }
    return err;
}

/* A deep copy of a provider into pool. */
static okey_oidc_provider_t *provider_copy(apr_pool_t *pool,
                                           const okey_oidc_provider_t *from)
{
    okey_oidc_provider_t *to = apr_pcalloc(pool, sizeof(*to));

    to->issuer = apr_pstrdup(pool, from->issuer);
    to->authorization_endpoint = apr_pstrdup(pool, from->authorization_endpoint);
    to->token_endpoint = apr_pstrdup(pool, from->token_endpoint);
    to->jwks_uri = apr_pstrdup(pool, from->jwks_uri);
    to->token_auth_post = from->token_auth_post;
    to->authorize_base = apr_pstrdup(pool, from->authorize_base);
    return to;
}

/* Replaces a cached value's pool; called with the mutex held. */
static apr_pool_t *renew_pool(apr_pool_t *root, apr_pool_t *old)
{
    apr_pool_t *fresh;

    if (old) {
        apr_pool_destroy(old);
    }
    apr_pool_create(&fresh, root);
    return fresh;
}

/* What the cache holds for discovery at now: the provider (copied into
 * pool), or the failure remembered (as a new error in pool), or neither.
 * Called with the mutex held. */
static void discovery_cached(okey_oidc_t *oidc, apr_pool_t *pool, apr_int64_t now,
                             okey_oidc_provider_t **found, okey_err_t **failed)
{
    apr_int64_t since_failure = now - oidc->discovery_failed;

    if (oidc->provider && now - oidc->provider_fetched < OKEY_OIDC_DISCOVERY_TTL) {
        *found = provider_copy(pool, oidc->provider);
    }
    else if (oidc->discovery_failed && since_failure >= 0 &&
             since_failure < OKEY_OIDC_DISCOVERY_RETRY) {
        /* Not counted as another upstream error: nothing was asked. */
        *failed = okey_err_make(pool, oidc->discovery_error.status,
                                oidc->discovery_error.user_msg, "%s (%" APR_INT64_T_FMT
                                " s ago; not asked again before %d s)",
                                oidc->discovery_error.log_msg, since_failure,
                                OKEY_OIDC_DISCOVERY_RETRY);
    }
}

/* Keeps the outcome of a fetch for the waiting and the next requests, and
 * wakes those waiting. Called with the mutex held. */
static void discovery_done(okey_oidc_t *oidc, apr_pool_t *pool, apr_int64_t now,
                           okey_oidc_provider_t *found, const okey_err_t *err)
{
    if (found) {
        oidc->provider_pool = renew_pool(oidc->cache_root, oidc->provider_pool);
        found->authorize_base = authorize_base(pool, found, oidc->cfg);
        oidc->provider = provider_copy(oidc->provider_pool, found);
        oidc->provider_fetched = now;
        oidc->discovery_failed = 0;
    }
    else {
        oidc->failure_pool = renew_pool(oidc->cache_root, oidc->failure_pool);
        oidc->discovery_error.status = err->status;
        oidc->discovery_error.user_msg = apr_pstrdup(oidc->failure_pool, err->user_msg);
        oidc->discovery_error.log_msg = apr_pstrdup(oidc->failure_pool, err->log_msg);
        oidc->discovery_failed = now > 0 ? now : 1;
    }
    oidc->discovering = 0;
    apr_thread_cond_broadcast(oidc->discovered);
}

okey_err_t *okey_oidc_provider(okey_oidc_t *oidc, apr_pool_t *pool,
                               okey_oidc_provider_t **provider)
{
    /* A fetch under way ends within its timeout; a second past it, this
     * request fetches for itself. */
    apr_time_t wait_until = apr_time_now() + apr_time_from_sec(oidc->cfg->timeout + 1);
    okey_oidc_provider_t *found = NULL;
    okey_http_response_t resp;
    okey_err_t *err = NULL;
    int must_fetch;

    apr_thread_mutex_lock(oidc->mutex);
    while (oidc->discovering && apr_time_now() < wait_until) {
        apr_thread_cond_timedwait(oidc->discovered, oidc->mutex,
                                  wait_until - apr_time_now());
    }
    discovery_cached(oidc, pool, okey_now(), &found, &err);
    must_fetch = !found && !err;
    oidc->discovering = oidc->discovering || must_fetch;
    apr_thread_mutex_unlock(oidc->mutex);
    if (must_fetch) {
        const char *url = apr_pstrcat(pool, oidc->cfg->issuer,
                                      "/.well-known/openid-configuration", NULL);

        err = fetch(oidc, pool, url, OKEY_ENDPOINT_DISCOVERY, "discovery", &resp);
        if (!err) {
            err = okey_oidc_discovery_parse(pool, oidc->cfg->issuer, resp.body,
                                            resp.body_len, &found);
        }
        apr_thread_mutex_lock(oidc->mutex);
        discovery_done(oidc, pool, okey_now(), err ? NULL : found, err);
        apr_thread_mutex_unlock(oidc->mutex);
    }
    *provider = err ? NULL : found;
    return err;
}

static apr_status_t release_keyset(void *data)
{
    okey_oidc_keyset_release(data);
    return APR_SUCCESS;
}

/* Makes keys the cached set; called with the mutex held. */
static void cache_keyset(okey_oidc_t *oidc, okey_oidc_keyset_t *keys, apr_int64_t now,
                         apr_int64_t max_age)
{
    okey_oidc_keyset_release(oidc->jwks);
    oidc->jwks = keys;
    oidc->jwks_fetched = now;
    /* At least a second, at most an hour, whatever the provider says. */
    oidc->jwks_max_age = max_age < 0 || max_age > OKEY_OIDC_JWKS_MAX_AGE
                         ? OKEY_OIDC_JWKS_MAX_AGE : (max_age < 1 ? 1 : max_age);
}

okey_err_t *okey_oidc_login_url(okey_oidc_t *oidc, apr_pool_t *pool, const char *state,
                                const char *nonce, const char *challenge,
                                int may_fetch, const char **url)
{
    okey_oidc_provider_t *provider = NULL;
    okey_err_t *err = NULL;

    /* Built under the lock from the cached provider: no copy of it. */
    *url = NULL;
    apr_thread_mutex_lock(oidc->mutex);
    if (oidc->provider && okey_now() - oidc->provider_fetched < OKEY_OIDC_DISCOVERY_TTL) {
        *url = okey_oidc_authorize_url(pool, oidc->provider, oidc->cfg, state, nonce,
                                       challenge);
    }
    apr_thread_mutex_unlock(oidc->mutex);
    if (!*url && may_fetch) {
        err = okey_oidc_provider(oidc, pool, &provider);
    }
    if (provider) {
        *url = okey_oidc_authorize_url(pool, provider, oidc->cfg, state, nonce, challenge);
    }
    return err;
}

/* The cached key set, or a fresh one: when none is cached; when it is
 * older than the provider's Cache-Control max-age, and never older than
 * OKEY_OIDC_JWKS_MAX_AGE; or when refresh is set (an unknown kid). A fetch
 * for an unknown kid, or after a failed one, waits OKEY_OIDC_JWKS_REFETCH_GAP.
 * A failed fetch keeps the old set in use until a good one arrives. The set
 * is held until pool is cleared. *fetched says whether this call fetched. */
static okey_err_t *jwks_get(okey_oidc_t *oidc, apr_pool_t *pool,
                            const okey_oidc_provider_t *provider, int refresh,
                            okey_oidc_keyset_t **keys, int *fetched)
{
    apr_int64_t now = okey_now();
    okey_oidc_keyset_t *fresh = NULL;
    okey_http_response_t resp;
    okey_err_t *err = NULL;
    int due;

    apr_thread_mutex_lock(oidc->mutex);
    due = !oidc->jwks ||
          (refresh && okey_oidc_jwks_refetch_due(oidc->jwks_tried, now)) ||
          ((now - oidc->jwks_fetched >= oidc->jwks_max_age || now < oidc->jwks_fetched) &&
           (oidc->jwks_tried == oidc->jwks_fetched ||
            okey_oidc_jwks_refetch_due(oidc->jwks_tried, now)));
    if (due) {
        oidc->jwks_tried = now;
    }
    *keys = oidc->jwks;
    if (*keys) {
        okey_oidc_keyset_hold(*keys);
    }
    apr_thread_mutex_unlock(oidc->mutex);
    *fetched = 0;
    if (due) {
        err = fetch(oidc, pool, provider->jwks_uri, OKEY_ENDPOINT_JWKS, "JWKS", &resp);
    }
    if (due && !err) {
        /* Parsed and imported once per fetch, outside the lock. */
        fresh = okey_oidc_keyset_parse(oidc->cache_root, resp.body, resp.body_len);
    }
    if (fresh) {
        okey_oidc_keyset_hold(fresh);
        apr_thread_mutex_lock(oidc->mutex);
        cache_keyset(oidc, fresh, now, resp.max_age);
        apr_thread_mutex_unlock(oidc->mutex);
        okey_oidc_keyset_release(*keys);
        *keys = fresh;
        *fetched = 1;
    }
    else if (due && !err) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED, "the JWKS at %s is not a JSON "
                            "object with a keys array", provider->jwks_uri);
        err->endpoint = OKEY_ENDPOINT_JWKS;
    }
    if (due && err && *keys) {
        okey_log(oidc->logger, OKEY_LOG_WARNING, pool,
                 OKEY_LOGNO(201) "keeping the JWKS fetched at %s: %s",
                 okey_iso8601(pool, oidc->jwks_fetched), err->log_msg);
        err = NULL;
    }
    if (*keys) {
        apr_pool_cleanup_register(pool, *keys, release_keyset, apr_pool_cleanup_null);
    }
    return err;
}

static okey_err_t *verify_id_token(okey_oidc_t *oidc, apr_pool_t *pool,
                                   const okey_oidc_provider_t *provider,
                                   const char *id_token, const char *nonce,
                                   okey_oidc_identity_t **identity)
{
    /* The discovered issuer, which may differ from the configured one by a
     * trailing slash, is the one ID tokens must name exactly. */
    okey_oidc_expect_t expect = {provider->issuer, oidc->cfg->client_id, nonce,
                                 okey_now(), oidc->cfg->groups_claim};
    okey_oidc_verdict_e verdict = OKEY_OIDC_REJECTED;
    const char *reason = NULL;
    okey_oidc_keyset_t *keys = NULL;
    int fetched = 0;
    okey_err_t *err = jwks_get(oidc, pool, provider, 0, &keys, &fetched);

    if (!err) {
        verdict = okey_oidc_verify_with(pool, id_token, keys, &expect, identity, &reason);
    }
    /* A key the cached JWKS does not hold yet: the provider may have rotated. */
    if (!err && verdict == OKEY_OIDC_UNKNOWN_KID && !fetched) {
        err = jwks_get(oidc, pool, provider, 1, &keys, &fetched);
        if (!err && fetched) {
            verdict = okey_oidc_verify_with(pool, id_token, keys, &expect, identity,
                                            &reason);
        }
    }
    if (!err && verdict != OKEY_OIDC_VERIFIED) {
        err = okey_err_make(pool, 502, SIGN_IN_FAILED, "ID token rejected: %s",
                            reason);
        err->denied = OKEY_DENIED_ID_TOKEN;
    }
    return err;
}

okey_err_t *okey_oidc_sign_in(okey_oidc_t *oidc, apr_pool_t *pool,
                              const char *code, const char *verifier,
                              const char *nonce, okey_oidc_identity_t **identity)
{
    okey_oidc_provider_t *provider = NULL;
    okey_http_request_t req;
    okey_http_response_t resp;
    const char *id_token = NULL;
    okey_err_t *err = okey_oidc_provider(oidc, pool, &provider);

    *identity = NULL;
    if (!err) {
        okey_oidc_token_request(pool, provider, oidc->cfg, code, verifier, &req);
        err = okey_http_perform(oidc->http, pool, &req, &resp);
    }
    if (!err) {
        okey_log(oidc->logger, OKEY_LOG_DEBUG, pool,
                 OKEY_LOGNO(203) "token endpoint answered %d in %.3f s", resp.status,
                 resp.seconds);
        err = okey_oidc_token_response(pool, &resp, &id_token);
    }
    if (err && !err->endpoint && !err->denied) {
        err->endpoint = OKEY_ENDPOINT_TOKEN;
    }
    if (!err) {
        err = verify_id_token(oidc, pool, provider, id_token, nonce, identity);
    }
    return err;
}
