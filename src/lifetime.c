/* Key lifetimes: parsing what a person asks for, saying it back. */
#include "lifetime.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

/* Nine digits of days still fit comfortably in 64 bits. */
#define DIGITS_MAX 9

typedef struct {
    const char *singular;
    apr_int64_t seconds;
} unit_t;

static const unit_t UNITS[] = {
    {"day", 86400}, {"hour", 3600}, {"minute", 60}, {"second", 1}
};

static apr_int64_t unit_seconds(char suffix)
{
    switch (suffix) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
    default: return 0;
    }
}

/* The number text says, or -1 when it says none. */
static apr_int64_t parse_seconds(const char *text)
{
    apr_size_t digits = strspn(text, "0123456789");
    apr_int64_t unit = text[digits] ? unit_seconds(text[digits]) : 1;
    int well_formed = digits > 0 && digits <= DIGITS_MAX && unit > 0 &&
                      (text[digits] == '\0' || text[digits + 1] == '\0');

    return well_formed ? apr_atoi64(text) * unit : -1;
}

okey_err_t *okey_lifetime_parse(apr_pool_t *pool, const char *text,
                                apr_int64_t max, apr_int64_t *seconds)
{
    apr_int64_t parsed = text ? parse_seconds(text) : -1;
    okey_err_t *err = NULL;

    if (parsed < OKEY_LIFETIME_MIN || parsed > max) {
        err = okey_err_make(pool, 400,
                            apr_psprintf(pool, "A key can live from 1 minute to %s. "
                                         "Ask for a lifetime in that range, in seconds "
                                         "or with s, m, h or d: for example ttl=8h.",
                                         okey_lifetime_text(pool, max)),
                            "ttl %s", parsed < 0 ? "is malformed"
                                      : "is outside the allowed range");
        err->denied = OKEY_DENIED_BAD_REQUEST;
    }
    *seconds = err ? 0 : parsed;
    return err;
}

const char *okey_lifetime_text(apr_pool_t *pool, apr_int64_t seconds)
{
    const char *text = "";
    int parts = 0;
    apr_size_t i;

    for (i = 0; i < sizeof(UNITS) / sizeof(UNITS[0]) && parts < 2; i++) {
        apr_int64_t count = seconds / UNITS[i].seconds;

        if (count > 0) {
            text = apr_psprintf(pool, "%s%s%" APR_INT64_T_FMT " %s%s", text,
                                parts ? " " : "", count, UNITS[i].singular,
                                count == 1 ? "" : "s");
            seconds -= count * UNITS[i].seconds;
            parts++;
        }
        else if (parts) {
            parts = 2; /* "1 day 30 seconds" reads worse than "1 day" */
        }
    }
    return parts ? text : "0 seconds";
}
