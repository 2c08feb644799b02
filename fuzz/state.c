/* The state and session cookies: the Cookie header parsers and opening a
 * sealed value. */
#include "fuzz.h"

#include "session.h"
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
    {
        const char *why = NULL;
        const char *session = okey_session_cookie(pool, text, size % 2);

        okey_session_open(pool, fuzz_key, session ? session : text, okey_now(), &why);
    }
    apr_pool_destroy(pool);
    return 0;
}
