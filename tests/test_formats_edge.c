/* tests/test_formats_edge.c — the generic formats at the edges of their range (issue 13, items
 * 11-14): E5M2 elements saturating inside blocks (§2.3, §5.1), the UE4M3 tensor scale for
 * every element type (§5.3), tiny tensors (§5.3), E8M0 :ceil near FLT_MAX (§5.2), FP16
 * stochastic rounding (§2.6) and what `fqt qdq` says about non-finite inputs (§5.1).
 *
 * Expected codes and values are worked out by hand in the comments; the properties compare a
 * tensor with itself scaled by a power of two. Not for: the presets' ordinary examples
 * (test_formats_block.c) or SR statistics in general (test_sr.c). */
#include "check.h"
#include "fqt/formats.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static fqt_format fmt(const char *s) {
    fqt_format f;
    memset(&f, 0, sizeof f);
    CHECK_MSG(fqt_format_parse(s, &f) == FQT_OK, "parse \"%s\": %s", s, fqt_last_error());
    return f;
}

static unsigned code_at(const fqt_qtensor *q, int64_t r, int64_t c) {
    if (fqt_elem_bits(q->fmt.elem) == 4) return (q->codes[r * q->row_bytes + c / 2] >> (4 * (c & 1))) & 0xFu;
    if (fqt_elem_bits(q->fmt.elem) == 16) {
        uint16_t v;
        memcpy(&v, q->codes + r * q->row_bytes + 2 * c, 2);
        return v;
    }
    return q->codes[r * q->row_bytes + c];
}

typedef struct {
    fqt_qtensor q;
    fqt_status st;
    float *deq;
    fqt_qstats stats;
} qrun;

static qrun run(const char *name, const float *src, int64_t R, int64_t C, fqt_rounding rnd) {
    qrun r;
    memset(&r, 0, sizeof r);
    fqt_format f = fmt(name);
    CHECK(fqt_qtensor_alloc(&r.q, &f, R, C) == FQT_OK);
    r.st = fqt_quantize(&r.q, src, R, C, FQT_AXIS_ROWS, rnd, 5, 77, &r.stats);
    r.deq = malloc((size_t)(R * C) * sizeof *r.deq);
    fqt_dequantize(&r.q, r.deq);
    return r;
}
static void run_free(qrun *r) { fqt_qtensor_free(&r->q); free(r->deq); }

/* Pseudo-normal N(0,1) values, reproducible. */
static void gauss(float *x, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i += 2) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(s >> 11) + 0.5) * 0x1p-53;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(s >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

/* ---- item 11: E5M2 inside blocks saturates (§2.3, §5.1) ------------------------------------ */
static void test_e5m2_saturates(void) {
    /* The plain codec keeps IEEE overflow; the block element codec saturates finite inputs. */
    CHECK(fqt_e5m2_encode_rne(61440.0f) == 0x7C);
    CHECK(fqt_e5m2_encode_rne_sat(61440.0f) == 0x7B);
    CHECK(fqt_e5m2_encode_rne_sat(-1e30f) == 0xFB);
    CHECK(fqt_e5m2_encode_rne_sat(FLT_MAX) == 0x7B);
    CHECK(fqt_e5m2_encode_rne_sat(59391.0f) == 0x7B);
    CHECK(fqt_e5m2_encode_rne_sat(INFINITY) == 0x7C && fqt_e5m2_encode_rne_sat(-INFINITY) == 0xFC);
    CHECK(fqt_e5m2_encode_rne_sat(NAN) == 0x7E);
    CHECK(fqt_elem_encode(FQT_ELEM_E5M2, 1e6f, FQT_ROUND_RNE, 0) == 0x7B);
    /* Everywhere else the two agree: a strided sweep of all 2^32 patterns. */
    int64_t bad = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        float x;
        uint32_t w = (uint32_t)u;
        memcpy(&x, &w, 4);
        uint8_t a = fqt_e5m2_encode_rne(x), b = fqt_e5m2_encode_rne_sat(x);
        int overflow = isfinite(x) && (a & 0x7F) == 0x7C;
        bad += overflow ? b != ((a & 0x80) | 0x7B) : a != b;
    }
    CHECK_MSG(bad == 0, "e5m2 rne_sat differs from rne outside overflow %lld times", (long long)bad);

    /* e5m2:b32:e8m0, one block {1.875, 1.5, -1.875, 1.99, 0...}: amax 1.99, e = 0 - 15,
     * X = 2^-15; 1.875 * 2^15 = 61440 rounds past 57344 -> saturates 0x7B -> 57344 * 2^-15 =
     * 1.75 (it was Inf); 1.5 -> 49152 = 0x7A exact; -1.875 -> 0xFB; 1.99 -> 65208 -> 0x7B. */
    float x[32] = {1.875f, 1.5f, -1.875f, 1.99f};
    for (int rnd = 0; rnd < 2; rnd++) {
        qrun r = run("e5m2:b32:e8m0", x, 1, 32, (fqt_rounding)rnd);
        CHECK(r.st == FQT_OK && r.q.scales[0] == 127 - 15);
        CHECK_MSG(code_at(&r.q, 0, 0) == 0x7B && code_at(&r.q, 0, 1) == 0x7A &&
                  code_at(&r.q, 0, 2) == 0xFB && code_at(&r.q, 0, 3) == 0x7B,
                  "rounding %d codes %02x %02x %02x %02x", rnd, code_at(&r.q, 0, 0),
                  code_at(&r.q, 0, 1), code_at(&r.q, 0, 2), code_at(&r.q, 0, 3));
        CHECK_BITS(r.deq[0], 1.75f);
        CHECK_BITS(r.deq[1], 1.5f);
        CHECK_BITS(r.deq[2], -1.75f);
        CHECK_BITS(r.deq[3], 1.75f);
        CHECK(r.stats.n_saturated == 3 && r.stats.n_nonfinite == 0);
        CHECK(isfinite(fqt_qstats_snr_db(&r.stats)));
        run_free(&r);
    }

    /* e5m2:b16:ue4m3 (s_enc = 1): amax 154 = 1.375 * 112, 154/57344 = 1.375 * 2^-9 rounds to
     * the UE4M3 subnormal 2^-9 (0x01), inv = 512: 154 * 512 = 78848 saturates to 0x7B ->
     * 57344 * 2^-9 = 112 (it was Inf). */
    float y[16] = {154.0f, -154.0f, 56.0f};
    qrun r = run("e5m2:b16:ue4m3", y, 1, 16, FQT_ROUND_RNE);
    CHECK(r.q.scales[0] == 0x01);
    CHECK(code_at(&r.q, 0, 0) == 0x7B && code_at(&r.q, 0, 1) == 0xFB);
    CHECK_BITS(r.deq[0], 112.0f);
    CHECK_BITS(r.deq[1], -112.0f);
    CHECK_BITS(r.deq[2], 56.0f); /* 56 * 512 = 28672 = 0x77, exact */
    run_free(&r);

    /* N(0,1) with e5m2:b32:e8m0: about 1% of the values used to become Inf. */
    const int64_t R = 64, C = 256;
    float *g = malloc(sizeof(float) * R * C);
    gauss(g, R * C, 11);
    r = run("e5m2:b32:e8m0", g, R, C, FQT_ROUND_RNE);
    int64_t inf = 0;
    for (int64_t i = 0; i < R * C; i++) inf += !isfinite(r.deq[i]);
    CHECK_MSG(inf == 0 && r.st == FQT_OK, "%lld of %lld dequantized values not finite",
              (long long)inf, (long long)(R * C));
    CHECK_MSG(fqt_qstats_snr_db(&r.stats) > 20.0, "snr %.2f", fqt_qstats_snr_db(&r.stats));
    run_free(&r);
    free(g);
}

/* ---- item 12: the tensor scale is amax_t / (elem_max * 448) for every element (§5.3) ---- */
static void test_tensor_scale_general(void) {
    CHECK_BITS(fqt_tensor_scale_enc(5.25f, 6.0f), 512.0f);
    CHECK_BITS(fqt_nvfp4_tensor_scale_enc(5.25f), 512.0f);
    CHECK_BITS(fqt_tensor_scale_enc(0.875f, 1.0f), 512.0f);        /* nf4: 448 / 0.875 */
    CHECK_BITS(fqt_tensor_scale_enc(49 * 0x1p-11f, 57344.0f), 0x1p30f); /* e5m2 */
    CHECK_BITS(fqt_tensor_scale_enc(0.0f, 448.0f), 1.0f);

    /* nf4:b16:ue4m3:tensor, amax_t = 0.875: s_enc = 448 / 0.875 = 512, s_dec = 2^-9. The block
     * with the tensor's amax gets sb = UE4M3((0.875 / 1) * 512) = 448 (0x7E) — with the old
     * 6 * 448 it saturated — inv = 1 / (448 * 2^-9) = 1/0.875: 0.875 -> 1.0000001 -> 1.0
     * (0xF) -> (1 * 448) * 2^-9 = 0.875; -0.4375 -> -0.5 -> nearest -0.52507305 (0x2). */
    float x[16] = {0.875f, -0.4375f};
    qrun r = run("nf4:b16:ue4m3:tensor", x, 1, 16, FQT_ROUND_RNE);
    CHECK_BITS(r.q.tensor_scale, 0x1p-9f);
    CHECK_MSG(r.q.scales[0] == 0x7E, "scale %02x", r.q.scales[0]);
    CHECK(code_at(&r.q, 0, 0) == 0xF && code_at(&r.q, 0, 1) == 0x2);
    CHECK_BITS(r.deq[0], 0.875f);
    CHECK_BITS(r.deq[1], (-0.5250730514526367f * 448.0f) * 0x1p-9f);
    CHECK(r.stats.n_saturated == 0);
    run_free(&r);

    /* e5m2:b16:ue4m3:tensor, amax_t = 49 * 2^-11: s_enc = 57344 * 448 / amax_t = 2^30, sb =
     * UE4M3((amax_t / 57344) * 2^30) = 448 (0x7E), amax_t * inv -> 57344 (0x7B), dequantized
     * (57344 * 448) * 2^-30 = amax_t exactly. */
    float y[16] = {49 * 0x1p-11f};
    r = run("e5m2:b16:ue4m3:tensor", y, 1, 16, FQT_ROUND_RNE);
    CHECK_BITS(r.q.tensor_scale, 0x1p-30f);
    CHECK_MSG(r.q.scales[0] == 0x7E, "scale %02x", r.q.scales[0]);
    CHECK(code_at(&r.q, 0, 0) == 0x7B);
    CHECK_BITS(r.deq[0], 49 * 0x1p-11f);
    run_free(&r);

    /* On N(0,1), :tensor costs little against the same format without it (it cost 17 dB and
     * clipped 57% of the values for nf4), for every element type. */
    const int64_t R = 32, C = 256;
    float *g = malloc(sizeof(float) * R * C);
    gauss(g, R * C, 3);
    const char *el[5] = {"e2m1", "e4m3", "e5m2", "int4", "nf4"};
    for (int i = 0; i < 5; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "%s:b16:ue4m3", el[i]);
        snprintf(b, sizeof b, "%s:b16:ue4m3:tensor", el[i]);
        qrun p = run(a, g, R, C, FQT_ROUND_RNE), t = run(b, g, R, C, FQT_ROUND_RNE);
        double sp = fqt_qstats_snr_db(&p.stats), stt = fqt_qstats_snr_db(&t.stats);
        double sat = (double)t.stats.n_saturated / (double)(R * C);
        CHECK_MSG(stt > sp - 1.0 && sat < 0.05, "%s: snr %.2f dB vs %.2f without :tensor, %.1f%% saturated",
                  b, stt, sp, 100.0 * sat);
        run_free(&p);
        run_free(&t);
    }
    free(g);
}

/* ---- item 13: tiny tensors quantize like any other (§5.3) ---------------------------------- */
static void test_tiny_tensors(void) {
    /* test_formats_block's NVFP4 example times 2^-120: amax_t = 5.25 * 2^-120 < 2688 / FLT_MAX
     * (the old s_enc clamped at FLT_MAX). Now the quantizer works on x * 2^64 and gets exactly
     * the example's codes and scales; the tensor scale is 2^-9 * 2^-120 = 2^-129 (subnormal
     * but a power of two, so exact) and every value dequantizes to the example's times 2^-120. */
    float x[64] = {0};
    const float b0[5] = {5.25f, 0, -5.25f, 2.625f, 1.3125f};
    const float b1[9] = {3, 0.625f, 0.875f, 1.25f, 1.75f, 2.5f, -0.125f, -2.2f, 0.1f};
    const float b2[6] = {0.75f, 0.3f, -0.5f, 0.0625f, 0.03125f, 0.4375f};
    const float b3[3] = {3.1f, 3, 1};
    memcpy(x, b0, sizeof b0); memcpy(x + 16, b1, sizeof b1); memcpy(x + 32, b2, sizeof b2);
    memcpy(x + 48, b3, sizeof b3);
    float t[64];
    for (int k = 0; k < 64; k++) t[k] = x[k] * 0x1p-120f;
    qrun a = run("nvfp4", x, 1, 64, FQT_ROUND_RNE), b = run("nvfp4", t, 1, 64, FQT_ROUND_RNE);
    CHECK_BITS(a.q.tensor_scale, 0x1p-9f);
    CHECK_BITS(b.q.tensor_scale, 0x1p-129f);
    CHECK(b.st == FQT_OK);
    CHECK(memcmp(a.q.scales, b.q.scales, 4) == 0 && memcmp(a.q.codes, b.q.codes, 32) == 0);
    int64_t bad = 0;
    for (int k = 0; k < 64; k++) bad += u_of(b.deq[k]) != u_of(a.deq[k] * 0x1p-120f);
    CHECK_MSG(bad == 0, "tiny nvfp4: %lld values differ from the example's times 2^-120", (long long)bad);
    run_free(&a);
    run_free(&b);

    /* Property: for amax_t from 2^-20 down to 2^-100, a tensor and itself times 2^-k get the same
     * codes and block scales, and tensor scales 2^-k apart, for every element type, RNE and SR
     * (2^-64 is where the quantizer switches to x * 2^64, so both sides of it). Values
     * keep at most 8 significant bits and stay normal, so the scaled tensor is exact. */
    const int64_t R = 16, C = 64;
    float *g = malloc(sizeof(float) * R * C), *h = malloc(sizeof(float) * R * C);
    gauss(g, R * C, 7);
    for (int64_t i = 0; i < R * C; i++) {
        float v = fabsf(g[i]) < 0x1p-8f ? 0.0f : g[i];
        int e;
        float m = frexpf(v, &e);
        g[i] = ldexpf(rintf(ldexpf(m, 8)), e - 8);
    }
    const char *fm[6] = {"nvfp4", "nvfp4-2d", "e4m3:b16:ue4m3:tensor", "e5m2:b16:ue4m3:tensor",
                         "int4:b16:ue4m3:tensor", "nf4:b16:ue4m3:tensor"};
    const int ks[5] = {20, 63, 64, 65, 100};
    for (int f = 0; f < 6; f++)
        for (int rnd = 0; rnd < 2; rnd++) {
            qrun p = run(fm[f], g, R, C, (fqt_rounding)rnd);
            for (int ki = 0; ki < 5; ki++) {
                for (int64_t i = 0; i < R * C; i++) h[i] = ldexpf(g[i], -ks[ki]);
                qrun s = run(fm[f], h, R, C, (fqt_rounding)rnd);
                int same = !memcmp(p.q.codes, s.q.codes, fqt_qtensor_code_bytes(&p.q)) &&
                           !memcmp(p.q.scales, s.q.scales, fqt_qtensor_scale_bytes(&p.q));
                CHECK_MSG(same, "%s rounding %d, x * 2^-%d: codes or scales differ", fm[f], rnd, ks[ki]);
                CHECK_BITS(s.q.tensor_scale, ldexpf(p.q.tensor_scale, -ks[ki]));
                double d = fqt_qstats_snr_db(&s.stats) - fqt_qstats_snr_db(&p.stats);
                CHECK_MSG(fabs(d) < 1e-6, "%s 2^-%d: snr differs by %g dB", fm[f], ks[ki], d);
                run_free(&s);
            }
            run_free(&p);
        }

    /* Below 2688 / FLT_MAX: N(0,1) times 2^-118 and 2^-124 quantizes within 0.5 dB of the
     * unscaled tensor for every element type, and no finite input becomes NaN (E4M3 elements
     * did: the old 1 / (sbf * s_dec) overflowed) or saturates wholesale. */
    gauss(g, R * C, 9);
    for (int f = 0; f < 6; f++) {
        qrun p = run(fm[f], g, R, C, FQT_ROUND_RNE);
        for (int k = 118; k <= 124; k += 6) {
            for (int64_t i = 0; i < R * C; i++) h[i] = ldexpf(g[i], -k);
            qrun s = run(fm[f], h, R, C, FQT_ROUND_RNE);
            int64_t nan = 0;
            for (int64_t i = 0; i < R * C; i++) nan += !isfinite(s.deq[i]);
            double sp = fqt_qstats_snr_db(&p.stats), ss = fqt_qstats_snr_db(&s.stats);
            CHECK_MSG(nan == 0 && s.st == FQT_OK && ss > sp - 0.5 &&
                      s.stats.n_saturated <= p.stats.n_saturated + R * C / 100,
                      "%s times 2^-%d: %lld non-finite, snr %.2f vs %.2f dB, saturated %lld vs %lld",
                      fm[f], k, (long long)nan, ss, sp, (long long)s.stats.n_saturated,
                      (long long)p.stats.n_saturated);
            run_free(&s);
        }
        run_free(&p);
    }
    free(g);
    free(h);
}

/* ---- item 14: :ceil near FLT_MAX, FP16 SR --------------------------------------------------- */
static void test_ceil_near_flt_max(void) {
    /* e2m1:b32:e8m0:ceil, amax = FLT_MAX: ceil(log2(FLT_MAX / 6)) = 126 would decode 6 * 2^126 =
     * Inf; §5.2 clamps e to 127 - emax = 125 (code 252), FLT_MAX / 2^125 = 7.99 saturates to 6
     * -> 1.5 * 2^127; 2^127 -> 4 (code 6) exact; -1e38 -> -2.35 -> -2 (0xC) -> -2^126. */
    float x[32] = {FLT_MAX, 0x1p127f, -1e38f};
    qrun r = run("e2m1:b32:e8m0:ceil", x, 1, 32, FQT_ROUND_RNE);
    CHECK_MSG(r.q.scales[0] == 252, "scale %u", r.q.scales[0]);
    CHECK(code_at(&r.q, 0, 0) == 7 && code_at(&r.q, 0, 1) == 6 && code_at(&r.q, 0, 2) == 0xC);
    CHECK_BITS(r.deq[0], 0x1.8p127f);
    CHECK_BITS(r.deq[1], 0x1p127f);
    CHECK_BITS(r.deq[2], -0x1p126f);
    run_free(&r);
    /* Every element type, both variants, both signs, RNE and SR: finite in, finite out. */
    const char *el[5] = {"e2m1", "e4m3", "e5m2", "int4", "nf4"};
    float y[32];
    for (int k = 0; k < 32; k++) y[k] = (k & 1 ? -1.0f : 1.0f) * FLT_MAX * (1.0f - (float)k / 64.0f);
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 2; c++)
            for (int rnd = 0; rnd < 2; rnd++) {
                char name[64];
                snprintf(name, sizeof name, "%s:b32:e8m0%s", el[i], c ? ":ceil" : "");
                r = run(name, y, 1, 32, (fqt_rounding)rnd);
                int64_t bad = 0;
                for (int k = 0; k < 32; k++) bad += !isfinite(r.deq[k]);
                CHECK_MSG(bad == 0 && r.st == FQT_OK, "%s rounding %d: %lld values not finite",
                          name, rnd, (long long)bad);
                run_free(&r);
            }
}

static void test_fp16_sr(void) {
    /* 1 + 2^-11 is halfway between 1 (0x3C00) and 1 + 2^-10 (0x3C01): up iff u < 1/2. */
    const float mid = 1.0f + 0x1p-11f;
    CHECK(fqt_fp16_encode_sr(mid, 0) == 0x3C01);
    CHECK(fqt_fp16_encode_sr(mid, 0x7FFFFFFFu) == 0x3C01);
    CHECK(fqt_fp16_encode_sr(mid, 0x80000000u) == 0x3C00);
    CHECK(fqt_fp16_encode_sr(-mid, 0) == 0xBC01);
    CHECK(fqt_fp16_encode_sr(1.0f, 0) == 0x3C00);      /* representable values never move */
    CHECK(fqt_fp16_encode_sr(1.5f * 0x1p-24f, 0) == 0x0002); /* subnormal grid */
    CHECK(fqt_fp16_encode_sr(1.5f * 0x1p-24f, 0xFFFFFFFFu) == 0x0001);
    CHECK(fqt_fp16_encode_sr(65520.0f, 0) == 0x7BFF);  /* finite saturates, as E5M2 SR */
    CHECK(fqt_fp16_encode_sr(FLT_MAX, 0) == 0x7BFF);
    CHECK(fqt_fp16_encode_sr(INFINITY, 0) == 0x7C00 && fqt_fp16_encode_sr(-INFINITY, 0) == 0xFC00);
    CHECK(fqt_fp16_encode_sr(NAN, 0) == 0x7E00);
    CHECK(fqt_elem_encode(FQT_ELEM_FP16, mid, FQT_ROUND_SR, 0) == 0x3C01);

    /* The fp16 format with SR draws §4's bits per element (it silently rounded to nearest). */
    const int64_t n = 8192;
    float *x = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f + 0x1p-12f; /* a quarter of the way up */
    qrun r = run("fp16", x, 1, n, FQT_ROUND_SR);
    int64_t up = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        unsigned c = code_at(&r.q, 0, i);
        up += c == 0x3C01;
        bad += c != fqt_fp16_encode_sr(x[i], fqt_sr_bits(5, 77, (uint64_t)i));
    }
    CHECK_MSG(bad == 0, "fp16 sr: %lld codes differ from the scalar codec", (long long)bad);
    CHECK_MSG(up > n / 4 - n / 32 && up < n / 4 + n / 32, "fp16 sr: %lld of %lld up", (long long)up,
              (long long)n);
    run_free(&r);
    free(x);
}

/* ---- item 14: what `fqt qdq` says about non-finite inputs ---------------------------------- */
static int sh(const char *cmd, const char *errfile, char *err, size_t n) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, errfile);
    int st = system(full);
    FILE *f = fopen(errfile, "r");
    size_t k = f ? fread(err, 1, n - 1, f) : 0;
    err[k] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_qdq_cli(void) {
    const char *bin = getenv("FQT_BIN");
    if (!bin) {
        printf("SKIP qdq CLI: FQT_BIN not set\n");
        return;
    }
    char dir[] = "/tmp/fqt_test_edgeXXXXXX", in[256], out[256], ef[256], cmd[1500], err[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(in, sizeof in, "%s/x.f32", dir);
    snprintf(out, sizeof out, "%s/y.f32", dir);
    snprintf(ef, sizeof ef, "%s/err.txt", dir);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = 0.1f * (float)i;
    x[1] = INFINITY; x[2] = -INFINITY; x[40] = NAN;
    FILE *f = fopen(in, "wb");
    fwrite(x, 4, 64, f);
    fclose(f);
    /* bf16 has no blocks: the infinities stay infinite, the NaN stays NaN. */
    snprintf(cmd, sizeof cmd, "%s qdq --format bf16 --cols 32 %s %s", bin, in, out);
    CHECK(sh(cmd, ef, err, sizeof err) == 1);
    CHECK_MSG(!strstr(err, "blocks are NaN") && strstr(err, "1 NaN, 2 infinite") &&
              strstr(err, "stays infinite"), "bf16: %s", err);
    float y[64];
    f = fopen(out, "rb");
    CHECK(f && fread(y, 4, 64, f) == 64);
    if (f) fclose(f);
    CHECK(y[1] == INFINITY && y[2] == -INFINITY && isnan(y[40]));
    /* mxfp4 [2, 32]: both blocks hold a non-finite input; §5.1 says every value of them is NaN. */
    snprintf(cmd, sizeof cmd, "%s qdq --format mxfp4 --cols 32 %s %s", bin, in, out);
    CHECK(sh(cmd, ef, err, sizeof err) == 1);
    CHECK_MSG(strstr(err, "1 NaN, 2 infinite") && strstr(err, "§5.1") && strstr(err, "64 NaN values"),
              "mxfp4: %s", err);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    test_e5m2_saturates();
    test_tensor_scale_general();
    test_tiny_tensors();
    test_ceil_near_flt_max();
    test_fp16_sr();
    test_qdq_cli();
    return check_finish();
}
