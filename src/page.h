/* The HTML a person sees: the key page and the error pages. */
#ifndef OKEY_PAGE_H
#define OKEY_PAGE_H

#include "keys.h"

typedef struct okey_page_t {
    const char *html;
    /* The Content-Security-Policy that fits the page's inline style/script. */
    const char *csp;
} okey_page_t;

const char *okey_html_escape(apr_pool_t *pool, const char *text);

/* script_nonce: a fresh random value for this response's CSP. */
okey_page_t okey_page_key(apr_pool_t *pool, const okey_issued_t *issued,
                          const char *script_nonce);

okey_page_t okey_page_error(apr_pool_t *pool, int status, const char *title,
                            const char *message);

#endif
