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
        apr_array_header_t *found = apr_array_make(pool, 2, sizeof(okey_openai_project_t));
        const json_t *item;
        size_t i;

        json_array_foreach(page.data, i, item) {
            okey_openai_note_project(pool, item, "personal", found);
        }
        okey_openai_oldest_first(pool, found);
        okey_openai_page_loops(&page, 1, apr_hash_make(pool), &why);
    }
    okey_openai_service_account_parse(pool, (const char *)data, size, &account);
    apr_pool_destroy(pool);
    return 0;
}
