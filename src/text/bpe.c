/* text/bpe.c — byte-level BPE: GPT-2-style pre-split, training, encode/decode, the fqt-bpe
 * vocabulary file, and loading GPT-2's r50k_base.tiktoken.
 *
 * Not for: shards or corpus handling (io/shard.c, text/sotu.c).
 *
 * Pre-split classification (fqt/bpe.h has the pattern). ASCII is classified here: letters
 * A-Z a-z, numbers 0-9, whitespace per below, everything else "other". Non-ASCII code points
 * use glibc's C.UTF-8 locale through newlocale/iswalpha_l, so the process locale is never
 * touched. Where this deviates from \p{L} / \p{N} / \s (measured over all code points with
 * glibc 2.36 against Unicode 14 categories):
 *  - \s is exactly Unicode White_Space (9-13, 0x20, 0x85, 0xA0, 0x1680, 0x2000-0x200A, 0x2028,
 *    0x2029, 0x202F, 0x205F, 0x3000), hard-coded: no deviation.
 *  - letters = iswalpha && !iswctype("combining"). glibc's alpha covers every \p{L} code
 *    point; removing the "combining" class drops the 1274 alphabetic marks (Mn/Mc). What
 *    remains extra: 650 non-ASCII decimal digits (Nd, e.g. U+0660..0669), 236 letter numbers
 *    (Nl, e.g. Roman numerals U+2160..), and 130 circled letters (So, U+24B6..24E9) count as
 *    letters (GPT-2: the digits and Nl are numbers, the So are "other").
 *  - numbers = ASCII 0-9 only (glibc's iswdigit is ASCII-only). The 895 No code points
 *    (superscripts ²³¹, fractions ½, circled numbers ①, ...) count as "other" (GPT-2: numbers).
 *  So texts differ from tiktoken only where such characters touch letters or digits.
 *  Invalid UTF-8 (overlong, surrogates, > U+10FFFF, stray continuation bytes, truncated
 *  sequences) is classified byte by byte as "other". Without the C.UTF-8 locale, text with
 *  non-ASCII code points cannot be split (FQT_ERR_UNSUPPORTED); ASCII text always can.
 *
 * fqt-bpe vocabulary file (text, ASCII, '\n' line ends):
 *     fqt-bpe 1
 *     vocab_size <V>
 *     merges <M>
 *     specials <S>
 *     <left> <right>            M lines; line i defines id 256+i; both ids < 256+i
 *     special <id> <text>       S lines; id = 256+M+k; text is printable ASCII, no spaces
 *     sha512 <128 hex digits>   SHA-512 of every byte before this line
 * V must equal 256+M+S. A reader checks the magic, version, every count and id, and the
 * digest; nothing may follow the digest line. */
#define _GNU_SOURCE
#include "fqt/bpe.h"
#include "fqt/fileio.h"
#include "fqt/sha512.h"

#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

enum { CL_OTHER = 0, CL_LETTER = 1, CL_NUMBER = 2, CL_SPACE = 3 };
enum { KIND_TRAINED = 0, KIND_GPT2 = 1 };
#define MAX_SPECIALS 4
#define LONG_PIECE 48 /* pieces longer than this use the heap merge */

struct fqt_bpe {
    int kind;
    int32_t vocab_size;
    int32_t n_merges;
    int32_t byte_id[256];   /* initial token of each byte value */
    int64_t *tok_off;       /* (V+1) offsets of each token's bytes in blob */
    unsigned char *blob;
    int32_t *merges;        /* (2*M) trained kind only: left, right of merge i */
    /* pair map: open addressing, key = left << 32 | right, value = merged id */
    uint64_t *pair_key;
    int32_t *pair_val;
    uint64_t pair_mask;
    int32_t n_specials;
    int32_t special_id[MAX_SPECIALS];
    int32_t eot;
};

/* ---------- helpers ---------- */

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fqt: out of memory reallocating %zu bytes\n", n);
        abort();
    }
    return q;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return mix64(h);
}

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

#define EMPTY_KEY UINT64_MAX

/* Merged id of (a, b), or -1. */
static inline int32_t pair_lookup(const fqt_bpe *b, int32_t l, int32_t r) {
    uint64_t k = pair_key(l, r);
    for (uint64_t i = mix64(k) & b->pair_mask;; i = (i + 1) & b->pair_mask) {
        if (b->pair_key[i] == k) return b->pair_val[i];
        if (b->pair_key[i] == EMPTY_KEY) return -1;
    }
}

static void pair_map_init(fqt_bpe *b, int64_t n_entries) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n_entries * 2 + 16) cap <<= 1;
    b->pair_key = fqt_xmalloc(cap * sizeof *b->pair_key);
    b->pair_val = fqt_xmalloc(cap * sizeof *b->pair_val);
    for (uint64_t i = 0; i < cap; i++) b->pair_key[i] = EMPTY_KEY;
    b->pair_mask = cap - 1;
}

/* Insert unless present; returns the existing value or -1 when inserted. */
static int32_t pair_insert(fqt_bpe *b, int32_t l, int32_t r, int32_t v) {
    uint64_t k = pair_key(l, r);
    for (uint64_t i = mix64(k) & b->pair_mask;; i = (i + 1) & b->pair_mask) {
        if (b->pair_key[i] == k) return b->pair_val[i];
        if (b->pair_key[i] == EMPTY_KEY) {
            b->pair_key[i] = k;
            b->pair_val[i] = v;
            return -1;
        }
    }
}

/* A set of byte strings (pointers into caller memory) -> int32 value; open addressing. */
typedef struct {
    const unsigned char **ptr;
    size_t *len;
    int32_t *val;
    uint64_t *hash;
    uint64_t mask;
    int64_t count;
} bytes_map;

static void bytes_map_init(bytes_map *m, int64_t expected) {
    uint64_t cap = 64;
    while (cap < (uint64_t)expected * 2) cap <<= 1;
    m->ptr = fqt_xcalloc(cap, sizeof *m->ptr);
    m->len = fqt_xmalloc(cap * sizeof *m->len);
    m->val = fqt_xmalloc(cap * sizeof *m->val);
    m->hash = fqt_xmalloc(cap * sizeof *m->hash);
    m->mask = cap - 1;
    m->count = 0;
}

static void bytes_map_free(bytes_map *m) {
    free(m->ptr);
    free(m->len);
    free(m->val);
    free(m->hash);
    memset(m, 0, sizeof *m);
}

/* Slot for s: either holding s, or the empty slot where s belongs (ptr NULL). */
static uint64_t bytes_map_slot(const bytes_map *m, const unsigned char *s, size_t n, uint64_t h) {
    for (uint64_t i = h & m->mask;; i = (i + 1) & m->mask) {
        if (!m->ptr[i]) return i;
        if (m->hash[i] == h && m->len[i] == n && !memcmp(m->ptr[i], s, n)) return i;
    }
}

static void bytes_map_grow(bytes_map *m) {
    bytes_map old = *m;
    bytes_map_init(m, (int64_t)(old.mask + 1));
    for (uint64_t i = 0; i <= old.mask; i++) {
        if (!old.ptr[i]) continue;
        uint64_t j = bytes_map_slot(m, old.ptr[i], old.len[i], old.hash[i]);
        m->ptr[j] = old.ptr[i];
        m->len[j] = old.len[i];
        m->val[j] = old.val[i];
        m->hash[j] = old.hash[i];
    }
    m->count = old.count;
    bytes_map_free(&old);
}

/* Find s; if absent, insert it with value v. Returns the slot; *found tells which. */
static uint64_t bytes_map_put(bytes_map *m, const unsigned char *s, size_t n, int32_t v,
                              int *found) {
    if ((uint64_t)(m->count + 1) * 2 > m->mask + 1) bytes_map_grow(m);
    uint64_t h = hash_bytes(s, n);
    uint64_t i = bytes_map_slot(m, s, n, h);
    *found = m->ptr[i] != NULL;
    if (!*found) {
        m->ptr[i] = s;
        m->len[i] = n;
        m->val[i] = v;
        m->hash[i] = h;
        m->count++;
    }
    return i;
}

/* ---------- classification and pre-split ---------- */

static locale_t g_utf8;
static wctype_t g_combining;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_locale(void) {
    g_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!g_utf8) g_utf8 = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
    if (g_utf8) g_combining = wctype_l("combining", g_utf8);
}

/* Decode one UTF-8 code point at s[0..n): returns it and its length, or -1 with length 1
 * for anything that is not a shortest-form scalar value. */
static int32_t utf8_decode(const unsigned char *s, size_t n, int *len) {
    unsigned c = s[0];
    *len = 1;
    if (c < 0x80) return (int32_t)c;
    int need;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
    else return -1;
    if ((size_t)need >= n) return -1;
    for (int k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *len = need + 1;
    return (int32_t)cp;
}

static int is_white_space(int32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Class of the character at s (n bytes left) and its byte length. Requires g_utf8 when the
 * character is non-ASCII (checked by the caller through text_needs_locale). */
static int char_class(const unsigned char *s, size_t n, int *len) {
    unsigned c = s[0];
    *len = 1;
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return CL_LETTER;
        if (c >= '0' && c <= '9') return CL_NUMBER;
        if (c == ' ' || (c >= 9 && c <= 13)) return CL_SPACE;
        return CL_OTHER;
    }
    int32_t cp = utf8_decode(s, n, len);
    if (cp < 0) return CL_OTHER;
    if (is_white_space(cp)) return CL_SPACE;
    if (iswalpha_l((wint_t)cp, g_utf8) &&
        !(g_combining && iswctype_l((wint_t)cp, g_combining, g_utf8)))
        return CL_LETTER;
    if (iswdigit_l((wint_t)cp, g_utf8)) return CL_NUMBER;
    return CL_OTHER;
}

static fqt_status require_locale(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] < 0x80) i++;
    if (i == n) return FQT_OK;
    pthread_once(&g_once, init_locale);
    if (g_utf8) return FQT_OK;
    fqt_set_error("text has non-ASCII characters but the C.UTF-8 locale (needed to classify "
                  "them as letters/numbers) is unavailable; install glibc's C.UTF-8 locale");
    return FQT_ERR_UNSUPPORTED;
}

/* End of the piece that starts at s[i] (i < n); see the pattern in fqt/bpe.h. */
static size_t next_piece(const unsigned char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l'))
                return i + 3;
        }
    }
    int len;
    size_t j = i;
    int cls = char_class(s + i, n - i, &len);
    if (s[i] == ' ' && i + 1 < n) {
        j = i + 1;
        cls = char_class(s + j, n - j, &len);
    }
    if (cls != CL_SPACE) { /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` */
        size_t k = j + (size_t)len;
        while (k < n) {
            int l2;
            if (char_class(s + k, n - k, &l2) != cls) break;
            k += (size_t)l2;
        }
        return k;
    }
    /* Whitespace run from i: `\s+(?!\S)` backs off one character when a non-space follows
     * (that character then starts the next piece, e.g. " world"); a single whitespace
     * character before a non-space falls to `\s+` and stands alone. */
    size_t k = i, last = i;
    while (k < n) {
        int l2;
        if (char_class(s + k, n - k, &l2) != CL_SPACE) break;
        last = k;
        k += (size_t)l2;
    }
    if (k == n || last == i) return k;
    return last;
}

fqt_status fqt_bpe_split(const void *text, size_t n, int64_t **ends, int64_t *npieces) {
    const unsigned char *s = text;
    *ends = NULL;
    *npieces = 0;
    fqt_status st = require_locale(s, n);
    if (st != FQT_OK) return st;
    int64_t cap = 16, cnt = 0;
    int64_t *e = fqt_xmalloc((size_t)cap * sizeof *e);
    for (size_t i = 0; i < n;) {
        size_t k = next_piece(s, n, i);
        if (cnt == cap) e = xrealloc(e, (size_t)(cap *= 2) * sizeof *e);
        e[cnt++] = (int64_t)k;
        i = k;
    }
    *ends = e;
    *npieces = cnt;
    return FQT_OK;
}

/* ---------- construction shared by both kinds ---------- */

static fqt_bpe *bpe_new(int kind) {
    fqt_bpe *b = fqt_xcalloc(1, sizeof *b);
    b->kind = kind;
    b->eot = -1;
    return b;
}

void fqt_bpe_free(fqt_bpe *b) {
    if (!b) return;
    free(b->tok_off);
    free(b->blob);
    free(b->merges);
    free(b->pair_key);
    free(b->pair_val);
    free(b);
}

/* Fill the token table, pair map and specials of a trained-kind tokenizer from b->merges
 * (ids already validated: each < 256+i). Rejects, with FQT_ERR_FORMAT and a message
 * without a file name, a merge that repeats an earlier pair and tokens longer than
 * FQT_BPE_MAX_TOKEN_BYTES (merging a token with itself doubles its length: a few dozen
 * such merges would ask for more memory than exists). */
#define FQT_BPE_MAX_TOKEN_BYTES 65536
static fqt_status build_trained(fqt_bpe *b) {
    int32_t M = b->n_merges;
    b->n_specials = 1;
    b->vocab_size = 256 + M + 1;
    b->eot = b->special_id[0] = 256 + M;
    for (int i = 0; i < 256; i++) b->byte_id[i] = i;
    int64_t *len = fqt_xmalloc((size_t)b->vocab_size * sizeof *len);
    for (int i = 0; i < 256; i++) len[i] = 1;
    for (int32_t i = 0; i < M; i++) {
        len[256 + i] = len[b->merges[2 * i]] + len[b->merges[2 * i + 1]];
        if (len[256 + i] > FQT_BPE_MAX_TOKEN_BYTES) {
            fqt_set_error("merge %d makes a token of %lld bytes (more than %d: not a real "
                          "vocabulary)", i, (long long)len[256 + i], FQT_BPE_MAX_TOKEN_BYTES);
            free(len);
            return FQT_ERR_FORMAT;
        }
    }
    len[b->eot] = (int64_t)strlen(FQT_BPE_EOT_TEXT);
    pair_map_init(b, M);
    for (int32_t i = 0; i < M; i++)
        if (pair_insert(b, b->merges[2 * i], b->merges[2 * i + 1], 256 + i) >= 0) {
            fqt_set_error("merge %d repeats the pair (%d, %d) of an earlier merge", i,
                          b->merges[2 * i], b->merges[2 * i + 1]);
            free(len);
            return FQT_ERR_FORMAT;
        }
    b->tok_off = fqt_xmalloc(((size_t)b->vocab_size + 1) * sizeof *b->tok_off);
    b->tok_off[0] = 0;
    for (int32_t i = 0; i < b->vocab_size; i++) b->tok_off[i + 1] = b->tok_off[i] + len[i];
    b->blob = fqt_xmalloc((size_t)b->tok_off[b->vocab_size]);
    for (int i = 0; i < 256; i++) b->blob[i] = (unsigned char)i;
    for (int32_t i = 0; i < M; i++) {
        int32_t l = b->merges[2 * i], r = b->merges[2 * i + 1];
        unsigned char *dst = b->blob + b->tok_off[256 + i];
        memcpy(dst, b->blob + b->tok_off[l], (size_t)len[l]);
        memcpy(dst + len[l], b->blob + b->tok_off[r], (size_t)len[r]);
    }
    memcpy(b->blob + b->tok_off[b->eot], FQT_BPE_EOT_TEXT, (size_t)len[b->eot]);
    free(len);
    return FQT_OK;
}

fqt_status fqt_bpe_from_merges(const int32_t *merges, int32_t n_merges, fqt_bpe **out) {
    *out = NULL;
    if (n_merges < 0 || n_merges > INT32_MAX - 512 || (n_merges && !merges)) {
        fqt_set_error("fqt_bpe_from_merges: bad merge count %d", n_merges);
        return FQT_ERR_ARG;
    }
    for (int32_t i = 0; i < n_merges; i++)
        for (int k = 0; k < 2; k++)
            if (merges[2 * i + k] < 0 || merges[2 * i + k] >= 256 + i) {
                fqt_set_error("fqt_bpe_from_merges: merge %d uses id %d, not yet defined", i,
                              merges[2 * i + k]);
                return FQT_ERR_ARG;
            }
    fqt_bpe *b = bpe_new(KIND_TRAINED);
    b->n_merges = n_merges;
    b->merges = fqt_xmalloc((size_t)(2 * (int64_t)n_merges) * sizeof *b->merges);
    if (n_merges) memcpy(b->merges, merges, (size_t)(2 * (int64_t)n_merges) * sizeof *merges);
    fqt_status st = build_trained(b);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("fqt_bpe_from_merges: %s", msg);
        fqt_bpe_free(b);
        return st;
    }
    *out = b;
    return FQT_OK;
}

/* ---------- training ---------- */

typedef struct {
    int32_t a, b;
    int64_t count;
    int64_t pushed; /* count of the newest heap entry for this pair */
    int32_t *words; /* words that held this pair at some point (may be stale/duplicated) */
    int32_t nwords, capwords;
    int dirty;
} train_pair;

typedef struct {
    int64_t count;
    int32_t a, b;
} heap_entry;

typedef struct {
    /* words: unique pieces */
    int32_t nwords, capwords;
    int64_t *wcount;
    int64_t *wstart; /* offsets into sym */
    int32_t *wlen;
    int32_t *sym;
    int64_t nsym, capsym;
    int32_t *stamp;
    /* pairs */
    train_pair *pairs;
    int32_t npairs, cappairs;
    uint64_t *pkey;
    int32_t *pidx;
    uint64_t pmask;
    int32_t *dirty;
    int32_t ndirty, capdirty;
    heap_entry *heap;
    int64_t nheap, capheap;
} trainer;

/* Heap order: larger count first; ties: smaller (a, b) first. */
static int heap_before(const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(trainer *t, int64_t count, int32_t a, int32_t b) {
    if (t->nheap == t->capheap) {
        t->capheap = t->capheap ? t->capheap * 2 : 1024;
        t->heap = xrealloc(t->heap, (size_t)t->capheap * sizeof *t->heap);
    }
    int64_t i = t->nheap++;
    heap_entry e = {count, a, b};
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!heap_before(&e, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
}

static heap_entry heap_pop(trainer *t) {
    heap_entry top = t->heap[0], e = t->heap[--t->nheap];
    int64_t i = 0, n = t->nheap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_before(&t->heap[c], &e)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = e;
    return top;
}

static void pairs_rehash(trainer *t, uint64_t cap) {
    free(t->pkey);
    free(t->pidx);
    t->pkey = fqt_xmalloc(cap * sizeof *t->pkey);
    t->pidx = fqt_xmalloc(cap * sizeof *t->pidx);
    for (uint64_t i = 0; i < cap; i++) t->pkey[i] = EMPTY_KEY;
    t->pmask = cap - 1;
    for (int32_t p = 0; p < t->npairs; p++) {
        uint64_t k = pair_key(t->pairs[p].a, t->pairs[p].b);
        uint64_t i = mix64(k) & t->pmask;
        while (t->pkey[i] != EMPTY_KEY) i = (i + 1) & t->pmask;
        t->pkey[i] = k;
        t->pidx[i] = p;
    }
}

/* Index of pair (a, b), created with count 0 if absent. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    uint64_t i = mix64(k) & t->pmask;
    for (; t->pkey[i] != EMPTY_KEY; i = (i + 1) & t->pmask)
        if (t->pkey[i] == k) return t->pidx[i];
    if ((uint64_t)(t->npairs + 1) * 2 > t->pmask + 1) {
        pairs_rehash(t, (t->pmask + 1) * 2);
        return pair_get(t, a, b);
    }
    if (t->npairs == t->cappairs) {
        t->cappairs *= 2;
        t->pairs = xrealloc(t->pairs, (size_t)t->cappairs * sizeof *t->pairs);
    }
    int32_t p = t->npairs++;
    memset(&t->pairs[p], 0, sizeof t->pairs[p]);
    t->pairs[p].a = a;
    t->pairs[p].b = b;
    t->pkey[i] = k;
    t->pidx[i] = p;
    return p;
}

/* Add delta occurrences of (a, b) seen in word w; track the word and mark the pair dirty. */
static void pair_add(trainer *t, int32_t a, int32_t b, int64_t delta, int32_t w) {
    int32_t p = pair_get(t, a, b);
    train_pair *tp = &t->pairs[p];
    tp->count += delta;
    if (delta > 0 && (tp->nwords == 0 || tp->words[tp->nwords - 1] != w)) {
        if (tp->nwords == tp->capwords) {
            tp->capwords = tp->capwords ? tp->capwords * 2 : 4;
            tp->words = xrealloc(tp->words, (size_t)tp->capwords * sizeof *tp->words);
        }
        tp->words[tp->nwords++] = w;
    }
    if (!tp->dirty) {
        tp->dirty = 1;
        if (t->ndirty == t->capdirty) {
            t->capdirty = t->capdirty ? t->capdirty * 2 : 1024;
            t->dirty = xrealloc(t->dirty, (size_t)t->capdirty * sizeof *t->dirty);
        }
        t->dirty[t->ndirty++] = p;
    }
}

static void trainer_free(trainer *t) {
    free(t->wcount);
    free(t->wstart);
    free(t->wlen);
    free(t->sym);
    free(t->stamp);
    for (int32_t p = 0; p < t->npairs; p++) free(t->pairs[p].words);
    free(t->pairs);
    free(t->pkey);
    free(t->pidx);
    free(t->dirty);
    free(t->heap);
}

/* Count the unique pieces of one special-free segment into the word table. */
static fqt_status count_pieces(trainer *t, bytes_map *m, const unsigned char *s, size_t n) {
    fqt_status st = require_locale(s, n);
    if (st != FQT_OK) return st;
    for (size_t i = 0; i < n;) {
        size_t k = next_piece(s, n, i);
        if (k - i > INT32_MAX) {
            fqt_set_error("training text has a piece of %zu bytes (limit %d)", k - i, INT32_MAX);
            return FQT_ERR_ARG;
        }
        int found;
        uint64_t slot = bytes_map_put(m, s + i, k - i, t->nwords, &found);
        if (found) {
            t->wcount[m->val[slot]]++;
        } else {
            if (t->nwords == t->capwords) {
                t->capwords *= 2;
                t->wcount = xrealloc(t->wcount, (size_t)t->capwords * sizeof *t->wcount);
                t->wstart = xrealloc(t->wstart, (size_t)t->capwords * sizeof *t->wstart);
                t->wlen = xrealloc(t->wlen, (size_t)t->capwords * sizeof *t->wlen);
            }
            if (t->nsym + (int64_t)(k - i) > t->capsym) {
                while (t->nsym + (int64_t)(k - i) > t->capsym) t->capsym *= 2;
                t->sym = xrealloc(t->sym, (size_t)t->capsym * sizeof *t->sym);
            }
            int32_t w = t->nwords++;
            t->wcount[w] = 1;
            t->wstart[w] = t->nsym;
            t->wlen[w] = (int32_t)(k - i);
            for (size_t q = i; q < k; q++) t->sym[t->nsym++] = s[q];
        }
        i = k;
    }
    return FQT_OK;
}

/* Replace every non-overlapping (a, b) in word w, left to right, by c, and move the pair
 * counts of the neighbours: for each hit, (prev, a) -> (prev, c) and (b, next) -> (c, next),
 * where prev is taken from the already-rewritten prefix so chains like "abab" come out as
 * (c, c). Oracle: recounting all pairs of the word before and after. */
static void merge_word(trainer *t, int32_t w, int32_t a, int32_t b, int32_t c) {
    int32_t *s = t->sym + t->wstart[w];
    int32_t n = t->wlen[w], o = 0;
    int64_t wc = t->wcount[w];
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (o > 0) {
                pair_add(t, s[o - 1], a, -wc, w);
                pair_add(t, s[o - 1], c, wc, w);
            }
            pair_add(t, a, b, -wc, w);
            if (i + 2 < n) {
                pair_add(t, b, s[i + 2], -wc, w);
                pair_add(t, c, s[i + 2], wc, w);
            }
            s[o++] = c;
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    t->wlen[w] = o;
}

/* Find the occurrences of special-token text and count the pieces of what lies between. */
static fqt_status count_all_pieces(trainer *t, const unsigned char *s, size_t n) {
    bytes_map m;
    bytes_map_init(&m, 1024);
    const char *eot = FQT_BPE_EOT_TEXT;
    size_t eotn = strlen(eot);
    fqt_status st = FQT_OK;
    size_t i = 0;
    while (i <= n && st == FQT_OK) {
        const unsigned char *hit = n - i >= eotn ? memmem(s + i, n - i, eot, eotn) : NULL;
        size_t end = hit ? (size_t)(hit - s) : n;
        st = count_pieces(t, &m, s + i, end - i);
        if (!hit) break;
        i = end + eotn;
    }
    bytes_map_free(&m);
    return st;
}

fqt_status fqt_bpe_train(const void *text, size_t n, int32_t vocab_size, fqt_bpe **out) {
    *out = NULL;
    if (vocab_size < 257) {
        fqt_set_error("BPE vocabulary size %d is too small: need at least 257 (256 bytes + "
                      "<|endoftext|>)", vocab_size);
        return FQT_ERR_ARG;
    }
    if (n && !text) {
        fqt_set_error("fqt_bpe_train: NULL text");
        return FQT_ERR_ARG;
    }
    trainer t;
    memset(&t, 0, sizeof t);
    t.capwords = 1024;
    t.wcount = fqt_xmalloc((size_t)t.capwords * sizeof *t.wcount);
    t.wstart = fqt_xmalloc((size_t)t.capwords * sizeof *t.wstart);
    t.wlen = fqt_xmalloc((size_t)t.capwords * sizeof *t.wlen);
    t.capsym = 4096;
    t.sym = fqt_xmalloc((size_t)t.capsym * sizeof *t.sym);
    t.cappairs = 1024;
    t.pairs = fqt_xmalloc((size_t)t.cappairs * sizeof *t.pairs);
    pairs_rehash(&t, 4096);
    int32_t target = vocab_size - 257, M = 0;
    int32_t *merges = fqt_xmalloc((size_t)(2 * (int64_t)target + 2) * sizeof *merges);

    fqt_status st = count_all_pieces(&t, text, n);
    if (st != FQT_OK) goto out;
    t.stamp = fqt_xmalloc(((size_t)t.nwords + 1) * sizeof *t.stamp);
    for (int32_t w = 0; w < t.nwords; w++) {
        t.stamp[w] = -1;
        const int32_t *s = t.sym + t.wstart[w];
        for (int32_t i = 0; i + 1 < t.wlen[w]; i++) pair_add(&t, s[i], s[i + 1], t.wcount[w], w);
    }
    for (int32_t d = 0; d < t.ndirty; d++) {
        train_pair *tp = &t.pairs[t.dirty[d]];
        tp->dirty = 0;
        tp->pushed = tp->count;
        heap_push(&t, tp->count, tp->a, tp->b);
    }
    t.ndirty = 0;

    while (M < target && t.nheap > 0) {
        heap_entry e = heap_pop(&t);
        int32_t p = pair_get(&t, e.a, e.b);
        if (t.pairs[p].count != e.count) continue; /* stale: a newer entry exists */
        if (e.count < 2) break;                    /* every remaining pair occurs once */
        int32_t c = 256 + M;
        merges[2 * M] = e.a;
        merges[2 * M + 1] = e.b;
        M++;
        /* The word list only grows for pairs containing c, so this pair's list is stable
         * while we walk it; copy the pointer fields since pair_add may move t.pairs. */
        int32_t nw = t.pairs[p].nwords;
        int32_t *words = t.pairs[p].words;
        t.pairs[p].words = NULL;
        t.pairs[p].nwords = t.pairs[p].capwords = 0;
        for (int32_t k = 0; k < nw; k++) {
            int32_t w = words[k];
            if (t.stamp[w] == c) continue;
            t.stamp[w] = c;
            merge_word(&t, w, e.a, e.b, c);
        }
        free(words);
        FQT_ASSERT(t.pairs[pair_get(&t, e.a, e.b)].count == 0);
        for (int32_t d = 0; d < t.ndirty; d++) {
            train_pair *tp = &t.pairs[t.dirty[d]];
            tp->dirty = 0;
            if (tp->count != tp->pushed) {
                tp->pushed = tp->count;
                if (tp->count > 0) heap_push(&t, tp->count, tp->a, tp->b);
            }
        }
        t.ndirty = 0;
    }
    fqt_bpe *b = bpe_new(KIND_TRAINED);
    b->n_merges = M;
    b->merges = merges;
    merges = NULL;
    if ((st = build_trained(b))) {
        fqt_bpe_free(b);
        goto out;
    }
    *out = b;
out:
    free(merges);
    trainer_free(&t);
    return st;
}

/* ---------- encoding ---------- */

/* The oracle merge loop: repeatedly merge the leftmost lowest-rank adjacent pair. O(L^2). */
static int64_t merge_piece_simple(const fqt_bpe *b, int32_t *sym, int64_t n) {
    for (;;) {
        int32_t best = -1;
        int64_t at = -1;
        for (int64_t i = 0; i + 1 < n; i++) {
            int32_t r = pair_lookup(b, sym[i], sym[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) {
                best = r;
                at = i;
            }
        }
        if (best < 0) return n;
        sym[at] = best;
        memmove(sym + at + 1, sym + at + 2, (size_t)(n - at - 2) * sizeof *sym);
        n--;
    }
}

typedef struct {
    int32_t rank;
    int32_t pos;
} piece_entry;

static int pe_before(piece_entry x, piece_entry y) {
    return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos;
}

static void pe_push(piece_entry *h, int64_t *nh, piece_entry e) {
    int64_t i = (*nh)++;
    while (i > 0 && pe_before(e, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static piece_entry pe_pop(piece_entry *h, int64_t *nh) {
    piece_entry top = h[0], e = h[--*nh];
    int64_t i = 0, n = *nh;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pe_before(h[c + 1], h[c])) c++;
        if (!pe_before(h[c], e)) break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0) h[i] = e;
    return top;
}

/* Same result as merge_piece_simple in O(L log L): a linked list of symbols and a min-heap
 * of (rank, left position); entries are checked against the current pair when popped.
 * Each merge pushes at most 2 entries, so the heap never exceeds 3L. */
static int64_t merge_piece_heap(const fqt_bpe *b, int32_t *sym, int64_t n) {
    if (n > INT32_MAX / 4) return merge_piece_simple(b, sym, n); /* not reached in practice */
    int32_t *nxt = fqt_xmalloc((size_t)n * sizeof *nxt);
    int32_t *prv = fqt_xmalloc((size_t)n * sizeof *prv);
    piece_entry *h = fqt_xmalloc((size_t)(3 * n) * sizeof *h);
    int64_t nh = 0;
    for (int64_t i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prv[i] = (int32_t)i - 1;
    }
    for (int64_t i = 0; i + 1 < n; i++) {
        int32_t r = pair_lookup(b, sym[i], sym[i + 1]);
        if (r >= 0) pe_push(h, &nh, (piece_entry){r, (int32_t)i});
    }
    while (nh > 0) {
        piece_entry e = pe_pop(h, &nh);
        int32_t i = e.pos, j = nxt[i];
        if (sym[i] < 0 || j < 0 || pair_lookup(b, sym[i], sym[j]) != e.rank) continue;
        sym[i] = e.rank;
        sym[j] = -1;
        nxt[i] = nxt[j];
        if (nxt[j] >= 0) prv[nxt[j]] = i;
        if (prv[i] >= 0) {
            int32_t r = pair_lookup(b, sym[prv[i]], sym[i]);
            if (r >= 0) pe_push(h, &nh, (piece_entry){r, prv[i]});
        }
        if (nxt[i] >= 0) {
            int32_t r = pair_lookup(b, sym[i], sym[nxt[i]]);
            if (r >= 0) pe_push(h, &nh, (piece_entry){r, i});
        }
    }
    int64_t o = 0;
    for (int32_t i = 0; i >= 0; i = nxt[i]) sym[o++] = sym[i];
    free(nxt);
    free(prv);
    free(h);
    return o;
}

typedef struct {
    int32_t *ids;
    int64_t n, cap;
} id_vec;

static void idv_reserve(id_vec *v, int64_t extra) {
    if (v->n + extra <= v->cap) return;
    while (v->n + extra > v->cap) v->cap = v->cap ? v->cap * 2 : 1024;
    v->ids = xrealloc(v->ids, (size_t)v->cap * sizeof *v->ids);
}

/* Encode one special-free segment, appending to v. */
static fqt_status encode_segment(const fqt_bpe *b, const unsigned char *s, size_t n, int ref,
                                 id_vec *v) {
    fqt_status st = require_locale(s, n);
    if (st != FQT_OK) return st;
    for (size_t i = 0; i < n;) {
        size_t k = next_piece(s, n, i);
        int64_t len = (int64_t)(k - i);
        idv_reserve(v, len);
        int32_t *sym = v->ids + v->n;
        for (int64_t q = 0; q < len; q++) sym[q] = b->byte_id[s[i + (size_t)q]];
        v->n += ref || len <= LONG_PIECE ? merge_piece_simple(b, sym, len)
                                         : merge_piece_heap(b, sym, len);
        i = k;
    }
    return FQT_OK;
}

static fqt_status encode_impl(const fqt_bpe *b, const void *text, size_t n, int allow_special,
                              int ref, int32_t **ids, int64_t *nids) {
    const unsigned char *s = text;
    *ids = NULL;
    *nids = 0;
    if (n && !s) {
        fqt_set_error("fqt_bpe_encode: NULL text");
        return FQT_ERR_ARG;
    }
    id_vec v = {0};
    idv_reserve(&v, 1);
    fqt_status st = FQT_OK;
    size_t i = 0;
    for (;;) {
        /* Earliest special occurrence at or after i (the first-listed one on a tie). */
        size_t best = n;
        int32_t best_k = -1;
        if (allow_special) {
            for (int32_t k = 0; k < b->n_specials; k++) {
                size_t len;
                const unsigned char *sp = fqt_bpe_token_bytes(b, b->special_id[k], &len);
                const unsigned char *hit = n - i >= len ? memmem(s + i, n - i, sp, len) : NULL;
                if (hit && (size_t)(hit - s) < best) {
                    best = (size_t)(hit - s);
                    best_k = k;
                }
            }
        }
        st = encode_segment(b, s + i, best - i, ref, &v);
        if (st != FQT_OK || best_k < 0) break;
        idv_reserve(&v, 1);
        v.ids[v.n++] = b->special_id[best_k];
        i = best + (size_t)(b->tok_off[b->special_id[best_k] + 1] - b->tok_off[b->special_id[best_k]]);
    }
    if (st != FQT_OK) {
        free(v.ids);
        return st;
    }
    *ids = v.ids;
    *nids = v.n;
    return FQT_OK;
}

fqt_status fqt_bpe_encode(const fqt_bpe *b, const void *text, size_t n, int allow_special,
                          int32_t **ids, int64_t *nids) {
    return encode_impl(b, text, n, allow_special, 0, ids, nids);
}

fqt_status fqt_bpe_encode_ref(const fqt_bpe *b, const void *text, size_t n, int allow_special,
                              int32_t **ids, int64_t *nids) {
    return encode_impl(b, text, n, allow_special, 1, ids, nids);
}

fqt_status fqt_bpe_decode(const fqt_bpe *b, const int32_t *ids, int64_t n,
                          unsigned char **bytes, size_t *nbytes) {
    *bytes = NULL;
    *nbytes = 0;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= b->vocab_size) {
            fqt_set_error("cannot decode token %d at index %lld: vocabulary has %d tokens",
                          ids[i], (long long)i, b->vocab_size);
            return FQT_ERR_ARG;
        }
        total += (size_t)(b->tok_off[ids[i] + 1] - b->tok_off[ids[i]]);
    }
    unsigned char *out = fqt_xmalloc(total + 1), *p = out;
    for (int64_t i = 0; i < n; i++) {
        size_t len = (size_t)(b->tok_off[ids[i] + 1] - b->tok_off[ids[i]]);
        memcpy(p, b->blob + b->tok_off[ids[i]], len);
        p += len;
    }
    *p = '\0';
    *bytes = out;
    *nbytes = total;
    return FQT_OK;
}

const unsigned char *fqt_bpe_token_bytes(const fqt_bpe *b, int32_t id, size_t *len) {
    if (id < 0 || id >= b->vocab_size) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (size_t)(b->tok_off[id + 1] - b->tok_off[id]);
    return b->blob + b->tok_off[id];
}

int32_t fqt_bpe_vocab_size(const fqt_bpe *b) { return b->vocab_size; }
int32_t fqt_bpe_n_merges(const fqt_bpe *b) { return b->n_merges; }
int32_t fqt_bpe_eot(const fqt_bpe *b) { return b->eot; }
int fqt_bpe_is_gpt2(const fqt_bpe *b) { return b->kind == KIND_GPT2; }

int fqt_bpe_merge(const fqt_bpe *b, int32_t i, int32_t *left, int32_t *right) {
    if (b->kind != KIND_TRAINED || i < 0 || i >= b->n_merges) return -1;
    *left = b->merges[2 * i];
    *right = b->merges[2 * i + 1];
    return 0;
}

/* ---------- the fqt-bpe file ---------- */

fqt_status fqt_bpe_save(const fqt_bpe *b, const char *path) {
    if (b->kind != KIND_TRAINED) {
        fqt_set_error("%s: only trained tokenizers can be saved; GPT-2's vocabulary is its "
                      ".tiktoken file", path);
        return FQT_ERR_UNSUPPORTED;
    }
    size_t cap = 256 + (size_t)b->n_merges * 24 + 64 * (size_t)b->n_specials + 256, len = 0;
    char *buf = fqt_xmalloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "%s %d\nvocab_size %d\nmerges %d\nspecials %d\n",
                            FQT_BPE_FILE_MAGIC, FQT_BPE_FILE_VERSION, b->vocab_size, b->n_merges,
                            b->n_specials);
    for (int32_t i = 0; i < b->n_merges; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%d %d\n", b->merges[2 * i],
                                b->merges[2 * i + 1]);
    for (int32_t k = 0; k < b->n_specials; k++) {
        size_t sl;
        const unsigned char *sp = fqt_bpe_token_bytes(b, b->special_id[k], &sl);
        len += (size_t)snprintf(buf + len, cap - len, "special %d %.*s\n", b->special_id[k],
                                (int)sl, (const char *)sp);
    }
    unsigned char dig[FQT_SHA512_BYTES];
    char hex[2 * FQT_SHA512_BYTES + 1];
    fqt_sha512(buf, len, dig);
    fqt_hex(dig, sizeof dig, hex);
    len += (size_t)snprintf(buf + len, cap - len, "sha512 %s\n", hex);
    FQT_ASSERT(len < cap);
    fqt_status st = fqt_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

/* Line reader over a NUL-terminated buffer: returns the line (without '\n', NUL-terminated
 * in place) or NULL at the end; *lineno counts from 1. A last line without '\n' is marked
 * through *unterminated. */
static char *next_line(char **cur, char *end, int64_t *lineno, int *unterminated) {
    char *s = *cur;
    if (s >= end) return NULL;
    char *nl = memchr(s, '\n', (size_t)(end - s));
    *unterminated = !nl;
    if (!nl) nl = end;
    *nl = '\0';
    *cur = nl + 1;
    (*lineno)++;
    return s;
}

/* Parse a non-negative decimal int32 that ends at a space or the string end. */
static int parse_i32(const char **p, int32_t *v) {
    const char *s = *p;
    int64_t x = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s++ - '0');
        if (x > INT32_MAX) return -1;
    }
    *v = (int32_t)x;
    *p = s;
    return 0;
}

static fqt_status load_fqt(const char *path, char *text, size_t n, fqt_bpe **out) {
    char *cur = text, *end = text + n;
    int64_t ln = 0;
    int unterm = 0;
    int32_t V = -1, M = -1, S = -1, ver;
    int32_t *merges = NULL;
    char *line;
    const char *p;
    static const char *const keys[] = {"vocab_size ", "merges ", "specials "};
    int32_t *vals[] = {&V, &M, &S};

    line = next_line(&cur, end, &ln, &unterm);
    p = line + strlen(FQT_BPE_FILE_MAGIC) + 1;
    if (parse_i32(&p, &ver) || *p) goto bad_line;
    if (ver != FQT_BPE_FILE_VERSION) {
        fqt_set_error("%s: fqt-bpe version %d, this build reads version %d", path, ver,
                      FQT_BPE_FILE_VERSION);
        return FQT_ERR_FORMAT;
    }
    for (int k = 0; k < 3; k++) {
        line = next_line(&cur, end, &ln, &unterm);
        if (!line) goto truncated;
        if (strncmp(line, keys[k], strlen(keys[k]))) goto bad_line;
        p = line + strlen(keys[k]);
        if (parse_i32(&p, vals[k]) || *p) goto bad_line;
    }
    if (S != 1 || (int64_t)V != 256 + (int64_t)M + S) {
        fqt_set_error("%s: inconsistent header: vocab_size %d, merges %d, specials %d (need "
                      "vocab_size = 256 + merges + specials, and exactly 1 special)",
                      path, V, M, S);
        return FQT_ERR_FORMAT;
    }
    /* Each merge line takes at least 4 bytes ("0 0\n"): a header claiming more merges than
     * the file can hold is rejected before anything is allocated for them. */
    if ((int64_t)M > (int64_t)(end - cur) / 4) {
        fqt_set_error("%s: header claims %d merges, but the %zu bytes left in the file hold "
                      "at most %lld", path, M, (size_t)(end - cur), (long long)((end - cur) / 4));
        return FQT_ERR_FORMAT;
    }
    merges = fqt_xmalloc((size_t)(2 * (int64_t)M + 2) * sizeof *merges);
    for (int32_t i = 0; i < M; i++) {
        line = next_line(&cur, end, &ln, &unterm);
        if (!line) goto truncated;
        p = line;
        if (parse_i32(&p, &merges[2 * i]) || *p++ != ' ' || parse_i32(&p, &merges[2 * i + 1]) || *p)
            goto bad_line;
        if (merges[2 * i] >= 256 + i || merges[2 * i + 1] >= 256 + i) {
            fqt_set_error("%s: line %lld: merge %d refers to id %d, which is not defined yet",
                          path, (long long)ln, i,
                          merges[2 * i] >= 256 + i ? merges[2 * i] : merges[2 * i + 1]);
            free(merges);
            return FQT_ERR_FORMAT;
        }
    }
    line = next_line(&cur, end, &ln, &unterm);
    if (!line) goto truncated;
    {
        int32_t id;
        p = line;
        if (strncmp(p, "special ", 8)) goto bad_line;
        p += 8;
        if (parse_i32(&p, &id) || *p++ != ' ') goto bad_line;
        if (id != 256 + M || strcmp(p, FQT_BPE_EOT_TEXT)) {
            fqt_set_error("%s: line %lld: expected 'special %d %s'", path, (long long)ln,
                          256 + M, FQT_BPE_EOT_TEXT);
            free(merges);
            return FQT_ERR_FORMAT;
        }
    }
    {
        size_t hashed = (size_t)(cur - text);
        line = next_line(&cur, end, &ln, &unterm);
        if (!line) goto truncated;
        if (strncmp(line, "sha512 ", 7) || strlen(line + 7) != 2 * FQT_SHA512_BYTES || unterm) {
            if (unterm && !strncmp(line, "sha512 ", 7)) goto truncated;
            goto bad_line;
        }
        if (cur < end) {
            fqt_set_error("%s: line %lld: unexpected data after the sha512 line", path,
                          (long long)ln + 1);
            free(merges);
            return FQT_ERR_FORMAT;
        }
        /* The lines before were NUL-terminated in place; restore the newlines to hash. */
        for (size_t q = 0; q < hashed; q++)
            if (text[q] == '\0') text[q] = '\n';
        unsigned char dig[FQT_SHA512_BYTES];
        char hex[2 * FQT_SHA512_BYTES + 1];
        fqt_sha512(text, hashed, dig);
        fqt_hex(dig, sizeof dig, hex);
        if (strcmp(hex, line + 7)) {
            fqt_set_error("%s: checksum mismatch: the file was modified or corrupted (sha512 "
                          "of its contents is %.16s..., the file records %.16s...)",
                          path, hex, line + 7);
            free(merges);
            return FQT_ERR_FORMAT;
        }
    }
    fqt_bpe *b = bpe_new(KIND_TRAINED);
    b->n_merges = M;
    b->merges = merges;
    fqt_status bst = build_trained(b);
    if (bst) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", path, msg);
        fqt_bpe_free(b);
        return bst;
    }
    *out = b;
    return FQT_OK;

truncated:
    fqt_set_error("%s: truncated fqt-bpe vocabulary: ends at line %lld before the sha512 "
                  "line (expected %d merges)", path, (long long)ln, M);
    free(merges);
    return FQT_ERR_FORMAT;
bad_line:
    if (unterm) goto truncated; /* the file ends inside this line */
    fqt_set_error("%s: line %lld: malformed fqt-bpe line '%.60s'", path, (long long)ln,
                  line ? line : "");
    free(merges);
    return FQT_ERR_FORMAT;
}

/* ---------- GPT-2 r50k_base.tiktoken ---------- */

/* Lines "<base64 token bytes> <rank>", ranks 0..50255 in order. The pair map gets every
 * split (p, q) of every token t with p and q tokens: tiktoken merges two adjacent parts
 * whenever their concatenation is a token, with that token's rank as priority. */
static fqt_status load_tiktoken(const char *path, char *text, size_t n, fqt_bpe **out) {
    const int32_t R = FQT_GPT2_VOCAB_SIZE - 1;
    fqt_bpe *b = bpe_new(KIND_GPT2);
    bytes_map m = {0};
    fqt_status st = FQT_ERR_FORMAT;
    char *cur = text, *end = text + n, *line;
    int64_t ln = 0;
    int unterm;
    int32_t r = 0;
    b->tok_off = fqt_xmalloc(((size_t)R + 2) * sizeof *b->tok_off);
    b->blob = fqt_xmalloc(n + 64); /* decoded bytes are shorter than their base64 */
    b->tok_off[0] = 0;
    for (; (line = next_line(&cur, end, &ln, &unterm)) != NULL; r++) {
        char *sp = strchr(line, ' ');
        int32_t rank;
        const char *p = sp ? sp + 1 : NULL;
        if (!sp || parse_i32(&p, &rank) || *p) {
            fqt_set_error("%s: line %lld: not a '<base64> <rank>' tiktoken line%s", path,
                          (long long)ln, unterm ? " (the file ends inside it: truncated; "
                          "expected 50256 ranks)" : "");
            goto fail;
        }
        if (r >= R) {
            fqt_set_error("%s: more than %d ranks: not GPT-2's r50k_base (only r50k_base "
                          "is supported)", path, R);
            st = FQT_ERR_MISMATCH;
            goto fail;
        }
        if (rank != r) {
            fqt_set_error("%s: line %lld: rank %d where %d was expected (ranks must be "
                          "0, 1, 2, ... in order)", path, (long long)ln, rank, r);
            goto fail;
        }
        int64_t got = fqt_base64_decode(line, (size_t)(sp - line), b->blob + b->tok_off[r]);
        if (got <= 0) {
            fqt_set_error("%s: line %lld: bad base64 token", path, (long long)ln);
            goto fail;
        }
        b->tok_off[r + 1] = b->tok_off[r] + got;
    }
    if (r != R) {
        fqt_set_error("%s: %d ranks, expected %d: truncated, or not GPT-2's r50k_base", path, r,
                      R);
        st = r < R ? FQT_ERR_FORMAT : FQT_ERR_MISMATCH;
        goto fail;
    }
    memcpy(b->blob + b->tok_off[R], FQT_BPE_EOT_TEXT, strlen(FQT_BPE_EOT_TEXT));
    b->tok_off[R + 1] = b->tok_off[R] + (int64_t)strlen(FQT_BPE_EOT_TEXT);
    b->vocab_size = R + 1;
    b->n_merges = R - 256;
    b->n_specials = 1;
    b->eot = b->special_id[0] = R;
    /* The 256 single bytes must be ranks 0..255; all tokens distinct. */
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    bytes_map_init(&m, R);
    for (int32_t id = 0; id < R; id++) {
        const unsigned char *s = b->blob + b->tok_off[id];
        size_t len = (size_t)(b->tok_off[id + 1] - b->tok_off[id]);
        if ((id < 256) != (len == 1)) {
            fqt_set_error("%s: rank %d has %zu bytes; GPT-2 has the 256 single bytes at "
                          "ranks 0..255 and longer tokens after", path, id, len);
            st = FQT_ERR_MISMATCH;
            goto fail;
        }
        if (len == 1) b->byte_id[s[0]] = id;
        int found;
        bytes_map_put(&m, s, len, id, &found);
        if (found) {
            fqt_set_error("%s: rank %d duplicates an earlier token", path, id);
            goto fail;
        }
    }
    pair_map_init(b, 4 * (int64_t)R);
    int64_t npairs = 0;
    for (int32_t id = 256; id < R; id++) {
        const unsigned char *s = b->blob + b->tok_off[id];
        size_t len = (size_t)(b->tok_off[id + 1] - b->tok_off[id]);
        for (size_t k = 1; k < len; k++) {
            uint64_t h1 = hash_bytes(s, k), h2 = hash_bytes(s + k, len - k);
            uint64_t i1 = bytes_map_slot(&m, s, k, h1), i2 = bytes_map_slot(&m, s + k, len - k, h2);
            if (!m.ptr[i1] || !m.ptr[i2]) continue;
            if (npairs + 1 > (int64_t)(b->pair_mask + 1) / 2) {
                fqt_set_error("%s: too many token splits", path); /* not reached for r50k */
                goto fail;
            }
            if (pair_insert(b, m.val[i1], m.val[i2], id) < 0) npairs++;
        }
    }
    bytes_map_free(&m);
    *out = b;
    return FQT_OK;
fail:
    bytes_map_free(&m);
    fqt_bpe_free(b);
    return st;
}

fqt_status fqt_bpe_load(const char *path, fqt_bpe **out) {
    *out = NULL;
    void *data;
    size_t n;
    fqt_status st = fqt_read_file(path, &data, &n);
    if (st != FQT_OK) return st;
    char *text = data;
    size_t magic = strlen(FQT_BPE_FILE_MAGIC);
    if (n == 0) {
        fqt_set_error("%s: empty file, not a BPE vocabulary", path);
        st = FQT_ERR_FORMAT;
    } else if (memchr(text, '\0', n)) {
        fqt_set_error("%s: binary data (NUL bytes): not an fqt-bpe or .tiktoken vocabulary",
                      path);
        st = FQT_ERR_FORMAT;
    } else if (n > magic && !memcmp(text, FQT_BPE_FILE_MAGIC, magic) && text[magic] == ' ') {
        st = load_fqt(path, text, n, out);
    } else {
        /* A .tiktoken file starts with "<base64> 0". */
        const char *sp = memchr(text, ' ', n);
        const char *nl = memchr(text, '\n', n);
        if (sp && sp > text && (!nl || sp < nl) && sp[1] == '0' && (sp + 2 == text + n || sp[2] == '\n')) {
            st = load_tiktoken(path, text, n, out);
        } else {
            fqt_set_error("%s: not a BPE vocabulary: the first line is neither '%s %d' (fqt) "
                          "nor a tiktoken '<base64> 0'", path, FQT_BPE_FILE_MAGIC,
                          FQT_BPE_FILE_VERSION);
            st = FQT_ERR_FORMAT;
        }
    }
    free(data);
    return st;
}
