/* tests/test_safetensors.c — the safetensors layer: round trips of every dtype with
 * metadata, the 16-bit float conversions (exhaustive), atomic writes under injected
 * failures, and every validation error of the reader, each of whose messages must name
 * the file.
 *
 * Not for: checkpoint semantics (tests/test_checkpoint.c). Files live in a mkdtemp
 * directory under /tmp that is removed at the end. */
#include "check.h"
#include "fqt/safetensors.h"
#include "io/safetensors_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static char *path_in(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) ? -1 : (int64_t)sb.st_size;
}

/* Whole file into a malloc'ed buffer; NULL if unreadable. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static void put_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    CHECK(fwrite(data, 1, n, fp) == n);
    fclose(fp);
}

/* A hand-made file: the header text as given (unpadded), then data_len bytes 0,1,2,... */
static void put_raw(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header);
    unsigned char *b = calloc(8 + hl + data_len + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)i;
    put_file(path, b, 8 + hl + data_len);
    free(b);
}

/* Entries of dir other than "." and "..". */
static int count_dir_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Open must fail with `want`, leave *f NULL, and say path and `what`. `line` tags failures
 * (the caller's line, or minus the cut length in the truncation test). */
static void expect_bad(const char *path, fqt_status want, const char *what, int line) {
    fqt_st_file *f = (fqt_st_file *)&f; /* poison: open must reset it */
    fqt_status st = fqt_st_open(path, &f);
    const char *msg = fqt_last_error();
    CHECK_MSG(st == want, "line %d: status %s, want %s (%s)", line, fqt_status_str(st),
              fqt_status_str(want), msg);
    CHECK_MSG(f == NULL, "line %d", line);
    CHECK_MSG(!strncmp(msg, path, strlen(path)), "line %d: message does not start with the "
              "path: %s", line, msg);
    CHECK_MSG(strstr(msg, what) != NULL, "line %d: message lacks '%s': %s", line, what, msg);
    if (st == FQT_OK) fqt_st_close(f);
}
#define EXPECT_BAD(path, st, what) expect_bad(path, st, what, __LINE__)

/* Raw header with the given tensor entries, followed by data_len data bytes. */
static const char *bad_raw(const char *name, const char *header, size_t data_len) {
    const char *p = path_in(name);
    put_raw(p, header, data_len);
    return p;
}

/* ---- round trip ------------------------------------------------------------------ */

static void test_round_trip(void) {
    float w[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
    uint16_t bf[4] = {0x3f80, 0xc000, 0x7f80, 0x0001};   /* 1, -2, Inf, tiny subnormal */
    uint16_t hf[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555};
    int32_t i32[3] = {-1, 0, 2147483647};
    int64_t i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
    uint8_t u8[7] = {0, 1, 2, 3, 250, 254, 255};
    uint16_t u16[3] = {0, 1234, 65535};
    float scalar = 42.0f;
    const fqt_st_tensor t[] = {
        {"model.w", FQT_ST_F32, 2, {2, 3}, w},
        {"odd.u8", FQT_ST_U8, 1, {7}, u8}, /* leaves the next tensor unaligned */
        {"b.bf16", FQT_ST_BF16, 1, {4}, bf},
        {"h.f16", FQT_ST_F16, 1, {5}, hf},
        {"i32", FQT_ST_I32, 1, {3}, i32},
        {"i64", FQT_ST_I64, 2, {2, 2}, i64},
        {"u16", FQT_ST_U16, 3, {1, 3, 1}, u16},
        {"scalar", FQT_ST_F32, 0, {0}, &scalar},
        {"empty", FQT_ST_F32, 2, {0, 5}, NULL},
        {"quo\"te\\d", FQT_ST_U8, 4, {1, 1, 1, 1}, u8},
    };
    const int64_t nt = (int64_t)(sizeof t / sizeof t[0]);
    const char *meta[] = {"format", "pt", "step", "123", "tricky", "a \"b\"\n\t\\ \xc3\xa9", NULL};
    const char *p = path_in("rt.safetensors");
    fqt_status st = fqt_st_write(p, t, nt, meta);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    CHECK(count_dir_entries() == 1); /* no temporary left */

    /* Layout: 8-byte length, header padded to 8, data contiguous in order. */
    size_t n = 0;
    unsigned char *raw = slurp(p, &n);
    CHECK(raw != NULL);
    if (raw) {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)raw[i] << (8 * i);
        size_t data = 0;
        for (int64_t i = 0; i < nt; i++) {
            size_t e = fqt_st_dtype_size(t[i].dtype);
            for (int d = 0; d < t[i].ndim; d++) e *= (size_t)t[i].shape[d];
            data += e;
        }
        CHECK(hl % 8 == 0);
        CHECK(n == 8 + hl + data);
        CHECK(raw[8] == '{');
        CHECK(!memcmp(raw + 8 + hl, w, sizeof w));
        CHECK(!memcmp(raw + 8 + hl + sizeof w, u8, sizeof u8));
        CHECK(!memcmp(raw + 8 + hl + sizeof w + sizeof u8, bf, sizeof bf));
        free(raw);
    }

    fqt_st_file *f = NULL;
    st = fqt_st_open(p, &f);
    CHECK_MSG(st == FQT_OK && f, "%s", fqt_last_error());
    if (!f) return;
    CHECK(!strcmp(fqt_st_path(f), p));
    CHECK(fqt_st_count(f) == nt);
    for (int64_t i = 0; i < nt && i < fqt_st_count(f); i++) {
        const fqt_st_info *inf = fqt_st_at(f, i);
        CHECK_MSG(!strcmp(inf->name, t[i].name), "tensor %lld: %s", (long long)i, inf->name);
        CHECK(inf->dtype == t[i].dtype);
        CHECK(inf->ndim == t[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            CHECK(inf->shape[d] == t[i].shape[d]);
            numel *= t[i].shape[d];
        }
        CHECK(inf->numel == numel);
        CHECK(inf->nbytes == (size_t)numel * fqt_st_dtype_size(t[i].dtype));
        CHECK(inf->nbytes == 0 || !memcmp(inf->data, t[i].data, inf->nbytes));
        CHECK(fqt_st_find(f, t[i].name) == inf);
    }
    CHECK(fqt_st_at(f, -1) == NULL && fqt_st_at(f, nt) == NULL);
    CHECK(fqt_st_find(f, "nope") == NULL);
    CHECK(fqt_st_find(f, "") == NULL);
    CHECK(!strcmp(fqt_st_meta(f, "format"), "pt"));
    CHECK(!strcmp(fqt_st_meta(f, "step"), "123"));
    CHECK(!strcmp(fqt_st_meta(f, "tricky"), meta[5]));
    CHECK(fqt_st_meta(f, "absent") == NULL);

    /* Float reads: F32 copied, BF16 and F16 converted exactly. */
    float got[6];
    CHECK(fqt_st_read_f32(f, "model.w", 2, (int64_t[]){2, 3}, got) == FQT_OK);
    for (int i = 0; i < 6; i++) CHECK_BITS(got[i], w[i]);
    CHECK(fqt_st_read_f32(f, "b.bf16", 1, (int64_t[]){4}, got) == FQT_OK);
    CHECK(got[0] == 1.0f && got[1] == -2.0f && isinf(got[2]) && got[2] > 0);
    CHECK(got[3] == ldexpf(1.0f, -133));
    CHECK(fqt_st_read_f32(f, "h.f16", 1, (int64_t[]){5}, got) == FQT_OK);
    CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == ldexpf(1.0f, -24));
    CHECK(got[3] == 65504.0f && got[4] == 0.333251953125f);
    CHECK(fqt_st_read_f32(f, "scalar", 0, NULL, got) == FQT_OK && got[0] == 42.0f);
    CHECK(fqt_st_read_f32(f, "empty", 2, (int64_t[]){0, 5}, got) == FQT_OK);

    /* Raw reads. */
    int64_t g64[4] = {0};
    CHECK(fqt_st_read_raw(f, "i64", FQT_ST_I64, 2, (int64_t[]){2, 2}, g64, sizeof g64) == FQT_OK);
    CHECK(!memcmp(g64, i64, sizeof g64));
    uint16_t g16[3];
    CHECK(fqt_st_read_raw(f, "u16", FQT_ST_U16, 3, (int64_t[]){1, 3, 1}, g16, sizeof g16) == FQT_OK);
    CHECK(!memcmp(g16, u16, sizeof g16));
    CHECK(fqt_st_read_raw(f, "u16", FQT_ST_U16, 3, (int64_t[]){1, 3, 1}, g16, 4) == FQT_ERR_ARG);
    CHECK(strstr(fqt_last_error(), p) && strstr(fqt_last_error(), "holds 6 bytes"));
    CHECK(fqt_st_read_raw(f, "u16", FQT_ST_I32, 3, (int64_t[]){1, 3, 1}, g16, 6) == FQT_ERR_MISMATCH);
    CHECK(strstr(fqt_last_error(), "has dtype U16, expected I32"));

    /* Reader errors name the file and the problem exactly. */
    char want[512];
    float sentinel[6] = {7, 7, 7, 7, 7, 7};
    CHECK(fqt_st_read_f32(f, "nope", 1, (int64_t[]){3}, sentinel) == FQT_ERR_MISMATCH);
    snprintf(want, sizeof want, "%s: missing tensor 'nope'", p);
    CHECK_MSG(!strcmp(fqt_last_error(), want), "%s", fqt_last_error());
    CHECK(fqt_st_read_f32(f, "model.w", 2, (int64_t[]){3, 2}, sentinel) == FQT_ERR_MISMATCH);
    snprintf(want, sizeof want, "%s: tensor 'model.w' has shape [2, 3], expected [3, 2]", p);
    CHECK_MSG(!strcmp(fqt_last_error(), want), "%s", fqt_last_error());
    CHECK(fqt_st_read_f32(f, "model.w", 1, (int64_t[]){6}, sentinel) == FQT_ERR_MISMATCH);
    snprintf(want, sizeof want, "%s: tensor 'model.w' has shape [2, 3], expected [6]", p);
    CHECK_MSG(!strcmp(fqt_last_error(), want), "%s", fqt_last_error());
    CHECK(fqt_st_read_f32(f, "scalar", 1, (int64_t[]){1}, sentinel) == FQT_ERR_MISMATCH);
    CHECK(strstr(fqt_last_error(), "has shape [], expected [1]"));
    CHECK(fqt_st_read_f32(f, "i32", 1, (int64_t[]){3}, sentinel) == FQT_ERR_MISMATCH);
    snprintf(want, sizeof want, "%s: tensor 'i32' has dtype I32, expected F32, BF16 or F16", p);
    CHECK_MSG(!strcmp(fqt_last_error(), want), "%s", fqt_last_error());
    for (int i = 0; i < 6; i++) CHECK(sentinel[i] == 7.0f); /* dst untouched on error */
    fqt_st_close(f);
    fqt_st_close(NULL);

    /* No metadata, no tensors. */
    CHECK(fqt_st_write(p, NULL, 0, NULL) == FQT_OK);
    CHECK(fqt_st_open(p, &f) == FQT_OK && f);
    if (f) {
        CHECK(fqt_st_count(f) == 0 && fqt_st_find(f, "x") == NULL && fqt_st_meta(f, "x") == NULL);
        fqt_st_close(f);
    }
    const char *empty_meta[] = {NULL};
    CHECK(fqt_st_write(p, t, 1, empty_meta) == FQT_OK);
    CHECK(fqt_st_open(p, &f) == FQT_OK && f);
    if (f) {
        CHECK(fqt_st_count(f) == 1 && fqt_st_meta(f, "format") == NULL);
        fqt_st_close(f);
    }
    unlink(p);
}

/* ---- 16-bit conversions: exhaustive against independent references ----------------- */

static double f16_ref(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0) return s * ldexp(m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexp(1024 + m, e - 25);
}

static void test_conversions(void) {
    enum { N = 65536 };
    uint16_t *codes = malloc(N * sizeof *codes);
    float *dec = malloc(N * sizeof *dec);
    uint16_t *enc = malloc(N * sizeof *enc);
    for (int i = 0; i < N; i++) codes[i] = (uint16_t)i;
    const fqt_st_tensor t[] = {{"bf16", FQT_ST_BF16, 1, {N}, codes},
                               {"f16", FQT_ST_F16, 1, {N}, codes}};
    const char *p = path_in("codes.safetensors");
    CHECK(fqt_st_write(p, t, 2, NULL) == FQT_OK);
    fqt_st_file *f = NULL;
    CHECK(fqt_st_open(p, &f) == FQT_OK);
    if (!f) goto out;

    /* bf16: decode is the top half of the float; encode(decode(c)) == c except NaN. */
    CHECK(fqt_st_read_f32(f, "bf16", 1, (int64_t[]){N}, dec) == FQT_OK);
    long bad = 0;
    for (int i = 0; i < N; i++) bad += check_bits_(dec[i]) != (uint32_t)i << 16;
    CHECK_MSG(bad == 0, "%ld bf16 codes decode wrong", bad);
    CHECK(fqt_st_encode_f32(FQT_ST_BF16, dec, N, enc) == FQT_OK);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += isnan(dec[i]) ? !((enc[i] & 0x7fff) > 0x7f80 && (enc[i] & 0x8000) == (i & 0x8000))
                             : enc[i] != i;
    CHECK_MSG(bad == 0, "%ld bf16 codes do not round-trip", bad);
    /* Midpoints between neighbours go to the even code; just above goes up. */
    bad = 0;
    for (uint32_t c = 0; c < 0x7f7f; c++) {
        uint32_t mid = (c << 16) | 0x8000u;
        float m, above;
        memcpy(&m, &mid, 4);
        mid++;
        memcpy(&above, &mid, 4);
        uint16_t r[2];
        float in[2] = {m, above};
        fqt_st_encode_f32(FQT_ST_BF16, in, 2, r);
        bad += r[0] != ((c & 1) ? c + 1 : c) || r[1] != c + 1;
    }
    CHECK_MSG(bad == 0, "%ld bf16 midpoints round wrong", bad);
    float big = 3.4e38f;
    uint16_t rb;
    fqt_st_encode_f32(FQT_ST_BF16, &big, 1, &rb);
    CHECK(rb == 0x7f80); /* past the largest bf16 (and its midpoint): Inf */

    /* f16: decode against ldexp; encode(decode(c)) == c except NaN. */
    CHECK(fqt_st_read_f32(f, "f16", 1, (int64_t[]){N}, dec) == FQT_OK);
    bad = 0;
    for (int i = 0; i < N; i++) {
        double r = f16_ref((uint16_t)i);
        bad += isnan(r) ? !isnan(dec[i]) : (dec[i] != r || !signbit(dec[i]) != !signbit(r));
    }
    CHECK_MSG(bad == 0, "%ld f16 codes decode wrong", bad);
    CHECK(fqt_st_encode_f32(FQT_ST_F16, dec, N, enc) == FQT_OK);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += isnan(dec[i]) ? !((enc[i] & 0x7fff) > 0x7c00 && (enc[i] & 0x8000) == (i & 0x8000))
                             : enc[i] != i;
    CHECK_MSG(bad == 0, "%ld f16 codes do not round-trip", bad);
    bad = 0;
    for (int c = 0; c < 0x7bff; c++) { /* every positive neighbour pair, subnormals included */
        double lo = f16_ref((uint16_t)c), hi = f16_ref((uint16_t)(c + 1));
        float in[3] = {(float)((lo + hi) / 2), nextafterf((float)((lo + hi) / 2), INFINITY),
                       nextafterf((float)((lo + hi) / 2), 0.0f)};
        uint16_t r[3];
        fqt_st_encode_f32(FQT_ST_F16, in, 3, r);
        bad += r[0] != ((c & 1) ? c + 1 : c) || r[1] != c + 1 || r[2] != c;
    }
    CHECK_MSG(bad == 0, "%ld f16 midpoints round wrong", bad);
    float edge[6] = {65519.99f, 65520.0f, 1e10f, ldexpf(1.0f, -25), ldexpf(1.5f, -25), -1e-30f};
    uint16_t re[6];
    fqt_st_encode_f32(FQT_ST_F16, edge, 6, re);
    CHECK(re[0] == 0x7bff && re[1] == 0x7c00 && re[2] == 0x7c00);
    CHECK(re[3] == 0x0000 && re[4] == 0x0001 && re[5] == 0x8000);
    CHECK(fqt_st_encode_f32(FQT_ST_I32, edge, 1, re) == FQT_ERR_ARG);
    fqt_st_close(f);
out:
    unlink(p);
    free(codes);
    free(dec);
    free(enc);
}

/* ---- atomic writes ---------------------------------------------------------------------- */

static void test_atomic(void) {
    float a[256], b[300];
    for (int i = 0; i < 256; i++) a[i] = (float)i;
    for (int i = 0; i < 300; i++) b[i] = -(float)i;
    const char *p = path_in("atomic.safetensors");
    const fqt_st_tensor ta[] = {{"a", FQT_ST_F32, 1, {256}, a}};
    const fqt_st_tensor tb[] = {{"b0", FQT_ST_F32, 2, {10, 10}, b},
                                {"b1", FQT_ST_F32, 1, {200}, b + 100}};
    CHECK(fqt_st_write(p, ta, 1, NULL) == FQT_OK);
    size_t n0 = 0;
    unsigned char *orig = slurp(p, &n0);

    /* Fail at every interesting point of the new file: before anything, inside the length,
     * inside the header, between tensors, inside the second tensor, at the last byte. */
    const int64_t fail_at[] = {0, 3, 8, 20, 64, 150, 500, 8 + 1000, 1200};
    for (size_t k = 0; k < sizeof fail_at / sizeof fail_at[0]; k++) {
        fqt_st_test_fail_at_byte = fail_at[k];
        fqt_status st = fqt_st_write(p, tb, 2, NULL);
        fqt_st_test_fail_at_byte = -1;
        CHECK_MSG(st == FQT_ERR_IO, "fail at %lld: %s", (long long)fail_at[k], fqt_status_str(st));
        CHECK_MSG(!strncmp(fqt_last_error(), p, strlen(p)), "%s", fqt_last_error());
        CHECK(strstr(fqt_last_error(), "No space left") != NULL);
        size_t n1 = 0;
        unsigned char *now = slurp(p, &n1);
        CHECK_MSG(now && n1 == n0 && !memcmp(now, orig, n0), "fail at %lld: file changed",
                  (long long)fail_at[k]);
        free(now);
        CHECK_MSG(count_dir_entries() == 1, "fail at %lld: temporary file left",
                  (long long)fail_at[k]);
    }
    /* The same write without the hook succeeds and replaces the file. */
    CHECK(fqt_st_write(p, tb, 2, NULL) == FQT_OK);
    fqt_st_file *f = NULL;
    CHECK(fqt_st_open(p, &f) == FQT_OK && f && fqt_st_count(f) == 2 && !fqt_st_find(f, "a"));
    /* Replacing a file while it is open leaves the open mapping valid. */
    CHECK(fqt_st_write(p, ta, 1, NULL) == FQT_OK);
    float got[200];
    if (f) {
        CHECK(fqt_st_read_f32(f, "b1", 1, (int64_t[]){200}, got) == FQT_OK && got[5] == -105.0f);
        fqt_st_close(f);
    }

    /* Bad arguments are refused before anything is created. */
    const fqt_st_tensor dup[] = {{"x", FQT_ST_F32, 1, {2}, a}, {"x", FQT_ST_F32, 1, {2}, a}};
    CHECK(fqt_st_write(p, dup, 2, NULL) == FQT_ERR_ARG);
    CHECK(strstr(fqt_last_error(), p) && strstr(fqt_last_error(), "'x' given twice"));
    const fqt_st_tensor badt[][1] = {
        {{"", FQT_ST_F32, 1, {2}, a}},
        {{"__metadata__", FQT_ST_F32, 1, {2}, a}},
        {{"y", FQT_ST_DTYPE_COUNT, 1, {2}, a}},
        {{"y", FQT_ST_F32, 5, {2}, a}},
        {{"y", FQT_ST_F32, -1, {2}, a}},
        {{"y", FQT_ST_F32, 1, {-2}, a}},
        {{"y", FQT_ST_F32, 1, {2}, NULL}},
        {{"y", FQT_ST_I64, 3, {INT64_MAX / 4, 2, 2}, a}},
    };
    for (size_t k = 0; k < sizeof badt / sizeof badt[0]; k++) {
        CHECK_MSG(fqt_st_write(p, badt[k], 1, NULL) == FQT_ERR_ARG, "bad tensor %zu", k);
        CHECK_MSG(strstr(fqt_last_error(), p) != NULL, "%s", fqt_last_error());
    }
    const char *odd_meta[] = {"k", NULL};
    const char *dup_meta[] = {"k", "1", "k", "2", NULL};
    const char *empty_key[] = {"", "1", NULL};
    CHECK(fqt_st_write(p, ta, 1, odd_meta) == FQT_ERR_ARG);
    CHECK(fqt_st_write(p, ta, 1, dup_meta) == FQT_ERR_ARG);
    CHECK(fqt_st_write(p, ta, 1, empty_key) == FQT_ERR_ARG);
    CHECK(count_dir_entries() == 1);

    /* A directory that does not exist: nothing is created, the message names the path. */
    const char *nodir = path_in("no/such/dir/x.safetensors");
    CHECK(fqt_st_write(nodir, ta, 1, NULL) == FQT_ERR_IO);
    CHECK(!strncmp(fqt_last_error(), nodir, strlen(nodir)));
    CHECK(count_dir_entries() == 1);

    /* The rename fails (a non-empty directory is in the way): the temporary is removed. */
    const char *blocker = path_in("blocker");
    mkdir(blocker, 0755);
    const char *inside = path_in("blocker/keep");
    put_file(inside, "k", 1);
    CHECK(fqt_st_write(blocker, ta, 1, NULL) == FQT_ERR_IO);
    CHECK(strstr(fqt_last_error(), "rename") != NULL);
    CHECK(count_dir_entries() == 2); /* atomic.safetensors and blocker, no temporary */
    unlink(inside);
    rmdir(blocker);

    /* A relative path (the directory to sync is "."). */
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) && !chdir(dir)) {
        CHECK(fqt_st_write("rel.safetensors", ta, 1, NULL) == FQT_OK);
        CHECK(file_size("rel.safetensors") > 0);
        unlink("rel.safetensors");
        CHECK(chdir(cwd) == 0);
    }
    free(orig);
    unlink(p);
}

/* ---- reader validation ------------------------------------------------------------------ */

static void test_truncation(void) {
    float w[64] = {0};
    const fqt_st_tensor t[] = {{"w", FQT_ST_F32, 2, {8, 8}, w}, {"v", FQT_ST_F32, 1, {1}, w}};
    const char *meta[] = {"k", "v", NULL};
    const char *p = path_in("full.safetensors");
    CHECK(fqt_st_write(p, t, 2, meta) == FQT_OK);
    size_t n = 0;
    unsigned char *full = slurp(p, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)full[i] << (8 * i);
    const size_t cuts[] = {0, 1, 7, 8, 9, 8 + (size_t)hl / 2, 8 + (size_t)hl - 1, 8 + (size_t)hl,
                           8 + (size_t)hl + 1, 8 + (size_t)hl + 255, n - 4, n - 1};
    const char *why[] = {"too short", "too short", "too short", "exceeds", "exceeds", "exceeds",
                         "exceeds", "past", "past", "past", "past", "past"};
    const char *q = path_in("cut.safetensors");
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        put_file(q, full, cuts[k]);
        expect_bad(q, FQT_ERR_FORMAT, why[k], -(int)cuts[k]); /* tag: -cut */
    }
    /* Extra bytes after the data are not an error. */
    unsigned char *more = calloc(n + 16, 1);
    memcpy(more, full, n);
    put_file(q, more, n + 16);
    fqt_st_file *f = NULL;
    CHECK(fqt_st_open(q, &f) == FQT_OK);
    fqt_st_close(f);
    free(more);
    free(full);
    unlink(q);
    unlink(p);
}

static void test_bad_headers(void) {
    char want[512];
    const char *p;

    p = path_in("missing.safetensors");
    EXPECT_BAD(p, FQT_ERR_IO, "cannot open");
    EXPECT_BAD(dir, FQT_ERR_IO, "not a regular file");

    /* Header length beyond the file, and beyond the 100 MB limit (a sparse file). */
    p = path_in("hlen.safetensors");
    {
        unsigned char b[24] = {0xe8, 0x03}; /* 1000 */
        put_file(p, b, sizeof b);
        EXPECT_BAD(p, FQT_ERR_FORMAT, "header length 1000 exceeds the 16 bytes");
        unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        put_file(p, huge, 8 + 0);
        EXPECT_BAD(p, FQT_ERR_FORMAT, "exceeds");
        uint64_t big = FQT_ST_MAX_HEADER + 1ull;
        for (int i = 0; i < 8; i++) b[i] = (unsigned char)(big >> (8 * i));
        put_file(p, b, 8);
        CHECK(truncate(p, (off_t)big + 100) == 0);
        EXPECT_BAD(p, FQT_ERR_FORMAT, "exceeds the limit of 100000000 bytes");
        unlink(p);
    }

    EXPECT_BAD(bad_raw("e1", "", 0), FQT_ERR_FORMAT, "not valid JSON");
    EXPECT_BAD(bad_raw("e2", "{\"a\": ", 0), FQT_ERR_FORMAT, "not valid JSON");
    EXPECT_BAD(bad_raw("e3", "{\"a\":{}} x", 0), FQT_ERR_FORMAT, "not valid JSON");
    EXPECT_BAD(bad_raw("e4", "[1, 2]", 0), FQT_ERR_FORMAT, "header is not a JSON object");
    EXPECT_BAD(bad_raw("e5", "{\"w\": 3}", 0), FQT_ERR_FORMAT, "tensor 'w': entry is not a JSON object");

    /* dtype */
    EXPECT_BAD(bad_raw("d1", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
               FQT_ERR_FORMAT, "tensor 'w': unknown dtype \"Q4\"");
    EXPECT_BAD(bad_raw("d2", "{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
               FQT_ERR_FORMAT, "unknown dtype \"f32\"");
    EXPECT_BAD(bad_raw("d3", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
               FQT_ERR_FORMAT, "tensor 'w': missing or non-string \"dtype\"");
    EXPECT_BAD(bad_raw("d4", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
               FQT_ERR_FORMAT, "non-string \"dtype\"");

    /* shape */
    EXPECT_BAD(bad_raw("s1", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1),
               FQT_ERR_FORMAT, "tensor 'w': missing or non-array \"shape\"");
    EXPECT_BAD(bad_raw("s2", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0),
               FQT_ERR_FORMAT, "shape[0] is not a non-negative integer");
    EXPECT_BAD(bad_raw("s3", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1.5],\"data_offsets\":[0,1]}}", 1),
               FQT_ERR_FORMAT, "shape[1] is not a non-negative integer");
    EXPECT_BAD(bad_raw("s4", "{\"w\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2),
               FQT_ERR_FORMAT, "shape[0] is not a non-negative integer");
    EXPECT_BAD(bad_raw("s5", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                             "\"data_offsets\":[0,1]}}", 1),
               FQT_ERR_FORMAT, "shape has 9 dimensions, at most 8");
    EXPECT_BAD(bad_raw("s6", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                             "\"data_offsets\":[0,0]}}", 0),
               FQT_ERR_FORMAT, "overflows");
    EXPECT_BAD(bad_raw("s7", "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
                             "\"data_offsets\":[0,0]}}", 0),
               FQT_ERR_FORMAT, "shape[0] is not a non-negative integer");

    /* data_offsets */
    EXPECT_BAD(bad_raw("o1", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1),
               FQT_ERR_FORMAT, "tensor 'w': \"data_offsets\" must be [begin, end]");
    EXPECT_BAD(bad_raw("o2", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1),
               FQT_ERR_FORMAT, "\"data_offsets\" must be [begin, end]");
    EXPECT_BAD(bad_raw("o3", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 1),
               FQT_ERR_FORMAT, "\"data_offsets\" must be [begin, end]");
    EXPECT_BAD(bad_raw("o4", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,1]}}", 4),
               FQT_ERR_FORMAT, "tensor 'w': data_offsets [2, 1] have begin > end");
    EXPECT_BAD(bad_raw("o5", "{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 7),
               FQT_ERR_FORMAT, "tensor 'w': data_offsets [0, 8] end past the 7-byte data section");
    p = bad_raw("model.safetensors",
                "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[768],\"data_offsets\":[0,100]}}",
                100);
    snprintf(want, sizeof want, "%s: tensor 'model.norm.weight': data_offsets [0, 100] hold 100 "
             "bytes but shape [768] of F32 needs 3072", p);
    EXPECT_BAD(p, FQT_ERR_FORMAT, want);
    EXPECT_BAD(bad_raw("o7", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 8),
               FQT_ERR_FORMAT, "hold 4 bytes but shape [2, 2] of BF16 needs 8");
    EXPECT_BAD(bad_raw("o8", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                             "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[3,7]}}", 8),
               FQT_ERR_FORMAT, "tensors 'a' and 'b' overlap (data_offsets [0, 4] and [3, 7])");
    /* Overlap with a tensor that is not the previous one by offset. */
    EXPECT_BAD(bad_raw("o9", "{\"big\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                             "\"s1\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]},"
                             "\"s2\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[5,7]}}", 8),
               FQT_ERR_FORMAT, "tensors 'big' and 's");
    EXPECT_BAD(bad_raw("o10", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                              "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 8),
               FQT_ERR_FORMAT, "overlap");

    /* Names and metadata */
    EXPECT_BAD(bad_raw("n1", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                             "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8),
               FQT_ERR_FORMAT, "tensor 'a' appears twice in the header");
    EXPECT_BAD(bad_raw("m1", "{\"__metadata__\":[1]}", 0),
               FQT_ERR_FORMAT, "\"__metadata__\" is not a JSON object");
    EXPECT_BAD(bad_raw("m2", "{\"__metadata__\":{\"step\":5}}", 0),
               FQT_ERR_FORMAT, "\"__metadata__\" value of 'step' is not a string");
    EXPECT_BAD(bad_raw("m3", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0),
               FQT_ERR_FORMAT, "\"__metadata__\" key 'k' appears twice");
    EXPECT_BAD(bad_raw("m4", "{\"__metadata__\":{},\"__metadata__\":{}}", 0),
               FQT_ERR_FORMAT, "\"__metadata__\" appears twice");

    /* Accepted: gaps, empty tensors anywhere (even inside another), metadata anywhere,
     * unaligned offsets, unknown extra fields, an empty header object. */
    p = bad_raw("ok1", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[2,2]},"
                       "\"__metadata__\":{\"x\":\"y\"},"
                       "\"f\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[5,7],\"extra\":1}}",
                8);
    fqt_st_file *f = NULL;
    CHECK_MSG(fqt_st_open(p, &f) == FQT_OK, "%s", fqt_last_error());
    if (f) {
        CHECK(fqt_st_count(f) == 3 && !strcmp(fqt_st_meta(f, "x"), "y"));
        const fqt_st_info *a = fqt_st_find(f, "a"), *fi = fqt_st_find(f, "f");
        CHECK(a && ((const unsigned char *)a->data)[0] == 1 && a->nbytes == 2);
        CHECK(fi && fi->ndim == 0 && fi->numel == 1 && fi->nbytes == 2);
        CHECK(fqt_st_at(f, 2) == fi);
        fqt_st_close(f);
    }
    p = bad_raw("ok2", "{}", 0);
    CHECK(fqt_st_open(p, &f) == FQT_OK && fqt_st_count(f) == 0);
    fqt_st_close(f);
}

static void remove_all(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_in(e->d_name));
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/fqt_st_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_conversions();
    test_atomic();
    test_truncation();
    test_bad_headers();
    remove_all();
    return check_finish();
}
