/* fqt/json.h — a small JSON reader (DOM) and a string builder for writing JSON.
 *
 * For: config.json, safetensors headers, run configurations and the JSONL metrics files.
 * Not for: large documents (everything is parsed into memory) or streaming. Numbers are
 * kept as double and as their source text (so int64 values round-trip exactly). */
#ifndef FQT_JSON_H
#define FQT_JSON_H

#include "fqt/common.h"
#include <stdbool.h>

typedef enum {
    FQT_JSON_NULL, FQT_JSON_BOOL, FQT_JSON_NUM, FQT_JSON_STR, FQT_JSON_ARR, FQT_JSON_OBJ,
    FQT_JSON_COUNT
} fqt_json_type;

typedef struct fqt_json {
    fqt_json_type type;
    bool b;
    double num;
    char *str;                 /* STR: decoded UTF-8 (NUL-terminated); NUM: source text */
    int64_t n;                 /* ARR/OBJ: element count */
    struct fqt_json *items;    /* ARR/OBJ: elements */
    char **keys;               /* OBJ: keys, parallel to items */
} fqt_json;

/* Parse text[0..n). On error returns FQT_ERR_FORMAT with a message giving the byte offset;
 * *out is NULL. Nesting deeper than 64 levels is an error. */
fqt_status fqt_json_parse(const char *text, size_t n, fqt_json **out);
/* The same with at most max_values values (scalars, arrays and objects each count one), so
 * that the memory a parse takes is bounded by max_values, not by the input length (a node
 * costs ~60 bytes; "[0,0,0,..." of 99 MB would otherwise take gigabytes). \u0000 in a string
 * is an error (strings are NUL-terminated). */
fqt_status fqt_json_parse_limited(const char *text, size_t n, int64_t max_values, fqt_json **out);
void fqt_json_free(fqt_json *j);

/* Object member by key (first match), NULL if absent or j is not an object. */
const fqt_json *fqt_json_get(const fqt_json *j, const char *key);
/* Typed look-ups with a default when absent or of another type. */
double fqt_json_get_num(const fqt_json *j, const char *key, double dflt);
const char *fqt_json_get_str(const fqt_json *j, const char *key, const char *dflt);
/* Exact int64 of a NUM node (from its text); false if not an integer in range. */
bool fqt_json_int64(const fqt_json *j, int64_t *out);

/* Growable string for writing JSON (and other text). Never fails: aborts on OOM. */
typedef struct { char *s; size_t len, cap; } fqt_buf;
void fqt_buf_printf(fqt_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void fqt_buf_append(fqt_buf *b, const char *s, size_t n);
/* Append s as a JSON string literal (quoted, escaped). */
void fqt_buf_json_str(fqt_buf *b, const char *s);
/* Append a double as JSON: shortest round-trip text (%.17g trimmed); NaN/Inf as null. */
void fqt_buf_json_num(fqt_buf *b, double v);
void fqt_buf_free(fqt_buf *b);

#endif
