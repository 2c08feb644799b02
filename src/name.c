/* The names of issued keys. */
#include "name.h"

#include <apr_strings.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const char TAG_CHARS[] = "abcdefghijklmnopqrstuvwxyz0123456789";

/* The check characters of a tag: drawn, expiry and address digested. */
static void tag_check(apr_int64_t expires, const char *drawn, const char *email,
                      char check[OKEY_KEYS_TAG_CHECK])
{
    char text[40];
    unsigned char digest[32];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = sizeof(digest);
    int i;

    apr_snprintf(text, sizeof(text), "%" APR_INT64_T_FMT "-%.*s-", expires,
                 OKEY_KEYS_TAG_DRAWN, drawn);
    memset(digest, 0, sizeof(digest));
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(ctx, text, strlen(text)) &&
        EVP_DigestUpdate(ctx, email, strlen(email))) {
        EVP_DigestFinal_ex(ctx, digest, &len);
    }
    EVP_MD_CTX_free(ctx);
    for (i = 0; i < OKEY_KEYS_TAG_CHECK; i++) {
        check[i] = TAG_CHARS[digest[i] % (sizeof(TAG_CHARS) - 1)];
    }
}

const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires, const char *drawn,
                           const char *email)
{
    const char *lower = okey_lower(pool, email);
    char check[OKEY_KEYS_TAG_CHECK];

    tag_check(expires, drawn, lower, check);
    return apr_psprintf(pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%.*s%.*s-%s",
                        expires, OKEY_KEYS_TAG_DRAWN, drawn, OKEY_KEYS_TAG_CHECK, check,
                        lower);
}

const char *okey_keys_name_tagged(apr_pool_t *pool, apr_int64_t expires, const char *tag,
                                  const char *email)
{
    return apr_psprintf(pool, OKEY_KEYS_NAME_PREFIX "%" APR_INT64_T_FMT "-%s-%s", expires,
                        tag, email);
}

okey_err_t *okey_keys_new_name(apr_pool_t *pool, apr_int64_t expires, const char *email,
                               const char **name)
{
    char drawn[OKEY_KEYS_TAG_DRAWN + 1];
    unsigned char byte;
    int n = 0;
    int tries = 0;
    apr_status_t rv = APR_SUCCESS;

    /* 252 is the largest multiple of 36 below 256: no character is likelier. */
    while (n < OKEY_KEYS_TAG_DRAWN && rv == APR_SUCCESS && tries++ < 1000) {
        rv = apr_generate_random_bytes(&byte, 1);
        if (rv == APR_SUCCESS && byte < 252) {
            drawn[n++] = TAG_CHARS[byte % 36];
        }
    }
    drawn[n] = '\0';
    *name = n == OKEY_KEYS_TAG_DRAWN ? okey_keys_name(pool, expires, drawn, email) : NULL;
    return *name ? NULL
                 : okey_err_make(pool, 500, NULL, "no random bytes from the system for a "
                                 "service account's tag (%d)", rv);
}

/* Whether text starts with a tag of ours for expires and the address after
 * it. */
static int tagged(const char *text, apr_int64_t expires)
{
    apr_size_t len = strspn(text, TAG_CHARS);
    char check[OKEY_KEYS_TAG_CHECK];
    int ok = len >= OKEY_KEYS_TAG_LEN && text[OKEY_KEYS_TAG_LEN] == '-';

    if (ok) {
        tag_check(expires, text, text + OKEY_KEYS_TAG_LEN + 1, check);
        ok = !memcmp(check, text + OKEY_KEYS_TAG_DRAWN, OKEY_KEYS_TAG_CHECK);
    }
    return ok;
}

const char *okey_keys_name_tag(apr_pool_t *pool, const char *name)
{
    apr_int64_t expires = 0;
    const char *email = NULL;
    const char *digits = name + strlen(OKEY_KEYS_NAME_PREFIX);
    int ours = okey_keys_parse_name(pool, name, &expires, &email);

    digits += ours ? strspn(digits, "0123456789") + 1 : 0;
    return !ours ? NULL
           : tagged(digits, expires) ? apr_pstrndup(pool, digits, OKEY_KEYS_TAG_LEN) : "";
}

int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email)
{
    apr_size_t prefix = strlen(OKEY_KEYS_NAME_PREFIX);
    int ok = strncmp(name, OKEY_KEYS_NAME_PREFIX, prefix) == 0;
    const char *digits = ok ? name + prefix : "";
    apr_size_t ndigits = strspn(digits, "0123456789");
    const char *address = digits + ndigits + (digits[ndigits] == '-');

    /* At most 12 digits keep the expiry far from overflow. */
    ok = ok && ndigits > 0 && ndigits <= 12 && digits[ndigits] == '-';
    *expires = ok ? (apr_int64_t)strtoll(digits, NULL, 10) : 0;
    if (ok && tagged(address, *expires)) {
        address += OKEY_KEYS_TAG_LEN + 1;
    }
    ok = ok && address[0] != '@' && strchr(address, '@');
    *expires = ok ? *expires : 0;
    *email = ok ? apr_pstrdup(pool, address) : NULL;
    return ok;
}
