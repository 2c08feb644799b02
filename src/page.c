/* Self-contained pages: no external CSS, fonts or scripts. */
#include "page.h"

#include <apr_strings.h>
#include <string.h>

static const char STYLE[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;"
    "max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f;"
    "line-height:1.5}"
    "h1{font-size:1.5rem}"
    "code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}"
    "pre{background:#f4f4f6;padding:.75rem;border-radius:6px;"
    "overflow-x:auto;word-break:break-all;white-space:pre-wrap}"
    "button{font:inherit;padding:.4rem 1rem;border-radius:6px;"
    "border:1px solid #888;background:#fff;cursor:pointer}"
    "dt{font-weight:600}dd{margin:0 0 .5rem 0}"
    ".note{color:#555;font-size:.9rem}";

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

okey_page_t okey_page_key(apr_pool_t *pool, const okey_issued_t *issued,
                          const char *script_nonce)
{
    okey_page_t page;
    const char *key = okey_html_escape(pool, issued->api_key);
    const char *utc = okey_iso8601(pool, issued->expires);

    page.csp = apr_psprintf(pool,
                            "default-src 'none'; style-src 'nonce-%s'; "
                            "script-src 'nonce-%s'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'",
                            script_nonce, script_nonce);
    page.html = apr_pstrcat(
        pool,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        "<title>Your temporary OpenAI API key</title>"
        "<style nonce=\"", script_nonce, "\">", STYLE, "</style></head><body>\n"
        "<h1>Your temporary OpenAI API key</h1>\n"
        "<p>Signed in as <strong>", okey_html_escape(pool, issued->email),
        "</strong>.</p>\n"
        "<pre id=\"key\">", key, "</pre>\n"
        "<p><button id=\"copy\" type=\"button\">Copy key</button></p>\n"
        "<p>In a shell:</p>\n<pre>export OPENAI_API_KEY=", key, "</pre>\n"
        "<dl><dt>Project</dt><dd>", okey_html_escape(pool, issued->project),
        "</dd>\n<dt>Expires</dt><dd><time datetime=\"", utc, "\">", utc,
        "</time> (UTC)<br><span id=\"local\" data-utc=\"", utc,
        "\"></span></dd></dl>\n"
        "<p class=\"note\">The key is shown once and deletes itself when it "
        "expires. Keep it secret; sign in again for a new one.</p>\n"
        "<script nonce=\"", script_nonce, "\">", SCRIPT, "</script>\n"
        "</body></html>\n", NULL);
    return page;
}

okey_page_t okey_page_error(apr_pool_t *pool, int status, const char *title,
                            const char *message)
{
    okey_page_t page;

    page.csp = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'";
    page.html = apr_psprintf(
        pool,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>%d %s</title><style>%s</style></head><body>\n"
        "<h1>%s</h1>\n<p>%s</p>\n</body></html>\n",
        status, okey_html_escape(pool, title), STYLE,
        okey_html_escape(pool, title), okey_html_escape(pool, message));
    return page;
}
