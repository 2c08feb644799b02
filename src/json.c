/* JSON text (RFC 8259) to jansson values. It accepts exactly what
 * json_loadb with JSON_REJECT_DUPLICATES accepts, nested at most
 * OKEY_JSON_MAX_DEPTH deep, and builds the same values; it reads a byte in
 * a few instructions where jansson's stream reader spends over a hundred,
 * which is most of a sign-in's and a reap's cost outside RSA. fuzz/json.c
 * holds the two to the same answers. */
#include "okey.h"

#include <apr_strings.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *at;
    const unsigned char *end;
    const unsigned char *start;
    int depth;
    apr_pool_t *pool;
    char *scratch;          /* decoded strings with escapes; input-sized */
    const char *problem;    /* the first thing found wrong */
} reader_t;

/* Bytes that end the plain run of a string: '"', '\\', controls, non-ASCII. */
static const unsigned char STRING_STOP[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static json_t *read_value(reader_t *reader);

static void fail(reader_t *reader, const char *problem)
{
    if (!reader->problem) {
        reader->problem = problem;
    }
}

static void skip_space(reader_t *reader)
{
    while (reader->at < reader->end && (*reader->at == ' ' || *reader->at == '\n' ||
                                        *reader->at == '\r' || *reader->at == '\t')) {
        reader->at++;
    }
}

/* Whether the next byte is c; consumed when it is. */
static int take(reader_t *reader, unsigned char c)
{
    int found = reader->at < reader->end && *reader->at == c;

    reader->at += found;
    return found;
}

/* The length of the well-formed UTF-8 sequence at p (no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0. */
static int utf8_length(const unsigned char *p, const unsigned char *end)
{
    apr_size_t left = (apr_size_t)(end - p);
    unsigned char lo = 0x80, hi = 0xBF;
    int len = p[0] >= 0xC2 && p[0] <= 0xDF ? 2
              : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
              : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    int i;

    lo = p[0] == 0xE0 ? 0xA0 : p[0] == 0xF0 ? 0x90 : lo;
    hi = p[0] == 0xED ? 0x9F : p[0] == 0xF4 ? 0x8F : hi;
    if ((apr_size_t)len > left || (len && (p[1] < lo || p[1] > hi))) {
        len = 0;
    }
    for (i = 2; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            len = 0;
        }
    }
    return len;
}

static long hex4(const unsigned char *p, const unsigned char *end)
{
    long value = 0;
    int i;

    for (i = 0; i < 4 && value >= 0; i++) {
        int c = p + i < end ? p[i] : -1;
        int digit = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

        value = digit < 0 ? -1 : value << 4 | digit;
    }
    return value;
}

/* The code point of the \u escape at reader->at (just past the 'u'),
 * joining a surrogate pair; -1 when it is not one jansson would take. */
static long read_unicode(reader_t *reader)
{
    long point = hex4(reader->at, reader->end);

    reader->at += point >= 0 ? 4 : 0;
    if (point >= 0xD800 && point <= 0xDBFF) {
        long low = reader->end - reader->at >= 6 && reader->at[0] == '\\' &&
                   reader->at[1] == 'u' ? hex4(reader->at + 2, reader->end) : -1;

        point = low >= 0xDC00 && low <= 0xDFFF
                ? 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00) : -1;
        reader->at += point >= 0 ? 6 : 0;
    }
    else if (point >= 0xDC00 && point <= 0xDFFF) {
        point = -1;
    }
    return point == 0 ? -1 : point;
}

static char *put_utf8(char *out, long point)
{
    if (point < 0x80) {
        *out++ = (char)point;
    }
    else if (point < 0x800) {
        *out++ = (char)(0xC0 | point >> 6);
        *out++ = (char)(0x80 | (point & 0x3F));
    }
    else if (point < 0x10000) {
        *out++ = (char)(0xE0 | point >> 12);
        *out++ = (char)(0x80 | (point >> 6 & 0x3F));
        *out++ = (char)(0x80 | (point & 0x3F));
    }
    else {
        *out++ = (char)(0xF0 | point >> 18);
        *out++ = (char)(0x80 | (point >> 12 & 0x3F));
        *out++ = (char)(0x80 | (point >> 6 & 0x3F));
        *out++ = (char)(0x80 | (point & 0x3F));
    }
    return out;
}

/* The rest of a string with escapes or non-ASCII, from the plain run
 * [from, reader->at), decoded into the scratch buffer. */
static const char *read_string_slow(reader_t *reader, const unsigned char *from,
                                    apr_size_t *len)
{
    static const char ESCAPED[] = "\"\\/bfnrt";
    static const char MEANS[] = "\"\\/\b\f\n\r\t";
    char *out;

    if (!reader->scratch) {
        reader->scratch = apr_palloc(reader->pool, (apr_size_t)(reader->end - reader->start) + 1);
    }
    out = reader->scratch;
    memcpy(out, from, (apr_size_t)(reader->at - from));
    out += reader->at - from;
    while (!reader->problem && reader->at < reader->end && *reader->at != '"') {
        const unsigned char c = *reader->at;

        if (c == '\\' && reader->at + 1 < reader->end && reader->at[1] == 'u') {
            long point;

            reader->at += 2;
            point = read_unicode(reader);
            if (point < 0) {
                fail(reader, "a \\u escape that is not a character");
            }
            else {
                out = put_utf8(out, point);
            }
        }
        else if (c == '\\') {
            const char *escape = reader->at + 1 < reader->end && reader->at[1]
                                 ? strchr(ESCAPED, reader->at[1]) : NULL;

            if (escape) {
                *out++ = MEANS[escape - ESCAPED];
                reader->at += 2;
            }
            else {
                fail(reader, "an invalid escape in a string");
            }
        }
        else if (c < 0x20) {
            fail(reader, "a control character in a string");
        }
        else if (c < 0x80) {
            *out++ = (char)c;
            reader->at++;
        }
        else {
            int n = utf8_length(reader->at, reader->end);

            if (!n) {
                fail(reader, "invalid UTF-8 in a string");
            }
            memcpy(out, reader->at, (apr_size_t)n);
            out += n;
            reader->at += n;
        }
    }
    *len = (apr_size_t)(out - reader->scratch);
    return reader->scratch;
}

/* The string whose opening quote was just read, decoded; NULL with a
 * problem set when it is not well formed. Valid until the next string. */
static const char *read_string(reader_t *reader, apr_size_t *len)
{
    const unsigned char *from = reader->at;
    const char *text = (const char *)from;

    while (reader->at < reader->end && !STRING_STOP[*reader->at]) {
        reader->at++;
    }
    *len = (apr_size_t)(reader->at - from);
    if (reader->at < reader->end && *reader->at != '"') {
        text = read_string_slow(reader, from, len);
    }
    if (!take(reader, '"')) {
        fail(reader, "a string that does not end");
    }
    return reader->problem ? NULL : text;
}

static int is_digit(const reader_t *reader)
{
    return reader->at < reader->end && *reader->at >= '0' && *reader->at <= '9';
}

static void skip_digits(reader_t *reader)
{
    while (is_digit(reader)) {
        reader->at++;
    }
}

/* An integer in json_int_t's range, as jansson's strtoll reads it. */
static json_t *integer_value(reader_t *reader, const unsigned char *from)
{
    int negative = *from == '-';
    const unsigned char *p = from + negative;
    unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    unsigned long long value = 0;
    json_t *made = NULL;

    while (p < reader->at && value <= (limit - (unsigned long long)(*p - '0')) / 10) {
        value = value * 10 + (unsigned long long)(*p++ - '0');
    }
    if (p < reader->at) {
        fail(reader, "an integer out of range");
    }
    else {
        made = json_integer(!negative ? (json_int_t)value
                            : value == limit ? LLONG_MIN : -(json_int_t)value);
    }
    return made;
}

/* A real as jansson reads it: strtod in the current locale's notation. */
static json_t *real_value(reader_t *reader, const unsigned char *from)
{
    apr_size_t len = (apr_size_t)(reader->at - from);
    char *text = apr_pstrmemdup(reader->pool, (const char *)from, len);
    const char *point = localeconv()->decimal_point;
    char *dot = strchr(text, '.');
    double value;

    if (dot && point && point[0] && !point[1]) {
        *dot = point[0];
    }
    errno = 0;
    value = strtod(text, NULL);
    if ((value == HUGE_VAL || value == -HUGE_VAL) && errno == ERANGE) {
        fail(reader, "a number out of range");
    }
    return reader->problem ? NULL : json_real(value);
}

static json_t *read_number(reader_t *reader)
{
    const unsigned char *from = reader->at;
    int integer = 1;

    take(reader, '-');
    if (take(reader, '0')) {
        if (is_digit(reader)) {
            fail(reader, "a number with a leading zero");
        }
    }
    else if (is_digit(reader)) {
        skip_digits(reader);
    }
    else {
        fail(reader, "a malformed number");
    }
    if (!reader->problem && take(reader, '.')) {
        integer = 0;
        if (!is_digit(reader)) {
            fail(reader, "a malformed number");
        }
        skip_digits(reader);
    }
    if (!reader->problem && (take(reader, 'e') || take(reader, 'E'))) {
        integer = 0;
        if (!take(reader, '+')) {
            take(reader, '-');
        }
        if (!is_digit(reader)) {
            fail(reader, "a malformed number");
        }
        skip_digits(reader);
    }
    return reader->problem ? NULL
           : integer ? integer_value(reader, from) : real_value(reader, from);
}

static json_t *read_word(reader_t *reader, const char *word, json_t *value)
{
    apr_size_t len = strlen(word);

    if ((apr_size_t)(reader->end - reader->at) >= len && !memcmp(reader->at, word, len)) {
        reader->at += len;
    }
    else {
        fail(reader, "an unexpected character");
        value = NULL;
    }
    return value;
}

static json_t *read_object(reader_t *reader)
{
    json_t *object = json_object();
    int more = 1;

    skip_space(reader);
    if (take(reader, '}')) {
        more = 0;
    }
    while (more && !reader->problem) {
        apr_size_t key_len = 0;
        const char *scanned = take(reader, '"') ? read_string(reader, &key_len) : NULL;
        /* A decoded name sits in scratch, which its value may reuse. */
        const char *key = scanned == reader->scratch
                          ? apr_pstrmemdup(reader->pool, scanned, key_len) : scanned;
        json_t *value = NULL;

        if (!scanned) {
            fail(reader, "an object member without a string name");
        }
        else if (json_object_getn(object, key, key_len)) {
            fail(reader, "a name twice in one object");
        }
        skip_space(reader);
        if (!reader->problem && !take(reader, ':')) {
            fail(reader, "an object member without ':'");
        }
        value = reader->problem ? NULL : read_value(reader);
        if (value && json_object_setn_new_nocheck(object, key, key_len, value)) {
            fail(reader, "out of memory");
        }
        skip_space(reader);
        more = take(reader, ',');
        if (!more && !take(reader, '}')) {
            fail(reader, "an object without ',' or '}'");
        }
        skip_space(reader);
    }
    if (reader->problem) {
        json_decref(object);
        object = NULL;
    }
    return object;
}

static json_t *read_array(reader_t *reader)
{
    json_t *array = json_array();
    int more = 1;

    skip_space(reader);
    if (take(reader, ']')) {
        more = 0;
    }
    while (more && !reader->problem) {
        json_t *value = read_value(reader);

        if (value && json_array_append_new(array, value)) {
            fail(reader, "out of memory");
        }
        skip_space(reader);
        more = take(reader, ',');
        if (!more && !take(reader, ']')) {
            fail(reader, "an array without ',' or ']'");
        }
    }
    if (reader->problem) {
        json_decref(array);
        array = NULL;
    }
    return array;
}

static json_t *read_container(reader_t *reader, int is_object)
{
    json_t *value = NULL;

    if (++reader->depth > OKEY_JSON_MAX_DEPTH) {
        fail(reader, "nesting too deep");
    }
    else {
        value = is_object ? read_object(reader) : read_array(reader);
    }
    reader->depth--;
    return value;
}

static json_t *read_value(reader_t *reader)
{
    json_t *value = NULL;
    int c;

    skip_space(reader);
    c = reader->at < reader->end ? *reader->at : -1;
    if (c == '{' || c == '[') {
        reader->at++;
        value = read_container(reader, c == '{');
    }
    else if (c == '"') {
        apr_size_t len = 0;
        const char *text;

        reader->at++;
        text = read_string(reader, &len);
        value = text ? json_stringn_nocheck(text, len) : NULL;
    }
    else if (c == '-' || (c >= '0' && c <= '9')) {
        value = read_number(reader);
    }
    else if (c == 't') {
        value = read_word(reader, "true", json_true());
    }
    else if (c == 'f') {
        value = read_word(reader, "false", json_false());
    }
    else if (c == 'n') {
        value = read_word(reader, "null", json_null());
    }
    else {
        fail(reader, c < 0 ? "the end of the text where a value belongs"
                           : "an unexpected character");
    }
    if (!value) {
        fail(reader, "out of memory");
    }
    return value;
}

json_t *okey_json_parse(apr_pool_t *pool, const char *text, apr_size_t len,
                        const char **error)
{
    reader_t reader;
    json_t *json = NULL;

    memset(&reader, 0, sizeof(reader));
    reader.start = reader.at = (const unsigned char *)(text ? text : "");
    reader.end = reader.at + (text ? len : 0);
    reader.pool = pool;
    skip_space(&reader);
    if (reader.at < reader.end && (*reader.at == '{' || *reader.at == '[')) {
        json = read_value(&reader);
    }
    else {
        fail(&reader, "no object or array");
    }
    skip_space(&reader);
    if (!reader.problem && reader.at != reader.end) {
        fail(&reader, "text after the value");
    }
    if (reader.problem) {
        json_decref(json);
        json = NULL;
        if (error) {
            *error = apr_psprintf(pool, "%s at byte %" APR_SIZE_T_FMT, reader.problem,
                                  (apr_size_t)(reader.at - reader.start));
        }
    }
    return okey_json_own(pool, json);
}

const char *okey_json_quote(apr_pool_t *pool, const char *text)
{
    static const char HEX[] = "0123456789abcdef";
    const unsigned char *at = (const unsigned char *)text;
    const unsigned char *end = at + strlen(text);
    char *quoted = apr_palloc(pool, 6 * (apr_size_t)(end - at) + 3);
    char *out = quoted;
    int ok = 1;

    *out++ = '"';
    while (at < end && ok) {
        int n = *at < 0x80 ? 1 : utf8_length(at, end);

        ok = n > 0;
        if (*at == '"' || *at == '\\') {
            *out++ = '\\';
            *out++ = (char)*at;
        }
        else if (*at < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = HEX[*at >> 4];
            out[5] = HEX[*at & 15];
            out += 6;
        }
        else if (ok) {
            memcpy(out, at, (apr_size_t)n);
            out += n;
        }
        at += ok ? n : 0;
    }
    *out++ = '"';
    *out = '\0';
    return ok ? quoted : NULL;
}
