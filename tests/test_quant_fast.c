/* tests/test_quant_fast.c — the quantizer's fast paths against its generic path, bit for bit.
 *
 * fqt_quantize without statistics takes a fast path (the scalar E2M1 / bf16 / fp32 loops, or
 * the AVX2 / AVX-512 kernels of src/formats/quant_x86.c, chosen with fqt_quant_set_isa);
 * with statistics it takes the generic per-element scalar path (codec.h), the oracle. For
 * every instruction set this CPU runs, every E2M1 format and the bf16/fp32 paths, both
 * roundings and both axes, on shapes that leave partial blocks, odd columns and rows that
 * start off a 4-element Philox boundary, and on data with ties, saturation, zeros,
 * subnormals and NaN/Inf: identical codes, scales, tensor scale, status and non-finite
 * count (memcmp). The vector kernels are also checked one by one against the scalar
 * codec: amax with NaN/Inf anywhere, E2M1 RNE/SR on every length, the Philox bits
 * across a 2^32 carry of the low counter word, and the transpose tile on every shape. */
#include "check.h"
#include "fqt/formats.h"
#include "formats/codec.h"
#include "formats/quant_vec.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static uint64_t lcg = 12345;
static double urand(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) * 0x1p-53;
}

static float sample(int64_t i, int with_nonfinite) {
    double u = urand();
    switch (i % 9) {
    case 0: return (float)((u - 0.5) * 8.0);
    case 1: return (float)(0.25 * (double)((lcg >> 20) % 25)) * ((lcg >> 50) & 1 ? -1.0f : 1.0f); /* E2M1 midpoints */
    case 2: return (lcg >> 40) & 1 ? 0.0f : -0.0f;
    case 3: return (float)((u - 0.5) * 1e-39); /* subnormal */
    case 4: return (float)((u - 0.5) * 1e4);   /* outliers */
    case 5: return with_nonfinite && (lcg >> 30) % 97 == 0 ? ((lcg >> 45) & 1 ? NAN : -INFINITY) : (float)u;
    default: return (float)(u - 0.5);
    }
}

static void check_quantizer(int64_t R, int64_t C, int with_nonfinite) {
    float *x = malloc(sizeof(float) * (size_t)(R * C + 1));
    for (int64_t i = 0; i < R * C; i++) x[i] = sample(i, with_nonfinite);
    const char *fmts[] = {"nvfp4", "mxfp4", "nvfp4-2d", "e2m1:b32:e8m0:ceil", "e2m1:b16:ue4m3",
                          "e2m1:b15:ue4m3:tensor", "e2m1:b8x4:e8m0", "bf16", "fp32", "fp8", "mxfp8",
                          "fp8-w", "e4m3:b7:fp32", "e4m3:b32:e8m0:ceil"};
    const int nf = (int)(sizeof fmts / sizeof fmts[0]);
    uint32_t ts_scalar[16][2][2]; /* the scalar ISA's tensor scale (its amax is a plain loop) */
    for (int isa = FQT_ISA_SCALAR; isa < FQT_ISA_COUNT; isa++) {
        if (!fqt_quant_isa_supported((fqt_isa)isa)) continue;
        for (int f = 0; f < nf; f++)
            for (int rnd = 0; rnd < 2; rnd++)
                for (int ax = 0; ax < 2; ax++) {
                    fqt_format fm;
                    CHECK(fqt_format_parse(fmts[f], &fm) == FQT_OK);
                    int64_t qr = ax ? C : R, qc = ax ? R : C;
                    fqt_qtensor a, b;
                    CHECK(fqt_qtensor_alloc(&a, &fm, qr, qc) == FQT_OK);
                    CHECK(fqt_qtensor_alloc(&b, &fm, qr, qc) == FQT_OK);
                    fqt_qstats st;
                    memset(&st, 0, sizeof st);
                    CHECK(fqt_quant_set_isa((fqt_isa)isa) == FQT_OK);
                    fqt_status sa = fqt_quantize(&a, x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 99, NULL);
                    fqt_status sb = fqt_quantize(&b, x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 99, &st);
                    const char *in = fqt_isa_name((fqt_isa)isa);
                    CHECK_MSG(sa == sb && a.n_nonfinite == b.n_nonfinite, "%s %s %lldx%lld: status", in,
                              fmts[f], (long long)R, (long long)C);
                    CHECK_MSG(memcmp(a.codes, b.codes, (size_t)(qr * a.row_bytes)) == 0,
                              "%s %s rounding %d axis %d %lldx%lld: codes differ", in, fmts[f], rnd, ax,
                              (long long)R, (long long)C);
                    size_t sbytes = fm.scale == FQT_SCALE_FP32 ? 4 : 1;
                    CHECK_MSG(!a.scales || memcmp(a.scales, b.scales, (size_t)(a.scale_rows * a.scale_cols) * sbytes) == 0,
                              "%s %s rounding %d axis %d: scales differ", in, fmts[f], rnd, ax);
                    CHECK_BITS(a.tensor_scale, b.tensor_scale);
                    if (isa == FQT_ISA_SCALAR) ts_scalar[f][rnd][ax] = check_bits_(a.tensor_scale);
                    else CHECK_MSG(check_bits_(a.tensor_scale) == ts_scalar[f][rnd][ax],
                                   "%s %s: tensor scale differs from the scalar ISA's", in, fmts[f]);
                    CHECK(st.n == R * C);
                    fqt_qtensor_free(&a);
                    fqt_qtensor_free(&b);
                }
    }
    fqt_quant_set_isa(FQT_ISA_AUTO);
    free(x);
}

static void check_kernels(const fqt_quant_vec *v, const char *name) {
    /* amax: NaN/Inf at every position of every length up to 40. */
    float x[64];
    for (int n = 0; n <= 40; n++)
        for (int bad = -1; bad < n; bad++) {
            for (int i = 0; i < n; i++) x[i] = sample(i + n, 0);
            if (bad >= 0) x[bad] = bad & 1 ? NAN : INFINITY;
            float ref = 0.0f;
            int64_t refbad = 0, gotbad;
            for (int i = 0; i < n; i++) {
                float a = fabsf(x[i]);
                if (!(a <= FLT_MAX)) refbad++;
                else if (a > ref) ref = a;
            }
            float got = v->amax(x, n, &gotbad);
            CHECK_MSG(check_bits_(got) == check_bits_(ref) && gotbad == refbad, "%s amax n=%d bad=%d", name, n, bad);
        }
    /* E2M1 on every even length up to 64, with a sentinel byte after the output. */
    const float muls[] = {1.0f, 0.37f, 0x1p-100f, 0x1p100f, 0.0f};
    for (int n = 0; n <= 64; n += 2)
        for (int m = 0; m < 5; m++) {
            uint32_t rnd[64];
            for (int i = 0; i < n; i++) {
                x[i] = sample(i * 3 + n, 1);
                rnd[i] = (uint32_t)(urand() * 4294967296.0);
            }
            uint8_t got[34], want[34];
            for (int sr = 0; sr < 2; sr++) {
                memset(got, 0xA5, sizeof got);
                memset(want, 0xA5, sizeof want);
                for (int i = 0; i < n; i += 2) {
                    float a = x[i] * muls[m], b = x[i + 1] * muls[m];
                    want[i / 2] = sr ? (uint8_t)(fqt_e2m1_sr_i(a, rnd[i]) | (fqt_e2m1_sr_i(b, rnd[i + 1]) << 4))
                                     : (uint8_t)(fqt_e2m1_rne_i(a) | (fqt_e2m1_rne_i(b) << 4));
                }
                if (sr) v->e2m1_sr(x, n, muls[m], rnd, got);
                else v->e2m1_rne(x, n, muls[m], got);
                CHECK_MSG(memcmp(got, want, sizeof got) == 0, "%s e2m1 %s n=%d mul=%g", name,
                          sr ? "sr" : "rne", n, (double)muls[m]);
            }
        }
    /* Transpose tiles of every shape up to 19x19 (8x8 blocks and edges), bit for bit. */
    {
        float src[19 * 23], got[19 * 21], want[19 * 21];
        for (int i = 0; i < 19 * 23; i++) src[i] = sample(i, 1);
        for (int nr = 0; nr <= 19; nr++)
            for (int nc = 0; nc <= 19; nc++) {
                memset(got, 0x5A, sizeof got);
                memset(want, 0x5A, sizeof want);
                for (int c = 0; c < nc; c++)
                    for (int r = 0; r < nr; r++) want[c * 21 + r] = src[r * 23 + c];
                v->transpose_tile(src, 23, got, 21, nr, nc);
                CHECK_MSG(memcmp(got, want, sizeof got) == 0, "%s transpose %dx%d", name, nr, nc);
            }
    }
    /* Philox: block counts around the vector width, first blocks across the low-word carry. */
    const uint64_t starts[] = {0, 5, 0xFFFFFFF0ull, 0xFFFFFFFFull, 0x1234567890ull};
    for (int s = 0; s < 5; s++)
        for (int nb = 0; nb <= 40; nb += 3) {
            uint32_t got[4 * 41 + 1], want[4 * 41 + 1];
            got[4 * nb] = want[4 * nb] = 0xDEADBEEF;
            for (int b = 0; b < nb; b++) fqt_sr_block4(0x0123456789ABCDEFull, 0xFEDCBA98ull, starts[s] + (uint64_t)b, want + 4 * b);
            v->philox(0x0123456789ABCDEFull, 0xFEDCBA98ull, starts[s], nb, got);
            CHECK_MSG(memcmp(got, want, sizeof(uint32_t) * (size_t)(4 * nb + 1)) == 0,
                      "%s philox start %llx n %d", name, (unsigned long long)starts[s], nb);
        }
    /* Block amax of a row: block sizes with and without a fast path, partial last blocks,
     * NaN/Inf in some blocks. */
    {
        float row[200];
        float am2[40];
        uint8_t bad2[40];
        const int64_t blks[] = {16, 32, 15, 7, 1};
        for (int bi = 0; bi < 5; bi++)
            for (int n = 0; n <= 200; n += n < 40 ? 1 : 23) {
                if ((n + blks[bi] - 1) / blks[bi] > 40) continue;
                for (int i = 0; i < n; i++) row[i] = sample(i * 7 + n, 0);
                int64_t want_nf = 0;
                for (int i = 0; i < n; i += 13)
                    if ((i / 13) % 3 == 1) row[i] = (i & 1) ? NAN : -INFINITY;
                int ok = 1;
                const int64_t got_nf = v->block_amax(row, n, blks[bi], am2, bad2);
                for (int64_t j = 0, c0 = 0; c0 < n; j++, c0 += blks[bi]) {
                    float ref = 0.0f;
                    int64_t rb = 0;
                    for (int64_t c = c0; c < n && c < c0 + blks[bi]; c++) {
                        float a = fabsf(row[c]);
                        if (!(a <= FLT_MAX)) rb++;
                        else if (a > ref) ref = a;
                    }
                    want_nf += rb;
                    ok &= check_bits_(am2[j]) == check_bits_(ref) && bad2[j] == (rb != 0);
                }
                CHECK_MSG(ok && got_nf == want_nf, "%s block_amax blk %lld n %d", name, (long long)blks[bi], n);
            }
    }
    /* E4M3 elements against fqt_e4m3_rne_i / fqt_e4m3_sr_i: every code value, the midpoints
     * (ties) and their neighbours, 448 and above, float subnormals, NaN, +-Inf, both signs,
     * through mul and through div, every length up to 40 and a long one (the tails). */
    {
        enum { NE = 1100 };
        static float ex[NE];
        static uint32_t er[NE];
        static uint8_t eg[NE + 1], ew[NE];
        int ne = 0;
        for (uint32_t c = 0; c < 0x7F; c++) {
            const float lo = fqt_e4m3_dec_i((uint8_t)c), hi = c < 0x7E ? fqt_e4m3_dec_i((uint8_t)(c + 1)) : 480.0f;
            const float mid = 0.5f * (lo + hi), sg = (c & 1) ? -1.0f : 1.0f;
            ex[ne++] = sg * lo;
            ex[ne++] = sg * mid;
            ex[ne++] = sg * nextafterf(mid, 0.0f);
            ex[ne++] = -sg * nextafterf(mid, INFINITY);
        }
        const float sp[] = {0.0f, -0.0f, 0x1p-149f, -0x1p-140f, 448.0f, 449.0f, 464.0f, 500.0f, 1e30f,
                            3.4028235e38f, INFINITY, -INFINITY, NAN, -NAN};
        for (int i = 0; i < 14; i++) ex[ne++] = sp[i];
        while (ne < NE) ex[ne++] = (float)((urand() - 0.5) * 1000.0) * ldexpf(1.0f, (int)(urand() * 20) - 14);
        for (int i = 0; i < NE; i++) er[i] = (uint32_t)(urand() * 4294967296.0);
        const float md[][2] = {{1.0f, 0.0f}, {0.37f, 0.0f}, {0x1p-3f, 0.0f}, {0.0f, 3.0f}, {0.0f, 0.01f}};
        for (int t = 0; t < 5; t++)
            for (int n = 0; n <= NE; n = n < 40 ? n + 1 : NE + 1) {
                const int len = n > NE ? NE : n;
                for (int sr = 0; sr < 2; sr++) {
                    eg[len] = 0xA5;
                    v->e4m3(ex, len, md[t][0], md[t][1], sr ? er : NULL, eg);
                    for (int i = 0; i < len; i++) {
                        const float x1 = md[t][1] != 0.0f ? ex[i] / md[t][1] : ex[i] * md[t][0];
                        ew[i] = sr ? fqt_e4m3_sr_i(x1, er[i]) : fqt_e4m3_rne_i(x1);
                    }
                    CHECK_MSG(memcmp(eg, ew, (size_t)len) == 0 && eg[len] == 0xA5, "%s e4m3 sr %d case %d n %d",
                              name, sr, t, len);
                }
                if (n > NE) break;
            }
    }
    /* UE4M3 block scales against fqt_block_scale_i: every E4M3 grid point, the midpoints
     * between neighbours (ties) and one float either side of them, zero, float subnormals,
     * FLT_MAX, random magnitudes; tensor scales that make t subnormal, saturate at 448 and
     * overflow to +Inf; every length up to 40 (the tails). */
    enum { NA = 2048 };
    static float am[NA];
    int na = 0;
    for (uint32_t c = 0; c < 0x7F && na + 4 < NA; c++) {
        const float lo = fqt_ue4m3_dec_i((uint8_t)c), hi = fqt_ue4m3_dec_i((uint8_t)(c + 1));
        const float mid = c + 1 < 0x7F ? 0.5f * (lo + hi) : 480.0f;
        am[na++] = lo * 6.0f;
        am[na++] = mid * 6.0f;
        am[na++] = nextafterf(mid * 6.0f, 0.0f);
        am[na++] = nextafterf(mid * 6.0f, INFINITY);
    }
    const float specials[] = {0.0f, 0x1p-149f, 0x1p-130f, 1e-30f, 3.4028235e38f, 1e38f, 2688.0f, 6.0f};
    for (int i = 0; i < 8; i++) am[na++] = specials[i];
    while (na < NA) am[na++] = (float)(urand() * 10.0) * ldexpf(1.0f, (int)(urand() * 60) - 40);
    const float tscales[][2] = {{1.0f, 1.0f}, {2688.0f / 7.5f, 7.5f / 2688.0f}, {0x1p100f, 0x1p-100f},
                                {1e-20f, 1e20f}, {3.4028235e38f, 1.0f / 3.4028235e38f}};
    for (int t = 0; t < 5; t++)
        for (int n = 0; n <= NA; n = n < 40 ? n + 1 : n * 2 > NA ? NA + 1 : n * 2) {
            const int len = n > NA ? NA : n;
            static uint8_t code[NA + 1];
            static float mul[NA + 1];
            code[len] = 0xA5;
            mul[len] = -1.0f;
            v->ue4m3_scales(am, len, 6.0f, tscales[t][0], tscales[t][1], code, mul);
            int bad = code[len] != 0xA5 || mul[len] != -1.0f;
            for (int j = 0; j < len && !bad; j++) {
                uint8_t want;
                fqt_block_map m = fqt_block_scale_i(FQT_SCALE_UE4M3, false, 6.0f, 2, am[j], tscales[t][0],
                                                    tscales[t][1], &want);
                if (code[j] != want || check_bits_(mul[j]) != check_bits_(m.mul)) {
                    bad = 1;
                    printf("  %s ue4m3 amax %a s_enc %a: code %02x/%02x mul %a/%a\n", name, am[j],
                           tscales[t][0], code[j], want, mul[j], m.mul);
                }
            }
            CHECK_MSG(!bad, "%s ue4m3 scales, tensor scale %d, n %d", name, t, len);
            if (n > NA) break;
        }
}

int main(void) {
    printf("quantizer paths here:");
    for (int i = FQT_ISA_SCALAR; i < FQT_ISA_COUNT; i++)
        if (fqt_quant_isa_supported((fqt_isa)i)) printf(" %s", fqt_isa_name((fqt_isa)i));
    printf("; auto = %s\n", fqt_isa_name(fqt_quant_get_isa()));
    CHECK(fqt_quant_set_isa(FQT_ISA_COUNT) == FQT_ERR_ARG);
    if (fqt_quant_isa_supported(FQT_ISA_AVX2)) check_kernels(fqt_quant_vec_avx2, "avx2");
    if (fqt_quant_isa_supported(FQT_ISA_AVX512)) check_kernels(fqt_quant_vec_avx512, "avx512");
    /* rows start at indices that are not multiples of 4; odd and tiny shapes */
    const int64_t shapes[][2] = {{67, 98}, {5, 33}, {16, 16}, {1, 1}, {3, 130}, {33, 200}, {2, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        check_quantizer(shapes[s][0], shapes[s][1], 0);
        check_quantizer(shapes[s][0], shapes[s][1], 1);
    }
    return check_finish();
}
