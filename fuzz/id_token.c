/* ID-token verification: the input is a JWKS, a newline, and a token. */
#include "fuzz.h"

#include <string.h>

#include "oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *text = fuzz_text(pool, data, size);
    const char *newline = memchr(text, '\n', size);
    okey_oidc_expect_t expect = {"https://issuer.example", "fuzz-client", "fuzz-nonce",
                                 1800000000};
    okey_oidc_identity_t *identity = NULL;
    const char *reason = NULL;

    if (newline) {
        okey_oidc_verify(pool, newline + 1, text, (apr_size_t)(newline - text), &expect,
                         &identity, &reason);
    }
    apr_pool_destroy(pool);
    return 0;
}
