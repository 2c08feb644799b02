/* The HTML a person sees: the key page and the error pages. */
#ifndef OKEY_PAGE_H
#define OKEY_PAGE_H

#include "admin.h"
#include "keys.h"
#include "spend.h"

typedef struct okey_page_t {
    const char *html;
    /* The Content-Security-Policy that fits the page's inline style/script. */
    const char *csp;
} okey_page_t;

const char *okey_html_escape(apr_pool_t *pool, const char *text);

/* Where a page's self-service links and forms go. */
typedef struct okey_page_links_t {
    const char *keys_url; /* My keys, or NULL where the server serves none */
    const char *csrf;     /* the session's token for forms, or NULL */
} okey_page_links_t;

/* The key just issued, and the keys the cap revoked for it (of
 * okey_owned_key_t, or NULL). script_nonce: a fresh random value for this
 * response's CSP. */
okey_page_t okey_page_key(apr_pool_t *pool, const okey_issued_t *issued,
                          const apr_array_header_t *revoked,
                          const okey_page_links_t *links, const char *script_nonce);

/* The lifetimes a person may pick from: the default and the longest. */
typedef struct okey_lifetimes_t {
    apr_int64_t standard;
    apr_int64_t longest;
} okey_lifetimes_t;

/* openaikey-issue's page: one button, posting token and a lifetime to
 * action. */
okey_page_t okey_page_issue(apr_pool_t *pool, const char *email, const char *action,
                            const char *token, const okey_lifetimes_t *lifetimes,
                            const char *nonce);

/* My keys without a session: sign in, or get a new key. */
okey_page_t okey_page_keys_sign_in(apr_pool_t *pool, const okey_lifetimes_t *lifetimes,
                                   const char *nonce);

/* My keys: owned (of okey_owned_key_t) with a revoke form each, and what
 * the last action did (message, or NULL). */
okey_page_t okey_page_my_keys(apr_pool_t *pool, const char *email,
                              const char *project, const apr_array_header_t *owned,
                              apr_int64_t now, const char *message,
                              const okey_page_links_t *links,
                              const okey_lifetimes_t *lifetimes, const char *nonce,
                              const okey_spend_view_t *spend);

/* What the admin console shows. */
typedef struct okey_page_admin_t {
    const char *user;                    /* the administrator */
    const char *action;                  /* where its forms post */
    const char *token;                   /* its forms' token */
    const okey_admin_people_t *people;
    const okey_budget_t *budget;         /* set 0: none */
    apr_int64_t polled_at;               /* of the figures; 0: no poll yet */
    const okey_admin_query_t *query;     /* by OKEY_ADMIN_BY_NOTHING: no search */
    const apr_array_header_t *keys;      /* that the search found, of okey_admin_key_t */
    const char *message;                 /* what a revoke did, or NULL */
} okey_page_admin_t;

okey_page_t okey_page_admin(apr_pool_t *pool, const okey_page_admin_t *admin,
                            const char *nonce);

/* A message with one link to follow; refresh follows it at once. */
okey_page_t okey_page_link(apr_pool_t *pool, const char *title, const char *message,
                           const char *url, const char *link_text, int refresh);

/* A title and a message, nothing else. */
okey_page_t okey_page_message(apr_pool_t *pool, const char *title, const char *message);

okey_page_t okey_page_error(apr_pool_t *pool, int status, const char *title,
                            const char *message);

#endif
