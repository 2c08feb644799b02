/* What every fuzz target shares: APR set up once, and a pool per input. */
#ifndef OKEY_FUZZ_H
#define OKEY_FUZZ_H

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* The root pool of the fuzzing process; each input gets a child of it. */
static apr_pool_t *fuzz_root;

static apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *pool = NULL;

    if (!fuzz_root) {
        apr_initialize();
        /* Process-wide objects go with the root pool before the leak check. */
        atexit(apr_terminate);
        apr_pool_create(&fuzz_root, NULL);
    }
    apr_pool_create(&pool, fuzz_root);
    return pool;
}

/* The input as a NUL-terminated string in pool. */
static const char *fuzz_text(apr_pool_t *pool, const uint8_t *data, size_t size)
{
    return apr_pstrmemdup(pool, (const char *)data, size);
}

#endif
