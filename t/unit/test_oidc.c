/* ID-token verification, discovery and the token exchange. */
#include "testutil.h"

#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <cjose/cjose.h>
#include <string.h>

#include "oidc.h"

#define ISSUER "https://idp.example"
#define CLIENT "client-1"
#define NONCE "nonce-1"
#define NOW 1800000000

typedef struct {
    cjose_jwk_t *jwk;
    const char *alg;
    const char *kid;
} signer_t;

static signer_t rsa, ec, rsa_other;

static void make_signers(void)
{
    static const uint8_t e[] = {1, 0, 1};

    rsa.jwk = cjose_jwk_create_RSA_random(2048, e, sizeof(e), NULL);
    rsa.alg = "RS256";
    rsa.kid = "rsa-1";
    cjose_jwk_set_kid(rsa.jwk, rsa.kid, strlen(rsa.kid), NULL);
    rsa_other.jwk = cjose_jwk_create_RSA_random(2048, e, sizeof(e), NULL);
    rsa_other.alg = "RS256";
    rsa_other.kid = "rsa-2";
    cjose_jwk_set_kid(rsa_other.jwk, rsa_other.kid, strlen(rsa_other.kid), NULL);
    ec.jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, NULL);
    ec.alg = "ES256";
    ec.kid = "ec-1";
    cjose_jwk_set_kid(ec.jwk, ec.kid, strlen(ec.kid), NULL);
}

static void free_signers(void)
{
    cjose_jwk_release(rsa.jwk);
    cjose_jwk_release(rsa_other.jwk);
    cjose_jwk_release(ec.jwk);
}

/* A JWKS holding the public halves of the given signers. */
static const char *jwks_of(const signer_t *a, const signer_t *b)
{
    const signer_t *signers[] = {a, b};
    json_t *keys = json_array();
    json_t *doc = json_pack("{s:o}", "keys", keys);
    const char *text;
    int i;

    for (i = 0; i < 2; i++) {
        if (signers[i]) {
            char *pub = cjose_jwk_to_json(signers[i]->jwk, false, NULL);

            json_array_append_new(keys, json_loads(pub, 0, NULL));
            cjose_get_dealloc()(pub);
        }
    }
    text = okey_json_dump(test_pool, doc);
    json_decref(doc);
    return text;
}

static json_t *good_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:b}", "iss", ISSUER,
                     "sub", "user-1", "aud", CLIENT, "exp", NOW + 3600, "iat",
                     NOW - 10, "nonce", NONCE, "email", "alice@example.com",
                     "email_verified", 1);
}

static const char *sign_as(const signer_t *signer, const char *alg, json_t *claims)
{
    cjose_header_t *header = cjose_header_new(NULL);
    const char *plain = okey_json_dump(test_pool, claims);
    cjose_jws_t *jws;
    const char *compact = NULL;

    cjose_header_set(header, CJOSE_HDR_ALG, alg, NULL);
    cjose_header_set(header, CJOSE_HDR_KID, signer->kid, NULL);
    jws = cjose_jws_sign(signer->jwk, header, (const uint8_t *)plain,
                         strlen(plain), NULL);
    ck_assert_ptr_nonnull(jws);
    cjose_jws_export(jws, &compact, NULL);
    compact = apr_pstrdup(test_pool, compact);
    cjose_jws_release(jws);
    cjose_header_release(header);
    json_decref(claims);
    return compact;
}

static const char *sign(const signer_t *signer, json_t *claims)
{
    return sign_as(signer, signer->alg, claims);
}

static okey_oidc_verdict_e verify(const char *token, const char *jwks,
                                  const char **reason)
{
    okey_oidc_expect_t expect = {ISSUER, CLIENT, NONCE, NOW};
    okey_oidc_identity_t *identity = NULL;
    okey_oidc_verdict_e verdict = okey_oidc_verify(test_pool, token, jwks,
                                                   strlen(jwks), &expect,
                                                   &identity, reason);

    ck_assert(verdict == OKEY_OIDC_VERIFIED ? identity != NULL : identity == NULL);
    return verdict;
}

static void assert_rejected(json_t *claims, const char *why)
{
    const char *reason = NULL;

    ck_assert_int_eq(verify(sign(&rsa, claims), jwks_of(&rsa, NULL), &reason),
                     OKEY_OIDC_REJECTED);
    ck_assert_ptr_nonnull(strstr(reason, why));
}

START_TEST(valid_rs256_token_verifies)
{
    const char *reason = NULL;
    okey_oidc_expect_t expect = {ISSUER, CLIENT, NONCE, NOW};
    okey_oidc_identity_t *identity = NULL;
    const char *jwks = jwks_of(&ec, &rsa);

    ck_assert_int_eq(okey_oidc_verify(test_pool, sign(&rsa, good_claims()), jwks,
                                      strlen(jwks), &expect, &identity, &reason),
                     OKEY_OIDC_VERIFIED);
    ck_assert_str_eq(identity->email, "alice@example.com");
    ck_assert_int_eq(identity->email_verified, 1);
    ck_assert_ptr_null(identity->hd);
}
END_TEST

START_TEST(valid_es256_and_ps256_tokens_verify)
{
    const char *reason = NULL;

    ck_assert_int_eq(verify(sign(&ec, good_claims()), jwks_of(&rsa, &ec), &reason),
                     OKEY_OIDC_VERIFIED);
    /* PS256 keys carry no alg in this JWKS, so an RSA key serves both. */
    ck_assert_int_eq(verify(sign_as(&rsa, "PS256", good_claims()),
                            jwks_of(&rsa, NULL), &reason),
                     OKEY_OIDC_VERIFIED);
}
END_TEST

START_TEST(bad_signature_is_rejected)
{
    const char *reason = NULL;
    char *token = apr_pstrdup(test_pool, sign(&rsa, good_claims()));
    char *last = token + strlen(token) - 5;

    *last = *last == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(token, jwks_of(&rsa, NULL), &reason), OKEY_OIDC_REJECTED);
    ck_assert_ptr_nonnull(strstr(reason, "signature"));
}
END_TEST

START_TEST(signature_by_another_key_under_the_same_kid_is_rejected)
{
    const char *reason = NULL;
    signer_t impostor = rsa_other;

    impostor.kid = rsa.kid;
    ck_assert_int_eq(verify(sign(&impostor, good_claims()), jwks_of(&rsa, NULL), &reason),
                     OKEY_OIDC_REJECTED);
}
END_TEST

START_TEST(alg_none_is_rejected)
{
    const char *reason = NULL;
    json_t *claims = good_claims();
    const char *payload = okey_json_dump(test_pool, claims);
    const char *header = "{\"alg\":\"none\",\"kid\":\"rsa-1\"}";
    const char *token = apr_pstrcat(
        test_pool, okey_b64url_encode(test_pool, (const unsigned char *)header, strlen(header)),
        ".", okey_b64url_encode(test_pool, (const unsigned char *)payload, strlen(payload)),
        ".", NULL);

    json_decref(claims);
    ck_assert_int_eq(verify(token, jwks_of(&rsa, NULL), &reason), OKEY_OIDC_REJECTED);
}
END_TEST

/* The classic confusion: HS256 keyed with the provider's public key. */
START_TEST(hs256_with_the_public_key_as_secret_is_rejected)
{
    const char *reason = NULL;
    char *pub = cjose_jwk_to_json(rsa.jwk, false, NULL);
    signer_t hmac = {cjose_jwk_create_oct_spec((const uint8_t *)pub, strlen(pub), NULL),
                     "HS256", "rsa-1"};
    const char *token = sign(&hmac, good_claims());

    cjose_get_dealloc()(pub);
    cjose_jwk_release(hmac.jwk);
    ck_assert_int_eq(verify(token, jwks_of(&rsa, NULL), &reason), OKEY_OIDC_REJECTED);
    ck_assert_ptr_nonnull(strstr(reason, "HS256"));
}
END_TEST

START_TEST(wrong_claims_are_rejected)
{
    json_t *claims;

    claims = good_claims();
    json_object_set_new(claims, "iss", json_string("https://evil.example"));
    assert_rejected(claims, "iss");

    claims = good_claims();
    json_object_set_new(claims, "aud", json_string("client-2"));
    assert_rejected(claims, "aud");

    claims = good_claims();
    json_object_set_new(claims, "aud", json_pack("[s,s]", CLIENT, "client-2"));
    assert_rejected(claims, "azp");

    claims = good_claims();
    json_object_set_new(claims, "azp", json_string("client-2"));
    assert_rejected(claims, "azp");

    claims = good_claims();
    json_object_set_new(claims, "exp", json_integer(NOW - OKEY_OIDC_SKEW));
    assert_rejected(claims, "expired");

    claims = good_claims();
    json_object_del(claims, "exp");
    assert_rejected(claims, "expired");

    claims = good_claims();
    json_object_set_new(claims, "iat", json_integer(NOW + OKEY_OIDC_SKEW + 1));
    assert_rejected(claims, "future");

    claims = good_claims();
    json_object_set_new(claims, "nonce", json_string("nonce-2"));
    assert_rejected(claims, "nonce");

    claims = good_claims();
    json_object_del(claims, "nonce");
    assert_rejected(claims, "nonce");
}
END_TEST

START_TEST(claims_within_skew_and_with_several_audiences_are_accepted)
{
    const char *reason = NULL;
    json_t *claims = good_claims();

    json_object_set_new(claims, "exp", json_integer(NOW - OKEY_OIDC_SKEW + 1));
    json_object_set_new(claims, "iat", json_integer(NOW + OKEY_OIDC_SKEW));
    json_object_set_new(claims, "aud", json_pack("[s,s]", "client-2", CLIENT));
    json_object_set_new(claims, "azp", json_string(CLIENT));
    ck_assert_int_eq(verify(sign(&rsa, claims), jwks_of(&rsa, NULL), &reason),
                     OKEY_OIDC_VERIFIED);
}
END_TEST

/* The identity that claims, signed by rsa, verify to for issuer; or NULL. */
static okey_oidc_identity_t *identity_for(const char *issuer, json_t *claims)
{
    okey_oidc_expect_t expect = {issuer, CLIENT, NONCE, NOW};
    okey_oidc_identity_t *identity = NULL;
    const char *reason = NULL;
    const char *jwks = jwks_of(&rsa, NULL);

    okey_oidc_verify(test_pool, sign(&rsa, claims), jwks, strlen(jwks), &expect,
                     &identity, &reason);
    return identity;
}

START_TEST(google_issuer_without_scheme_is_accepted_for_google_only)
{
    json_t *claims = good_claims();
    okey_oidc_identity_t *identity;

    json_object_set_new(claims, "iss", json_string("accounts.google.com"));
    json_object_set_new(claims, "hd", json_string("corp.example"));
    identity = identity_for("https://accounts.google.com", json_incref(claims));
    ck_assert_ptr_nonnull(identity);
    ck_assert_str_eq(identity->hd, "corp.example");
    ck_assert_ptr_null(identity_for(ISSUER, claims));
}
END_TEST

START_TEST(email_verified_string_true_counts)
{
    json_t *claims = good_claims();

    json_object_set_new(claims, "email_verified", json_string("true"));
    ck_assert_int_eq(identity_for(ISSUER, claims)->email_verified, 1);
    claims = good_claims();
    json_object_set_new(claims, "email_verified", json_string("false"));
    ck_assert_int_eq(identity_for(ISSUER, claims)->email_verified, 0);
}
END_TEST

START_TEST(unknown_kid_asks_for_a_refetch_that_then_verifies)
{
    const char *reason = NULL;
    const char *token = sign(&rsa_other, good_claims());

    ck_assert_int_eq(verify(token, jwks_of(&rsa, NULL), &reason), OKEY_OIDC_UNKNOWN_KID);
    ck_assert_int_eq(verify(token, jwks_of(&rsa, &rsa_other), &reason),
                     OKEY_OIDC_VERIFIED);
    /* An ES256 token finds no key among RSA keys, whatever its kid. */
    ck_assert_int_eq(verify(sign(&ec, good_claims()), jwks_of(&rsa, NULL), &reason),
                     OKEY_OIDC_UNKNOWN_KID);
}
END_TEST

START_TEST(refetch_is_throttled_to_once_a_minute)
{
    ck_assert(okey_oidc_jwks_refetch_due(0, NOW));
    ck_assert(!okey_oidc_jwks_refetch_due(NOW - OKEY_OIDC_JWKS_REFETCH_GAP + 1, NOW));
    ck_assert(okey_oidc_jwks_refetch_due(NOW - OKEY_OIDC_JWKS_REFETCH_GAP, NOW));
}
END_TEST

START_TEST(malformed_tokens_and_jwks_are_rejected)
{
    const char *reason = NULL;
    const char *token = sign(&rsa, good_claims());

    ck_assert_int_eq(verify("not.a.jwt", jwks_of(&rsa, NULL), &reason), OKEY_OIDC_REJECTED);
    ck_assert_int_eq(verify("", jwks_of(&rsa, NULL), &reason), OKEY_OIDC_REJECTED);
    ck_assert_int_eq(verify(token, "{\"keys\": [", &reason), OKEY_OIDC_UNKNOWN_KID);
    ck_assert_int_eq(verify(token, "{\"keys\": [{\"kty\":\"RSA\",\"kid\":\"rsa-1\"}]}", &reason),
                     OKEY_OIDC_REJECTED);
}
END_TEST

/* The groups an ID token's claim yields. */
static int groups_in(json_t *claim, const char *claim_name)
{
    json_t *claims = good_claims();
    const char *jwks = jwks_of(&rsa, NULL);
    okey_oidc_expect_t expect = {ISSUER, CLIENT, NONCE, NOW, claim_name};
    okey_oidc_identity_t *identity = NULL;
    const char *reason = NULL;

    json_object_set_new(claims, claim_name ? claim_name : "groups", claim);
    ck_assert_int_eq(okey_oidc_verify(test_pool, sign(&rsa, claims), jwks, strlen(jwks),
                                      &expect, &identity, &reason), OKEY_OIDC_VERIFIED);
    return identity->groups->nelts;
}

START_TEST(only_an_array_of_strings_names_groups)
{
    json_t *many = json_array();
    int i;

    ck_assert_int_eq(groups_in(json_pack("[s, s]", "ML-Team", "staff"), NULL), 2);
    ck_assert_int_eq(groups_in(json_pack("[s]", "ml-team"), "roles"), 1);
    ck_assert_int_eq(groups_in(json_string("ml-team"), NULL), 0);
    ck_assert_int_eq(groups_in(json_pack("{s:s}", "ml-team", "x"), NULL), 0);
    ck_assert_int_eq(groups_in(json_pack("[i, i]", 1, 2), NULL), 0);
    ck_assert_int_eq(groups_in(json_pack("[s, i]", "ml-team", 2), NULL), 0);
    for (i = 0; i < 10000; i++) {
        json_array_append_new(many, json_sprintf("group-%d", i));
    }
    ck_assert_int_eq(groups_in(many, NULL), 10000);
}
END_TEST

typedef struct {
    const okey_oidc_keyset_t *keys;
    const char *tokens[2]; /* a good one, one signed by a key not in the set */
    int verified, rejected;
} shared_keys_t;

static void *APR_THREAD_FUNC verify_many(apr_thread_t *thread, void *data)
{
    shared_keys_t *shared = data;
    okey_oidc_expect_t expect = {ISSUER, CLIENT, NONCE, NOW};
    apr_pool_t *pool;
    int i;

    apr_pool_create_unmanaged(&pool);
    for (i = 0; i < 20; i++) {
        okey_oidc_identity_t *identity = NULL;
        const char *reason = NULL;

        if (okey_oidc_verify_with(pool, shared->tokens[i % 2], shared->keys, &expect,
                                  &identity, &reason) == OKEY_OIDC_VERIFIED) {
            apr_atomic_inc32((volatile apr_uint32_t *)&shared->verified);
        }
        else {
            apr_atomic_inc32((volatile apr_uint32_t *)&shared->rejected);
        }
        apr_pool_clear(pool);
    }
    apr_pool_destroy(pool);
    /* Returning, not apr_thread_exit: ASan misreads pthread_exit's unwinding. */
    (void)thread;
    return NULL;
}

START_TEST(one_parsed_key_set_serves_threads_until_released)
{
    const char *jwks = jwks_of(&rsa, &ec);
    apr_pool_t *root = okey_pool_for_threads(test_pool);
    shared_keys_t shared = {NULL, {sign(&rsa, good_claims()), sign(&rsa_other, good_claims())},
                            0, 0};
    okey_oidc_keyset_t *keys = okey_oidc_keyset_parse(root, jwks, strlen(jwks));
    apr_thread_t *threads[4];
    apr_status_t rv;
    int i;

    ck_assert_ptr_nonnull(keys);
    shared.keys = keys;
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(apr_thread_create(&threads[i], NULL, verify_many, &shared,
                                           test_pool), APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        apr_thread_join(&rv, threads[i]);
    }
    ck_assert_int_eq(shared.verified, 40);
    ck_assert_int_eq(shared.rejected, 40);
    okey_oidc_keyset_hold(keys);
    okey_oidc_keyset_release(keys);
    okey_oidc_keyset_release(keys);
    ck_assert_ptr_null(okey_oidc_keyset_parse(root, "{\"keys\": 1}", 11));
    ck_assert_ptr_null(okey_oidc_keyset_parse(root, "[", 1));
}
END_TEST

/* --- discovery and the token exchange ---------------------------------- */

static const char DISCOVERY[] =
    "{\"issuer\":\"https://idp.example\","
    "\"authorization_endpoint\":\"https://idp.example/auth?x=1\","
    "\"token_endpoint\":\"https://idp.example/token\","
    "\"jwks_uri\":\"https://idp.example/jwks\"%s}";

static okey_err_t *discover(const char *extra, okey_oidc_provider_t **provider)
{
    const char *doc = apr_psprintf(test_pool, DISCOVERY, extra);

    return okey_oidc_discovery_parse(test_pool, ISSUER, doc, strlen(doc), provider);
}

START_TEST(discovery_parses_and_picks_client_authentication)
{
    okey_oidc_provider_t *provider = NULL;

    ck_assert_ptr_null(discover("", &provider));
    ck_assert_str_eq(provider->token_endpoint, "https://idp.example/token");
    ck_assert_int_eq(provider->token_auth_post, 0);
    ck_assert_ptr_null(discover(",\"token_endpoint_auth_methods_supported\":"
                                "[\"client_secret_post\"]", &provider));
    ck_assert_int_eq(provider->token_auth_post, 1);
    ck_assert_ptr_null(discover(",\"token_endpoint_auth_methods_supported\":"
                                "[\"client_secret_post\",\"client_secret_basic\"]",
                                &provider));
    ck_assert_int_eq(provider->token_auth_post, 0);
}
END_TEST

START_TEST(discovery_for_another_issuer_or_incomplete_is_refused)
{
    okey_oidc_provider_t *provider = NULL;
    const char *other = "{\"issuer\":\"https://evil.example\",\"authorization_endpoint\":"
                        "\"https://evil.example/a\",\"token_endpoint\":\"https://evil.example/t\","
                        "\"jwks_uri\":\"https://evil.example/k\"}";
    const char *plain_http = "{\"issuer\":\"https://idp.example\",\"authorization_endpoint\":"
                             "\"https://idp.example/a\",\"token_endpoint\":\"http://idp.example/t\","
                             "\"jwks_uri\":\"https://idp.example/k\"}";
    okey_err_t *err = okey_oidc_discovery_parse(test_pool, ISSUER, other, strlen(other), &provider);

    ck_assert_int_eq(err->status, 502);
    ck_assert_ptr_nonnull(strstr(err->log_msg, "evil.example"));
    ck_assert_ptr_nonnull(okey_oidc_discovery_parse(test_pool, ISSUER, plain_http,
                                                    strlen(plain_http), &provider));
    ck_assert_ptr_nonnull(okey_oidc_discovery_parse(test_pool, ISSUER, "{", 1, &provider));
    ck_assert_ptr_null(provider);
}
END_TEST

START_TEST(discovered_issuer_may_end_in_a_slash)
{
    okey_oidc_provider_t *provider = NULL;
    const char *doc = "{\"issuer\":\"https://idp.example/\",\"authorization_endpoint\":"
                      "\"https://idp.example/a\",\"token_endpoint\":\"https://idp.example/t\","
                      "\"jwks_uri\":\"https://idp.example/k\"}";

    ck_assert_ptr_null(okey_oidc_discovery_parse(test_pool, ISSUER, doc, strlen(doc), &provider));
    ck_assert_str_eq(provider->issuer, "https://idp.example/");
}
END_TEST

START_TEST(authorize_url_carries_every_parameter)
{
    okey_oidc_provider_t *provider = NULL;
    okey_config_t cfg = {0};
    const char *url;

    cfg.client_id = "client 1";
    cfg.redirect_uri = "https://keys.example/oauth2/callback";
    cfg.scope = "openid email";
    discover("", &provider);
    url = okey_oidc_authorize_url(test_pool, provider, &cfg, "st", "nn", "ch");
    ck_assert_str_eq(url, "https://idp.example/auth?x=1&response_type=code"
                          "&scope=openid%20email&client_id=client%201"
                          "&redirect_uri=https%3A%2F%2Fkeys.example%2Foauth2%2Fcallback"
                          "&state=st&nonce=nn&code_challenge=ch"
                          "&code_challenge_method=S256");
}
END_TEST

START_TEST(token_request_authenticates_with_basic_or_post)
{
    okey_oidc_provider_t *provider = NULL;
    okey_config_t cfg = {0};
    okey_http_request_t req;

    cfg.client_id = "client:1";
    cfg.client_secret = "s3cr&t";
    cfg.redirect_uri = "https://keys.example/cb";
    discover("", &provider);
    okey_oidc_token_request(test_pool, provider, &cfg, "the code", "verif", &req);
    /* base64("client%3A1:s3cr%26t") */
    ck_assert_str_eq(req.authorization, "Basic Y2xpZW50JTNBMTpzM2NyJTI2dA==");
    ck_assert_str_eq(req.body, "grant_type=authorization_code&code=the%20code"
                               "&redirect_uri=https%3A%2F%2Fkeys.example%2Fcb"
                               "&code_verifier=verif");
    provider->token_auth_post = 1;
    okey_oidc_token_request(test_pool, provider, &cfg, "c", "v", &req);
    ck_assert_ptr_null(req.authorization);
    ck_assert_ptr_nonnull(strstr(req.body, "&client_id=client%3A1&client_secret=s3cr%26t"));
}
END_TEST

START_TEST(token_response_errors_map_to_statuses)
{
    okey_http_response_t resp = {0};
    const char *id_token = NULL;

    resp.status = 400;
    resp.body = "{\"error\":\"invalid_grant\"}";
    resp.body_len = strlen(resp.body);
    ck_assert_int_eq(okey_oidc_token_response(test_pool, &resp, &id_token)->status, 400);
    resp.status = 401;
    resp.body = "{\"error\":\"invalid_client\"}";
    resp.body_len = strlen(resp.body);
    ck_assert_int_eq(okey_oidc_token_response(test_pool, &resp, &id_token)->status, 502);
    resp.status = 200;
    resp.body = "{\"access_token\":\"x\"}";
    resp.body_len = strlen(resp.body);
    ck_assert_int_eq(okey_oidc_token_response(test_pool, &resp, &id_token)->status, 502);
    resp.body = "{\"id_token\":\"a.b.c\"}";
    resp.body_len = strlen(resp.body);
    ck_assert_ptr_null(okey_oidc_token_response(test_pool, &resp, &id_token));
    ck_assert_str_eq(id_token, "a.b.c");
}
END_TEST

Suite *okey_oidc_suite(void)
{
    Suite *suite = suite_create("oidc");
    TCase *tokens = test_case("id_token");
    TCase *flow = test_case("discovery and exchange");

    tcase_add_unchecked_fixture(tokens, make_signers, free_signers);
    tcase_add_test(tokens, valid_rs256_token_verifies);
    tcase_add_test(tokens, one_parsed_key_set_serves_threads_until_released);
    tcase_add_test(tokens, only_an_array_of_strings_names_groups);
    tcase_add_test(tokens, valid_es256_and_ps256_tokens_verify);
    tcase_add_test(tokens, bad_signature_is_rejected);
    tcase_add_test(tokens, signature_by_another_key_under_the_same_kid_is_rejected);
    tcase_add_test(tokens, alg_none_is_rejected);
    tcase_add_test(tokens, hs256_with_the_public_key_as_secret_is_rejected);
    tcase_add_test(tokens, wrong_claims_are_rejected);
    tcase_add_test(tokens, claims_within_skew_and_with_several_audiences_are_accepted);
    tcase_add_test(tokens, google_issuer_without_scheme_is_accepted_for_google_only);
    tcase_add_test(tokens, email_verified_string_true_counts);
    tcase_add_test(tokens, unknown_kid_asks_for_a_refetch_that_then_verifies);
    tcase_add_test(tokens, refetch_is_throttled_to_once_a_minute);
    tcase_add_test(tokens, malformed_tokens_and_jwks_are_rejected);
    suite_add_tcase(suite, tokens);
    tcase_add_test(flow, discovery_parses_and_picks_client_authentication);
    tcase_add_test(flow, discovery_for_another_issuer_or_incomplete_is_refused);
    tcase_add_test(flow, discovered_issuer_may_end_in_a_slash);
    tcase_add_test(flow, authorize_url_carries_every_parameter);
    tcase_add_test(flow, token_request_authenticates_with_basic_or_post);
    tcase_add_test(flow, token_response_errors_map_to_statuses);
    suite_add_tcase(suite, flow);
    return suite;
}
