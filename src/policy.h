/* Who may have a key: allowed addresses, and allowed domains. */
#ifndef OKEY_POLICY_H
#define OKEY_POLICY_H

#include "config.h"
#include "oidc.h"

/* NULL when identity may have a key, else a 403 error saying why. For the
 * domain rule, a token that carries hd must name the address's domain, and
 * Google's tokens must carry it: Google vouches for a Workspace domain only
 * through hd, never through the address. */
okey_err_t *okey_policy_check(apr_pool_t *pool, const okey_config_t *cfg,
                              const okey_oidc_identity_t *identity);

/* Whether email is an address another module may hand over (r->user):
 * an unquoted dot-atom local part, a dotted domain of letters, digits and
 * hyphens, at most 254 characters; nothing an account name could not carry. */
int okey_policy_address_valid(const char *email);

/* Whether cfg lists email itself or its domain. Without a token nothing
 * vouches for a domain or a group, so this is all that openaikey-issue and
 * the reaper can know: a group admits only through a token's claim. */
int okey_policy_address_listed(const okey_config_t *cfg, const char *email);

#endif
