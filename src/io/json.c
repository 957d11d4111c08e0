/* io/json.c — recursive-descent JSON parser into a small DOM, and the JSON writers.
 *
 * Strict RFC 8259 except that it accepts any bytes >= 0x20 inside strings (no UTF-8
 * validation). Not for: huge inputs; the whole document lives in memory. */
#include "fqt/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
    const char *p, *end, *start;
    int depth;
    int64_t values_left; /* budget of values (each costs a node): bounds the memory of a parse */
} parser;

static fqt_status fail(parser *ps, const char *what) {
    fqt_set_error("JSON: %s at byte %td", what, ps->p - ps->start);
    return FQT_ERR_FORMAT;
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void put_utf8(fqt_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63)); n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4;
    }
    fqt_buf_append(b, u, n);
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static fqt_status parse_string(parser *ps, char **out) {
    fqt_buf b = {0};
    ps->p++; /* opening quote */
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) { fqt_buf_free(&b); return fail(ps, "control character in string"); }
        if (c != '\\') { fqt_buf_append(&b, ps->p++, 1); continue; }
        if (ps->end - ps->p < 2) break;
        char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': fqt_buf_append(&b, "\"", 1); break;
        case '\\': fqt_buf_append(&b, "\\", 1); break;
        case '/': fqt_buf_append(&b, "/", 1); break;
        case 'b': fqt_buf_append(&b, "\b", 1); break;
        case 'f': fqt_buf_append(&b, "\f", 1); break;
        case 'n': fqt_buf_append(&b, "\n", 1); break;
        case 'r': fqt_buf_append(&b, "\r", 1); break;
        case 't': fqt_buf_append(&b, "\t", 1); break;
        case 'u': {
            uint32_t cp, lo;
            if (ps->end - ps->p < 4 || hex4(ps->p, &cp)) { fqt_buf_free(&b); return fail(ps, "bad \\u escape"); }
            /* Strings are NUL-terminated: an embedded NUL would silently cut them short. */
            if (cp == 0) { fqt_buf_free(&b); return fail(ps, "\\u0000 in a string (not supported)"); }
            ps->p += 4;
            /* A high surrogate followed by a low one is one code point. */
            if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
                ps->p[1] == 'u' && !hex4(ps->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                ps->p += 6;
            }
            put_utf8(&b, cp);
            break;
        }
        default: fqt_buf_free(&b); return fail(ps, "bad escape");
        }
    }
    if (ps->p >= ps->end) { fqt_buf_free(&b); return fail(ps, "unterminated string"); }
    ps->p++; /* closing quote */
    fqt_buf_append(&b, "", 0);
    *out = b.s ? b.s : fqt_xcalloc(1, 1);
    return FQT_OK;
}

static fqt_status parse_value(parser *ps, fqt_json *v);

static fqt_status parse_container(parser *ps, fqt_json *v, int is_obj) {
    size_t cap = 0;
    char close = is_obj ? '}' : ']';
    v->type = is_obj ? FQT_JSON_OBJ : FQT_JSON_ARR;
    if (++ps->depth > 64) return fail(ps, "nesting too deep");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return FQT_OK; }
    for (;;) {
        if ((size_t)v->n == cap) {
            cap = cap ? 2 * cap : 8;
            fqt_json *items = realloc(v->items, cap * sizeof *items);
            char **keys = is_obj ? realloc(v->keys, cap * sizeof *keys) : NULL;
            if (!items || (is_obj && !keys)) {
                if (items) v->items = items;
                if (keys) v->keys = keys;
                return FQT_ERR_NOMEM;
            }
            v->items = items;
            if (is_obj) v->keys = keys;
        }
        fqt_json *it = &v->items[v->n];
        memset(it, 0, sizeof *it);
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected object key");
            fqt_status st = parse_string(ps, &v->keys[v->n]);
            if (st) return st;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') { v->n++; return fail(ps, "expected ':'"); }
            ps->p++;
        }
        v->n++;
        fqt_status st = parse_value(ps, it);
        if (st) return st;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
        return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->depth--;
    return FQT_OK;
}

static fqt_status parse_number(parser *ps, fqt_json *v) {
    const char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad number");
    while (ps->p < ps->end && ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' || *ps->p == 'e' ||
                               *ps->p == 'E' || *ps->p == '+' || *ps->p == '-'))
        ps->p++;
    size_t len = (size_t)(ps->p - s);
    v->type = FQT_JSON_NUM;
    v->str = fqt_xmalloc(len + 1);
    memcpy(v->str, s, len);
    v->str[len] = 0;
    char *end;
    v->num = strtod(v->str, &end);
    if (*end) return fail(ps, "bad number");
    return FQT_OK;
}

static int match(parser *ps, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n)) return 0;
    ps->p += n;
    return 1;
}

static fqt_status parse_value(parser *ps, fqt_json *v) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    if (--ps->values_left < 0) return fail(ps, "too many values");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"': v->type = FQT_JSON_STR; return parse_string(ps, &v->str);
    case 't': if (match(ps, "true")) { v->type = FQT_JSON_BOOL; v->b = true; return FQT_OK; } break;
    case 'f': if (match(ps, "false")) { v->type = FQT_JSON_BOOL; return FQT_OK; } break;
    case 'n': if (match(ps, "null")) { v->type = FQT_JSON_NULL; return FQT_OK; } break;
    default: return parse_number(ps, v);
    }
    return fail(ps, "unexpected token");
}

static void free_node(fqt_json *j) {
    for (int64_t i = 0; i < j->n; i++) {
        free_node(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->str);
}

void fqt_json_free(fqt_json *j) {
    if (!j) return;
    free_node(j);
    free(j);
}

fqt_status fqt_json_parse(const char *text, size_t n, fqt_json **out) {
    return fqt_json_parse_limited(text, n, INT64_MAX, out);
}

fqt_status fqt_json_parse_limited(const char *text, size_t n, int64_t max_values, fqt_json **out) {
    parser ps = {text, text + n, text, 0, max_values};
    fqt_json *v = fqt_xcalloc(1, sizeof *v);
    *out = NULL;
    fqt_status st = parse_value(&ps, v);
    if (!st) {
        skip_ws(&ps);
        if (ps.p != ps.end) st = fail(&ps, "trailing characters");
    }
    if (st) {
        if (st == FQT_ERR_NOMEM) fqt_set_error("JSON: out of memory");
        fqt_json_free(v);
        return st;
    }
    *out = v;
    return FQT_OK;
}

const fqt_json *fqt_json_get(const fqt_json *j, const char *key) {
    if (!j || j->type != FQT_JSON_OBJ) return NULL;
    for (int64_t i = 0; i < j->n; i++)
        if (!strcmp(j->keys[i], key)) return &j->items[i];
    return NULL;
}

double fqt_json_get_num(const fqt_json *j, const char *key, double dflt) {
    const fqt_json *v = fqt_json_get(j, key);
    return v && v->type == FQT_JSON_NUM ? v->num : dflt;
}

const char *fqt_json_get_str(const fqt_json *j, const char *key, const char *dflt) {
    const fqt_json *v = fqt_json_get(j, key);
    return v && v->type == FQT_JSON_STR ? v->str : dflt;
}

bool fqt_json_int64(const fqt_json *j, int64_t *out) {
    if (!j || j->type != FQT_JSON_NUM) return false;
    char *end;
    errno = 0;
    long long v = strtoll(j->str, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

void fqt_buf_append(fqt_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { fprintf(stderr, "fqt: out of memory\n"); abort(); }
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void fqt_buf_printf(fqt_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    FQT_ASSERT(n >= 0);
    fqt_buf_append(b, "", 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { fprintf(stderr, "fqt: out of memory\n"); abort(); }
        b->s = p;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void fqt_buf_json_str(fqt_buf *b, const char *s) {
    fqt_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fqt_buf_append(b, "\\\"", 2); break;
        case '\\': fqt_buf_append(b, "\\\\", 2); break;
        case '\n': fqt_buf_append(b, "\\n", 2); break;
        case '\r': fqt_buf_append(b, "\\r", 2); break;
        case '\t': fqt_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20) fqt_buf_printf(b, "\\u%04x", *p);
            else fqt_buf_append(b, (const char *)p, 1);
        }
    }
    fqt_buf_append(b, "\"", 1);
}

void fqt_buf_json_num(fqt_buf *b, double v) {
    if (!isfinite(v)) { fqt_buf_append(b, "null", 4); return; }
    /* Shortest of %.{6..17}g that reads back exactly. */
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    fqt_buf_append(b, tmp, strlen(tmp));
}

void fqt_buf_free(fqt_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}
