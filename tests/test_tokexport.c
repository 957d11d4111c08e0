/* tests/test_tokexport.c — the tokenizer files a checkpoint carries (fqt/tokenizer_export.h),
 * read back by an independent implementation written here from the public formats:
 * Hugging Face tokenizer.json (byte-level alphabet, vocab, merges applied by pair rank,
 * GPT-2's split pattern for ASCII text) and .tiktoken (base64 bytes and rank per line,
 * merges by the rank of the merged bytes). Nothing here calls text/bpe.c to encode or
 * decode; fqt's own encoder is only the thing compared against. GPT-2 cases SKIP without
 * data/r50k_base.tiktoken (FQT_GPT2_VOCAB overrides the path).
 * Not for: fqt's own BPE (test_text.c). */
#include "check.h"

#include "fqt/bpe.h"
#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/tokenizer_export.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- an independent reader ------------------------------------------------------------ */

typedef struct {
    char **str;      /* id -> byte-level text */
    int32_t n;
    char **mkey;     /* "left right" merges, rank = index */
    int32_t nm;
    int32_t eot;
} hf_tok;

/* GPT-2's ByteLevel alphabet, from its definition: printable Latin-1 bytes stand for
 * themselves, the rest take U+0100 upwards in byte order. */
static void alphabet(uint32_t cp[256]) {
    int next = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + next++);
    }
}

/* Byte-level text -> bytes (inverse alphabet). Returns length or -1. */
static int64_t unmap(const char *s, unsigned char *out) {
    uint32_t cp[256];
    alphabet(cp);
    int64_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        if (*p < 0x80) c = *p++;
        else if ((*p & 0xE0) == 0xC0 && p[1]) { c = ((uint32_t)(*p & 0x1F) << 6) | (p[1] & 0x3F); p += 2; }
        else return -1;
        int b = -1;
        for (int k = 0; k < 256; k++) if (cp[k] == c) b = k;
        if (b < 0) return -1;
        out[n++] = (unsigned char)b;
    }
    return n;
}

static void map_bytes(const unsigned char *s, size_t n, char *out) {
    uint32_t cp[256];
    alphabet(cp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[s[i]];
        if (c < 0x80) out[k++] = (char)c;
        else { out[k++] = (char)(0xC0 | (c >> 6)); out[k++] = (char)(0x80 | (c & 0x3F)); }
    }
    out[k] = 0;
}

static bool hf_load(const char *path, hf_tok *t) {
    memset(t, 0, sizeof *t);
    void *d;
    size_t n;
    if (fqt_read_file(path, &d, &n)) return false;
    fqt_json *j = NULL;
    bool ok = !fqt_json_parse(d, n, &j);
    free(d);
    if (!ok) return false;
    const fqt_json *model = fqt_json_get(j, "model"), *vocab = fqt_json_get(model, "vocab"),
                   *merges = fqt_json_get(model, "merges"), *pre = fqt_json_get(j, "pre_tokenizer"),
                   *dec = fqt_json_get(j, "decoder"), *added = fqt_json_get(j, "added_tokens");
    ok = vocab && merges && !strcmp(fqt_json_get_str(model, "type", ""), "BPE") &&
         !strcmp(fqt_json_get_str(pre, "type", ""), "ByteLevel") && !strcmp(fqt_json_get_str(dec, "type", ""), "ByteLevel") &&
         added && added->type == FQT_JSON_ARR && added->n == 1;
    if (ok) {
        int64_t mx = 0, id;
        for (int64_t i = 0; i < vocab->n; i++) if (fqt_json_int64(&vocab->items[i], &id) && id > mx) mx = id;
        t->n = (int32_t)mx + 1;
        t->str = calloc((size_t)t->n, sizeof *t->str);
        for (int64_t i = 0; i < vocab->n; i++)
            if (fqt_json_int64(&vocab->items[i], &id)) t->str[id] = strdup(vocab->keys[i]);
        t->nm = (int32_t)merges->n;
        t->mkey = calloc((size_t)t->nm + 1, sizeof *t->mkey);
        for (int64_t i = 0; i < merges->n; i++) t->mkey[i] = strdup(merges->items[i].str ? merges->items[i].str : "");
        int64_t e;
        ok = fqt_json_int64(fqt_json_get(&added->items[0], "id"), &e) &&
             !strcmp(fqt_json_get_str(&added->items[0], "content", ""), "<|endoftext|>");
        t->eot = (int32_t)e;
    }
    fqt_json_free(j);
    return ok;
}

static void hf_free(hf_tok *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->str[i]);
    for (int32_t i = 0; i < t->nm; i++) free(t->mkey[i]);
    free(t->str);
    free(t->mkey);
}

static int32_t id_of(const hf_tok *t, const char *s) {
    for (int32_t i = 0; i < t->n; i++) if (t->str[i] && !strcmp(t->str[i], s)) return i;
    return -1;
}

static int32_t merge_rank(const hf_tok *t, const char *a, const char *b) {
    char key[1024];
    snprintf(key, sizeof key, "%s %s", a, b);
    for (int32_t i = 0; i < t->nm; i++) if (!strcmp(t->mkey[i], key)) return i;
    return -1;
}

static bool is_letter(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* End of the GPT-2 pattern's match at i, for ASCII text. */
static size_t piece_end(const char *s, size_t n, size_t i) {
    static const char *const con[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int k = 0; k < 7; k++) {
        size_t l = strlen(con[k]);
        if (i + l <= n && !strncmp(s + i, con[k], l)) return i + l;
    }
    size_t j = i;
    if (s[j] == ' ' && j + 1 < n && !is_space(s[j + 1])) j++;
    if (!is_space(s[j])) {
        int cls = is_letter(s[j]) ? 0 : is_digit(s[j]) ? 1 : 2;
        while (j < n && !is_space(s[j]) && (is_letter(s[j]) ? 0 : is_digit(s[j]) ? 1 : 2) == cls) j++;
        return j;
    }
    size_t k = i;
    while (k < n && is_space(s[k])) k++;
    if (k == n || k - i == 1) return k;
    return k - 1; /* \s+(?!\S): leave the last one to prefix the next piece */
}

/* Encode ASCII text with the tokenizer.json data: split, map, merge by pair rank. */
static int64_t hf_encode(const hf_tok *t, const char *s, int32_t *ids) {
    size_t n = strlen(s), i = 0;
    int64_t nid = 0;
    while (i < n) {
        size_t e = piece_end(s, n, i);
        char *parts[512];
        int np = 0;
        for (size_t k = i; k < e; k++) {
            char one[4];
            map_bytes((const unsigned char *)s + k, 1, one);
            parts[np++] = strdup(one);
        }
        for (;;) {
            int32_t best = -1;
            int bi = -1;
            for (int k = 0; k + 1 < np; k++) {
                int32_t r = merge_rank(t, parts[k], parts[k + 1]);
                if (r >= 0 && (best < 0 || r < best)) { best = r; bi = k; }
            }
            if (bi < 0) break;
            size_t la = strlen(parts[bi]), lb = strlen(parts[bi + 1]);
            char *m = malloc(la + lb + 1);
            memcpy(m, parts[bi], la);
            memcpy(m + la, parts[bi + 1], lb + 1);
            free(parts[bi]);
            free(parts[bi + 1]);
            parts[bi] = m;
            memmove(parts + bi + 1, parts + bi + 2, (size_t)(np - bi - 2) * sizeof *parts);
            np--;
        }
        for (int k = 0; k < np; k++) {
            ids[nid++] = id_of(t, parts[k]);
            free(parts[k]);
        }
        i = e;
    }
    return nid;
}

static const char *const texts[] = {
    "The Congress shall have power to lay and collect taxes, duties, imposts and excises.",
    "We the People of the United States, in Order to form a more perfect Union, don't we?",
    "It's 1787; they'll say   \"we've\" 42 times...\n\nNew paragraph:\tindented  text  \n",
    "numbers 3.14159 and 2024-01-01, symbols #@!$%^&*() and   trailing spaces   ",
};

/* The tokenizer.json of a vocabulary against fqt's encoder and decoder. */
static void check_hf(const fqt_bpe *bpe, const char *dir, const char *what) {
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    hf_tok t;
    CHECK_MSG(hf_load(path, &t), "%s: %s does not load as a byte-level BPE tokenizer.json", what, path);
    if (!t.n) return;
    CHECK_MSG(t.eot == fqt_bpe_eot(bpe), "%s: eot %d vs %d", what, t.eot, fqt_bpe_eot(bpe));
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t *ids = NULL, hf[4096];
        int64_t n = 0;
        FQT_ASSERT(!fqt_bpe_encode(bpe, texts[k], strlen(texts[k]), 0, &ids, &n));
        int64_t m = hf_encode(&t, texts[k], hf);
        bool same = m == n;
        for (int64_t i = 0; same && i < n; i++) same = ids[i] == hf[i];
        CHECK_MSG(same, "%s: text %zu encodes to %lld tokens through tokenizer.json, %lld through fqt", what, k,
                  (long long)m, (long long)n);
        free(ids);
    }
    /* Decoding through the vocab: any UTF-8, specials included. */
    const char *u = "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\x01\x7f end";
    int32_t *ids = NULL;
    int64_t n = 0;
    FQT_ASSERT(!fqt_bpe_encode(bpe, u, strlen(u), 0, &ids, &n));
    unsigned char out[4096];
    int64_t len = 0;
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = ids[i] >= 0 && ids[i] < t.n && t.str[ids[i]];
        int64_t l = ok ? unmap(t.str[ids[i]], out + len) : -1;
        ok = ok && l >= 0;
        len += l;
    }
    CHECK_MSG(ok && len == (int64_t)strlen(u) && !memcmp(out, u, (size_t)len), "%s: decode through tokenizer.json", what);
    CHECK_MSG(t.str[t.eot] && !strcmp(t.str[t.eot], "<|endoftext|>"), "%s: eot in vocab", what);
    free(ids);
    hf_free(&t);
}

static void check_side_files(const char *dir, int32_t eot, const char *what) {
    char path[600];
    const char *names[] = {"generation_config.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        void *d;
        size_t n;
        fqt_json *j = NULL;
        bool ok = !fqt_read_file(path, &d, &n) && !fqt_json_parse(d, n, &j);
        CHECK_MSG(ok, "%s: %s missing or not JSON", what, path);
        if (ok && i == 0) {
            int64_t b = -1, e = -1;
            CHECK(fqt_json_int64(fqt_json_get(j, "bos_token_id"), &b) && b == eot);
            CHECK(fqt_json_int64(fqt_json_get(j, "eos_token_id"), &e) && e == eot);
        }
        if (ok && i == 1) CHECK(!strcmp(fqt_json_get_str(j, "eos_token", ""), "<|endoftext|>"));
        if (ok) free(d);
        fqt_json_free(j);
    }
}

static char tmpdir[64];

static void test_trained(void) {
    /* A corpus with contractions, numbers, punctuation and runs of spaces. */
    fqt_buf b = {0};
    for (int r = 0; r < 40; r++)
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) fqt_buf_printf(&b, "%s %d ", texts[k], r * 7);
    fqt_bpe *bpe = NULL;
    FQT_ASSERT(!fqt_bpe_train(b.s, b.len, 600, &bpe));
    fqt_buf_free(&b);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/trained", tmpdir);
    FQT_ASSERT(!fqt_mkdir_p(dir));
    CHECK(fqt_tokenizer_export(bpe, dir, 128) == FQT_OK);
    check_hf(bpe, dir, "trained");
    check_side_files(dir, fqt_bpe_eot(bpe), "trained");
    char p[200];
    snprintf(p, sizeof p, "%s/r50k_base.tiktoken", dir);
    CHECK_MSG(access(p, F_OK) != 0, "a trained vocabulary gets no .tiktoken");
    snprintf(p, sizeof p, "%s/tokenizer.bpe", dir);
    CHECK(access(p, F_OK) == 0);
    fqt_bpe_free(bpe);
}

/* .tiktoken: rank order merging of byte strings by the rank of the merged bytes. */
static void test_gpt2(void) {
    char def[600];
    const char *src = getenv("FQT_SRC"), *vp = getenv("FQT_GPT2_VOCAB");
    snprintf(def, sizeof def, "%s/data/r50k_base.tiktoken", src ? src : ".");
    if (!vp) vp = def;
    if (access(vp, R_OK)) {
        printf("SKIP gpt2 export: %s absent\n", vp);
        return;
    }
    fqt_bpe *bpe = NULL;
    FQT_ASSERT(!fqt_bpe_load(vp, &bpe));
    char dir[128], p[200];
    snprintf(dir, sizeof dir, "%s/gpt2", tmpdir);
    FQT_ASSERT(!fqt_mkdir_p(dir));
    CHECK(fqt_tokenizer_export(bpe, dir, 1024) == FQT_OK);
    /* The written .tiktoken is the published file, byte for byte. */
    snprintf(p, sizeof p, "%s/r50k_base.tiktoken", dir);
    void *a, *o;
    size_t na, no;
    CHECK(!fqt_read_file(p, &a, &na) && !fqt_read_file(vp, &o, &no));
    CHECK_MSG(na == no && !memcmp(a, o, na), "exported .tiktoken differs from %s", vp);
    free(a);
    free(o);
    check_hf(bpe, dir, "gpt2");
    check_side_files(dir, 50256, "gpt2");
    fqt_bpe_free(bpe);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fqt_tokexport_XXXXXX");
    FQT_ASSERT(mkdtemp(tmpdir));
    test_trained();
    test_gpt2();
    if (!check_failed_) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_finish();
}
