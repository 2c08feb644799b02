/* A provider's discovery document. */
#include "fuzz.h"

#include "oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    okey_oidc_provider_t *provider = NULL;

    okey_oidc_discovery_parse(pool, "https://issuer.example", (const char *)data, size,
                              &provider);
    okey_oidc_discovery_parse(pool, "https://accounts.google.com", (const char *)data,
                              size, &provider);
    apr_pool_destroy(pool);
    return 0;
}
