/* Query string parsing. */
#include "query.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

static int hex_value(char c)
{
    return apr_isdigit(c) ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}

/* Decodes len bytes of form-encoded text; NULL when malformed. */
static const char *decode(apr_pool_t *pool, const char *text, apr_size_t len)
{
    char *out = apr_palloc(pool, len + 1);
    apr_size_t i = 0;
    apr_size_t o = 0;
    int ok = 1;

    while (ok && i < len) {
        if (text[i] == '%') {
            int hi = i + 2 < len ? hex_value(text[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(text[i + 2]) : -1;

            ok = hi >= 0 && lo >= 0 && (hi | lo) != 0;
            out[o++] = (char)(ok ? hi * 16 + lo : 0);
            i += 3;
        }
        else {
            out[o++] = text[i] == '+' ? ' ' : text[i];
            i++;
        }
    }
    out[o] = '\0';
    return ok ? out : NULL;
}

apr_array_header_t *okey_query_parse(apr_pool_t *pool, const char *query,
                                     const char **why)
{
    apr_array_header_t *params = apr_array_make(pool, 4, sizeof(okey_param_t));
    const char *pos = query ? query : "";

    *why = NULL;
    while (*pos && !*why) {
        apr_size_t len = strcspn(pos, "&;");
        const char *eq = memchr(pos, '=', len);
        apr_size_t name_len = eq ? (apr_size_t)(eq - pos) : len;
        okey_param_t param;

        param.name = decode(pool, pos, name_len);
        param.value = eq ? decode(pool, eq + 1, len - name_len - 1) : "";
        if (!param.name || !param.value) {
            *why = "a malformed %-escape or an encoded NUL";
        }
        else if (params->nelts >= OKEY_QUERY_MAX_PARAMS) {
            *why = "too many parameters";
        }
        else if (len > 0) {
            APR_ARRAY_PUSH(params, okey_param_t) = param;
        }
        pos += len + (pos[len] != '\0');
    }
    return *why ? NULL : params;
}

const char *okey_query_get(const apr_array_header_t *params, const char *name,
                           int *count)
{
    const char *value = NULL;
    int i;

    *count = 0;
    for (i = 0; params && i < params->nelts; i++) {
        const okey_param_t *param = &APR_ARRAY_IDX(params, i, okey_param_t);

        if (!strcmp(param->name, name)) {
            value = param->value;
            (*count)++;
        }
    }
    return value;
}
