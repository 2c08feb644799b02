/* A page of an Admin API list, as the client and the reaper read it. */
#include "fuzz.h"

#include <apr_hash.h>

#include "openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    okey_openai_page_t page;
    okey_service_account_t *account = NULL;
    const char *why = NULL;

    if (!okey_openai_page_parse(pool, (const char *)data, size, &page)) {
        okey_openai_page_find_project(&page, "personal");
        okey_openai_page_loops(&page, 1, apr_hash_make(pool), &why);
    }
    okey_openai_service_account_parse(pool, (const char *)data, size, &account);
    apr_pool_destroy(pool);
    return 0;
}
