/* The admission policy. */
#include "policy.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

static const char DENIED[] =
    "Your account is not allowed to get a key from this server.";

static int listed(const apr_array_header_t *list, const char *item)
{
    int found = 0;
    int i;

    for (i = 0; i < list->nelts && !found; i++) {
        found = okey_strieq(APR_ARRAY_IDX(list, i, const char *), item);
    }
    return found;
}

/* The address's domain when it is allowed and vouched for, else NULL. */
static const char *domain_problem(apr_pool_t *pool, const okey_config_t *cfg,
                                  const okey_oidc_identity_t *identity)
{
    const char *at = strrchr(identity->email, '@');
    const char *domain = at ? at + 1 : "";
    int google = !strcmp(cfg->issuer, OKEY_GOOGLE_ISSUER);
    const char *problem = NULL;

    if (!listed(cfg->allowed_domains, domain)) {
        problem = apr_psprintf(pool, "neither the address nor its domain %s is "
                               "allowed", domain);
    }
    else if (google && !identity->hd) {
        problem = "the token has no hd claim (not a Google Workspace account)";
    }
    else if (identity->hd && !okey_strieq(identity->hd, domain)) {
        problem = apr_psprintf(pool, "hd claim %s is not the address's domain %s",
                               identity->hd, domain);
    }
    return problem;
}

/* Characters of an address's local part: RFC 5322's dot-atom, no quotes. */
static const char LOCAL_CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789.!#$%&'*+/=?^_`{|}~-";
static const char DOMAIN_CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789.-";

int okey_policy_address_valid(const char *email)
{
    const char *at = email ? strchr(email, '@') : NULL;
    apr_size_t local = at ? (apr_size_t)(at - email) : 0;
    const char *domain = at ? at + 1 : "";
    apr_size_t domain_len = strlen(domain);

    return at && local > 0 && local <= 64 && domain_len > 0 && local + 1 + domain_len <= 254 &&
           strspn(email, LOCAL_CHARS) == local &&
           strspn(domain, DOMAIN_CHARS) == domain_len && strchr(domain, '.') &&
           email[0] != '.' && at[-1] != '.' && !strstr(email, "..") &&
           domain[0] != '.' && domain[0] != '-' && domain[domain_len - 1] != '.' &&
           domain[domain_len - 1] != '-';
}

/* Whether the token names a group the server allows. */
static int in_allowed_group(const okey_config_t *cfg, const okey_oidc_identity_t *identity)
{
    int found = 0;
    int i;

    for (i = 0; cfg->allowed_groups && identity->groups && i < identity->groups->nelts &&
                !found; i++) {
        found = listed(cfg->allowed_groups, APR_ARRAY_IDX(identity->groups, i, const char *));
    }
    return found;
}

okey_err_t *okey_policy_check(apr_pool_t *pool, const okey_config_t *cfg,
                              const okey_oidc_identity_t *identity)
{
    const char *problem = NULL;
    const char *user_msg = DENIED;
    int denied = OKEY_DENIED_NOT_ALLOWED;
    okey_err_t *err = NULL;

    if (!identity->email || !strchr(identity->email, '@')) {
        problem = "the token carries no e-mail address";
    }
    else if (!okey_policy_address_valid(identity->email)) {
        /* It would name an account and an audit line: plain addresses only. */
        problem = "the token's e-mail address is not a plain address";
    }
    else if (!identity->email_verified) {
        problem = "the e-mail address is not verified";
        denied = OKEY_DENIED_EMAIL_UNVERIFIED;
        user_msg = "Your e-mail address is not verified by your sign-in "
                   "provider, so this server cannot give you a key.";
    }
    else if (!listed(cfg->allowed_users, identity->email) &&
             !in_allowed_group(cfg, identity)) {
        problem = domain_problem(pool, cfg, identity);
    }
    if (problem) {
        err = okey_err_make(pool, 403, user_msg, "denied %s: %s",
                            identity->email ? identity->email : "(no address)",
                            problem);
        err->denied = denied;
    }
    return err;
}

int okey_policy_address_listed(const okey_config_t *cfg, const char *email)
{
    const char *at = email ? strrchr(email, '@') : NULL;

    return at && (listed(cfg->allowed_users, email) || listed(cfg->allowed_domains, at + 1));
}
