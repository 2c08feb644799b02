/* OpenID Connect relying party: discovery, authorization request, code
 * exchange and ID-token verification, with per-process caches. */
#ifndef OKEY_OIDC_H
#define OKEY_OIDC_H

#include "config.h"
#include "http.h"

#define OKEY_GOOGLE_ISSUER "https://accounts.google.com"
#define OKEY_OIDC_SKEW 60
#define OKEY_OIDC_JWKS_REFETCH_GAP 60
/* A key the provider withdrew is trusted at most this long. */
#define OKEY_OIDC_JWKS_MAX_AGE 3600
#define OKEY_OIDC_DISCOVERY_TTL 86400
/* Seconds a failed discovery is told again rather than asked again. */
#define OKEY_OIDC_DISCOVERY_RETRY 5

typedef struct okey_oidc_provider_t {
    const char *issuer;
    const char *authorization_endpoint;
    const char *token_endpoint;
    const char *jwks_uri;
    int token_auth_post; /* client_secret_post instead of _basic */
    /* The authorization URL up to its per-attempt parameters, once made. */
    const char *authorize_base;
} okey_oidc_provider_t;

typedef struct okey_oidc_expect_t {
    const char *issuer;    /* configured issuer */
    const char *client_id;
    const char *nonce;
    apr_int64_t now;       /* Unix seconds */
    const char *groups_claim; /* NULL: groups */
} okey_oidc_expect_t;

/* What the policy needs from a verified ID token. */
typedef struct okey_oidc_identity_t {
    const char *subject;
    const char *email;
    int email_verified;
    const char *hd; /* NULL when absent */
    /* The groups claim when it is an array of strings (lower case), else
     * empty: anything else means no groups. */
    apr_array_header_t *groups;
} okey_oidc_identity_t;

typedef enum {
    OKEY_OIDC_VERIFIED,
    OKEY_OIDC_UNKNOWN_KID,
    OKEY_OIDC_REJECTED
} okey_oidc_verdict_e;

/* Parses a discovery document and checks it belongs to issuer. */
okey_err_t *okey_oidc_discovery_parse(apr_pool_t *pool, const char *issuer,
                                      const char *text, apr_size_t len,
                                      okey_oidc_provider_t **provider);

const char *okey_oidc_authorize_url(apr_pool_t *pool,
                                    const okey_oidc_provider_t *provider,
                                    const okey_config_t *cfg, const char *state,
                                    const char *nonce, const char *challenge);

void okey_oidc_token_request(apr_pool_t *pool,
                             const okey_oidc_provider_t *provider,
                             const okey_config_t *cfg, const char *code,
                             const char *verifier, okey_http_request_t *req);

okey_err_t *okey_oidc_token_response(apr_pool_t *pool,
                                     const okey_http_response_t *resp,
                                     const char **id_token);

/* A JWKS document parsed once, its keys imported into cjose once, so that
 * each verification costs only the signature check. Threads share it: it
 * is read-only once made, and lives until the last reference goes. */
typedef struct okey_oidc_keyset_t okey_oidc_keyset_t;

/* Parses text into a key set with one reference, in a pool of its own
 * under parent (which must allow threads to make sub-pools if the set is
 * shared). NULL when text is not a JWKS. */
okey_oidc_keyset_t *okey_oidc_keyset_parse(apr_pool_t *parent, const char *text,
                                           apr_size_t len);
void okey_oidc_keyset_hold(okey_oidc_keyset_t *keys);
void okey_oidc_keyset_release(okey_oidc_keyset_t *keys);

/* Verifies an ID token against a key set (NULL: none). On
 * OKEY_OIDC_REJECTED, *reason says why; on OKEY_OIDC_VERIFIED, *identity
 * holds the claims. */
okey_oidc_verdict_e okey_oidc_verify_with(apr_pool_t *pool, const char *id_token,
                                          const okey_oidc_keyset_t *keys,
                                          const okey_oidc_expect_t *expect,
                                          okey_oidc_identity_t **identity,
                                          const char **reason);

/* The same against a JWKS document given as text. */
okey_oidc_verdict_e okey_oidc_verify(apr_pool_t *pool, const char *id_token,
                                     const char *jwks, apr_size_t jwks_len,
                                     const okey_oidc_expect_t *expect,
                                     okey_oidc_identity_t **identity,
                                     const char **reason);

/* Whether a JWKS fetched at last_fetch may be fetched again at now. */
int okey_oidc_jwks_refetch_due(apr_int64_t last_fetch, apr_int64_t now);

/* The per-process relying party of one key server. */
typedef struct okey_oidc_t okey_oidc_t;

okey_oidc_t *okey_oidc_create(apr_pool_t *pool, const okey_config_t *cfg,
                              okey_http_t *http, const okey_logger_t *logger);

/* The provider's endpoints, from the cache or fetched. */
okey_err_t *okey_oidc_provider(okey_oidc_t *oidc, apr_pool_t *pool,
                               okey_oidc_provider_t **provider);

/* The URL that sends a browser to the provider for this attempt. Without
 * may_fetch it comes only from the cache: *url NULL (and no error) when the
 * provider would have to be asked. */
okey_err_t *okey_oidc_login_url(okey_oidc_t *oidc, apr_pool_t *pool, const char *state,
                                const char *nonce, const char *challenge,
                                int may_fetch, const char **url);

/* Exchanges an authorization code and verifies the ID token it brings. */
okey_err_t *okey_oidc_sign_in(okey_oidc_t *oidc, apr_pool_t *pool,
                              const char *code, const char *verifier,
                              const char *nonce,
                              okey_oidc_identity_t **identity);

#endif
