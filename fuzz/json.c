/* The JSON reader against jansson's: the same texts accepted, with equal
 * values, except what ours refuses for nesting or for a NUL byte (jansson
 * skips one after a number or a literal: "[0\0]" is [0] to it). */
#include "fuzz.h"

#include <jansson.h>
#include <string.h>

#include "okey.h"

/* Containers deep, counting the outermost as 1. */
static int depth_of(const json_t *value)
{
    int deepest = 0;

    if (json_is_object(value)) {
        const char *key;
        json_t *member;

        json_object_foreach((json_t *)value, key, member) {
            int d = depth_of(member);

            deepest = d > deepest ? d : deepest;
        }
        deepest++;
    }
    else if (json_is_array(value)) {
        size_t i;
        json_t *member;

        json_array_foreach(value, i, member) {
            int d = depth_of(member);

            deepest = d > deepest ? d : deepest;
        }
        deepest++;
    }
    return deepest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *pool = fuzz_pool();
    const char *error = NULL;
    json_error_t their_error;
    json_t *theirs = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
                                &their_error);
    json_t *ours = okey_json_parse(pool, (const char *)data, size, &error);

    if (ours ? !theirs || !json_equal(ours, theirs)
             : !error || (theirs && depth_of(theirs) <= OKEY_JSON_MAX_DEPTH &&
                          !memchr(data, '\0', size))) {
        abort();
    }
    json_decref(theirs);
    apr_pool_destroy(pool);
    return 0;
}
