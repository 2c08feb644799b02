/* The command-line helper's protocol: cli_key as any request may send it
 * (raw, and base64url-encoded so that its JSON is explored too), and a
 * result as anything on this machine may send it to the listener. */
#include "fuzz.h"

#include "cli.h"

/* One key pair for the process: making one per input would drown the run. */
static okey_cli_keypair_t *fuzz_pair;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *text = fuzz_text(pool, data, size);
    okey_cli_key_t *key = NULL;
    const char *jwe = NULL;
    int port = 0;

    if (!fuzz_pair) {
        okey_cli_keypair_new(fuzz_root, 2048, &fuzz_pair);
    }
    okey_cli_port_parse(pool, text, &port);
    okey_cli_key_parse(pool, text, &key);
    if (!okey_cli_key_parse(pool, okey_b64url_encode(pool, data, size), &key)) {
        okey_cli_seal(pool, key, "{}", &jwe);
    }
    okey_cli_open(pool, fuzz_pair, text);
    apr_pool_destroy(pool);
    return 0;
}
