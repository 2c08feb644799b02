/* The state cookie: the Cookie header parser and opening a sealed value. */
#include "fuzz.h"

#include "state.h"

static okey_state_key_t *fuzz_key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *text = fuzz_text(pool, data, size);
    apr_array_header_t *cookies;
    okey_state_t *state = NULL;
    int i;

    if (!fuzz_key) {
        okey_state_key_create(fuzz_root, "fuzz passphrase", &fuzz_key);
    }
    cookies = okey_state_cookies(pool, text, size % 2);
    for (i = 0; i < cookies->nelts; i++) {
        okey_state_open(pool, fuzz_key, APR_ARRAY_IDX(cookies, i, okey_state_cookie_t).value,
                        apr_time_now(), &state);
    }
    okey_state_open(pool, fuzz_key, text, apr_time_now(), &state);
    okey_state_cookies_to_drop(pool, fuzz_key, cookies, apr_time_now());
    okey_state_token_valid(text);
    apr_pool_destroy(pool);
    return 0;
}
