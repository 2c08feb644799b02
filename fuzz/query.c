/* Query strings and form bodies, and the lifetimes they ask for. */
#include "fuzz.h"

#include "lifetime.h"
#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *why = NULL;
    apr_array_header_t *params = okey_query_parse(pool, fuzz_text(pool, data, size), &why);
    int count = 0;

    const char *ttl = okey_query_get(params, "ttl", &count);
    apr_int64_t seconds = 0;

    okey_query_get(params, "code", &count);
    okey_lifetime_parse(pool, ttl ? ttl : fuzz_text(pool, data, size), 31536000, &seconds);
    okey_scrub(pool, fuzz_text(pool, data, size));
    apr_pool_destroy(pool);
    return 0;
}
