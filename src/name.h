/* The names of issued keys, the scheme that lets the reaper, the cap and
 * My keys find a key again and judge it: the owner's address, the expiry
 * and a tag that tells ours from names that only look alike. */
#ifndef OKEY_NAME_H
#define OKEY_NAME_H

#include "okey.h"

#define OKEY_KEYS_NAME_PREFIX "okey-"

/* A tag: OKEY_KEYS_TAG_DRAWN characters drawn at random, then
 * OKEY_KEYS_TAG_CHECK that a digest of the expiry, the drawn part and the
 * address gives, so that a name from before tags, whose address happens to
 * begin like a tag, is not read as a tagged one. */
#define OKEY_KEYS_TAG_DRAWN 5
#define OKEY_KEYS_TAG_CHECK 3
#define OKEY_KEYS_TAG_LEN (OKEY_KEYS_TAG_DRAWN + OKEY_KEYS_TAG_CHECK)

/* okey-<expires>-<tag>-<email in lower case>, the tag made from drawn
 * (OKEY_KEYS_TAG_DRAWN characters of [a-z0-9]). */
const char *okey_keys_name(apr_pool_t *pool, apr_int64_t expires, const char *drawn,
                           const char *email);

/* The same with a tag drawn from the system's generator. */
okey_err_t *okey_keys_new_name(apr_pool_t *pool, apr_int64_t expires, const char *email,
                               const char **name);

/* A name from its parts, as okey_keys_name_tag gives the tag. */
const char *okey_keys_name_tagged(apr_pool_t *pool, apr_int64_t expires, const char *tag,
                                  const char *email);

/* The tag of a name of ours; "" for an untagged one, NULL when not ours. */
const char *okey_keys_name_tag(apr_pool_t *pool, const char *name);

/* Splits a name of the form above, or of the untagged form of releases 1
 * and 2 (okey-<expires>-<email>); 0 when it is neither. */
int okey_keys_parse_name(apr_pool_t *pool, const char *name,
                         apr_int64_t *expires, const char **email);

#endif
