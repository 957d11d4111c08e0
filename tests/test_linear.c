/* tests/test_linear.c — the quantized linear layer (src/core/linear.h) recomputed
 * independently, and the random Hadamard transform of the wgrad inputs.
 *
 * For each GEMM of Y = X Wᵀ the expected result is deq(Q(A)) · deq(Q(B))ᵀ, each Q made here
 * with fqt_qdq from the operand's format and rounding in the recipe, the axis of
 * docs/FORMATS.md §5.6 and the SR stream fqt_sr_stream(linear id, operand, sr_step), and the
 * product taken in double. The layer computes the same products in FP32, so per element
 *   |got - want| <= gamma_K * sum_k |a_k b_k| (+ |beta C0| terms),  gamma_K = K u / (1 - K u),
 * u = 2^-24 (Higham §3.1), with K the reduction length plus the two roundings of alpha/beta.
 * Any wrong format, axis, rounding or stream changes whole quantization steps, far above
 * that bound. Not for: the quantizers themselves (the formats tests) or the model. */
#include "check.h"
#include "core/linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The workspace the linear layers place their quantized operands in (reset after each use). */
static fqt_ws WS;

static uint64_t rng = 0x243F6A8885A308D3ull;
static double urand(void) { /* [0, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}
static float nrand(void) {
    double u1 = urand() + 0x1p-54, u2 = urand();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* [R, C] normals with per-row and per-column magnitudes spread over ~2^±4, so the block
 * scales (and the per-tensor NVFP4 scale) differ from block to block. */
static float *rand_mat(int64_t R, int64_t C) {
    float *a = malloc(sizeof(float) * (size_t)(R * C));
    float *cs = malloc(sizeof(float) * (size_t)C);
    for (int64_t j = 0; j < C; j++) cs[j] = (float)exp2(8.0 * urand() - 4.0);
    for (int64_t i = 0; i < R; i++) {
        float rs = (float)exp2(4.0 * urand() - 2.0);
        for (int64_t j = 0; j < C; j++) a[i * C + j] = nrand() * rs * cs[j];
    }
    free(cs);
    return a;
}

static float *dup(const float *a, int64_t n) {
    float *b = malloc(sizeof(float) * (size_t)n);
    memcpy(b, a, sizeof(float) * (size_t)n);
    return b;
}

/* deq(Q(src)) with operand op of spec s, as the layer must quantize it; same layout as src. */
static float *ref_qdq(const fqt_linear_spec *s, fqt_operand op, const float *src, int64_t R,
                      int64_t C, fqt_axis axis, const fqt_pass *pass, int64_t id) {
    float *d = malloc(sizeof(float) * (size_t)(R * C));
    fqt_status st = fqt_qdq(&s->op[op].fmt, src, d, R, C, axis, s->op[op].rounding, pass->seed,
                            fqt_sr_stream((uint32_t)id, (uint32_t)op, pass->sr_step), NULL);
    CHECK(st == FQT_OK);
    return d;
}

/* Compare got[M,N] with beta*C0 + sum_k A(m,k) B(n,k) where A(m,k) = a[m*sam + k*sak] etc.;
 * returns the number of elements outside the bound, and the largest error/bound ratio. */
static int64_t cmp_gemm(const float *got, const float *C0, float beta, int64_t M, int64_t N,
                        int64_t K, const float *a, int64_t sam, int64_t sak, const float *b,
                        int64_t sbn, int64_t sbk, double *worst) {
    const double u = 0x1p-24, g = (double)(K + 2) * u / (1.0 - (double)(K + 2) * u);
    int64_t bad = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0, sa = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)a[m * sam + k * sak] * (double)b[n * sbn + k * sbk];
                s += p;
                sa += fabs(p);
            }
            double c0 = beta != 0.0f ? (double)beta * C0[m * N + n] : 0.0;
            double want = s + c0, tol = g * (sa + fabs(c0)) + 0x1p-140;
            double err = fabs((double)got[m * N + n] - want);
            if (err / tol > *worst) *worst = err / tol;
            if (!(err <= tol)) {
                if (bad++ < 3)
                    fprintf(stderr, "  [%lld,%lld] got %.9g want %.9g tol %.3g\n", (long long)m,
                            (long long)n, got[m * N + n], want, tol);
            }
        }
    return bad;
}

/* Runs fprop, dgrad (beta 0 and 1) and wgrad of one linear [Cout, Cin] over N tokens under
 * spec s and compares each with its independent recomputation. */
static void check_linear(const char *recipe_name, const fqt_linear_spec *s, const fqt_pass *pass,
                         int64_t id, int64_t N, int64_t Cin, int64_t Cout) {
    float *X = rand_mat(N, Cin), *W = rand_mat(Cout, Cin), *dY = rand_mat(N, Cout);
    float *Y = malloc(sizeof(float) * (size_t)(N * Cout));
    double worst = 0;

    /* fprop: Y = Q(X, rows) Q(W, rows)ᵀ, K = Cin. */
    fqt_qtensor QX;
    fqt_linear_quantize(&WS, &QX, s, FQT_OP_FPROP_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_ROWS, pass, id);
    fqt_linear_fprop(&WS, Y, &QX, W, Cout, s, pass, id);
    WS.used = 0;
    float *xq = ref_qdq(s, FQT_OP_FPROP_X, X, N, Cin, FQT_AXIS_ROWS, pass, id);
    float *wq = ref_qdq(s, FQT_OP_FPROP_W, W, Cout, Cin, FQT_AXIS_ROWS, pass, id);
    CHECK_MSG(cmp_gemm(Y, NULL, 0.0f, N, Cout, Cin, xq, Cin, 1, wq, Cin, 1, &worst) == 0,
              "%s fprop N=%lld Cin=%lld Cout=%lld", recipe_name, (long long)N, (long long)Cin,
              (long long)Cout);
    free(xq);
    free(wq);

    /* dgrad: dX = beta dX0 + Q(dY, rows) Q(W, cols)ᵀ, K = Cout. */
    float *dyq = ref_qdq(s, FQT_OP_DGRAD_DY, dY, N, Cout, FQT_AXIS_ROWS, pass, id);
    float *wtq = ref_qdq(s, FQT_OP_DGRAD_W, W, Cout, Cin, FQT_AXIS_COLS, pass, id);
    float *dX0 = rand_mat(N, Cin);
    for (int b = 0; b < 2; b++) {
        float beta = (float)b;
        float *dX = dup(dX0, N * Cin);
        fqt_linear_dgrad(&WS, dX, beta, dY, N, W, Cout, Cin, s, pass, id);
        CHECK_MSG(cmp_gemm(dX, dX0, beta, N, Cin, Cout, dyq, Cout, 1, wtq, 1, Cin, &worst) == 0,
                  "%s dgrad beta=%g", recipe_name, (double)beta);
        free(dX);
    }
    free(dyq);
    free(wtq);

    /* wgrad: dW = dW0 + Q(dY, cols) Q(X, cols)ᵀ, K = N. */
    float *dW0 = rand_mat(Cout, Cin), *dW = dup(dW0, Cout * Cin);
    fqt_qtensor QXt;
    fqt_linear_wgrad_x(&WS, &QXt, X, N, Cin, s, pass, id, id);
    CHECK(QXt.rows == Cin && QXt.cols == N);
    fqt_linear_wgrad(&WS, dW, dY, N, Cout, &QXt, s, pass, id, id);
    WS.used = 0;
    float *dyt = ref_qdq(s, FQT_OP_WGRAD_DY, dY, N, Cout, FQT_AXIS_COLS, pass, id);
    float *xt = ref_qdq(s, FQT_OP_WGRAD_X, X, N, Cin, FQT_AXIS_COLS, pass, id);
    CHECK_MSG(cmp_gemm(dW, dW0, 1.0f, Cout, Cin, N, dyt, 1, Cout, xt, 1, Cin, &worst) == 0,
              "%s wgrad", recipe_name);
    free(dyt);
    free(xt);
    free(dW0);
    free(dW);
    free(dX0);
    free(X);
    free(W);
    free(dY);
    free(Y);
    printf("  %-10s N=%-3lld Cin=%-3lld Cout=%-3lld worst error/bound %.3f\n", recipe_name,
           (long long)N, (long long)Cin, (long long)Cout, worst);
}

static void test_linear_vs_reference(void) {
    const char *recipes[] = {"nvfp4", "mxfp4", "fp8", "bf16", "nvfp4-rtn", "nvfp4-nvidia,hadamard=0",
                             "int4"};
    /* Multiples of the block sizes and ragged ones (partial blocks and 128x128 tiles). */
    const int64_t shapes[][3] = {{64, 48, 32}, {37, 50, 33}, {40, 136, 130}};
    for (size_t r = 0; r < sizeof recipes / sizeof recipes[0]; r++) {
        fqt_recipe rec;
        CHECK_MSG(fqt_recipe_parse(recipes[r], &rec) == FQT_OK, "%s", fqt_last_error());
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            fqt_pass pass = {&rec, FQT_MODE_FQT, 0x5EEDull + sh, (uint32_t)(3 + r), NULL, false};
            check_linear(recipes[r], &rec.quant, &pass, (int64_t)(5 + sh), shapes[sh][0],
                         shapes[sh][1], shapes[sh][2]);
        }
    }
}

/* wgrad of a fixed (dY, X) under nvfp4 (SR on both operands) for a given seed and step. */
static float *wgrad_once(const fqt_recipe *rec, uint64_t seed, uint32_t step, int64_t id,
                         const float *X, const float *dY, int64_t N, int64_t Cin, int64_t Cout) {
    fqt_pass pass = {rec, FQT_MODE_FQT, seed, step, NULL, false};
    float *dW = calloc((size_t)(Cout * Cin), sizeof(float));
    fqt_qtensor QXt;
    fqt_linear_wgrad_x(&WS, &QXt, X, N, Cin, &rec->quant, &pass, id, id);
    fqt_linear_wgrad(&WS, dW, dY, N, Cout, &QXt, &rec->quant, &pass, id, id);
    WS.used = 0;
    return dW;
}

static void test_sr_keys(void) {
    fqt_recipe rec;
    CHECK(fqt_recipe_parse("nvfp4", &rec) == FQT_OK);
    const int64_t N = 48, Cin = 32, Cout = 24, n = Cin * Cout;
    float *X = rand_mat(N, Cin), *dY = rand_mat(N, Cout);
    float *a = wgrad_once(&rec, 1, 7, 3, X, dY, N, Cin, Cout);
    float *b = wgrad_once(&rec, 1, 7, 3, X, dY, N, Cin, Cout);
    float *c = wgrad_once(&rec, 1, 8, 3, X, dY, N, Cin, Cout);
    float *d = wgrad_once(&rec, 2, 7, 3, X, dY, N, Cin, Cout);
    float *e = wgrad_once(&rec, 1, 7, 4, X, dY, N, Cin, Cout);
    CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n) == 0, "SR wgrad not reproducible");
    CHECK_MSG(memcmp(a, c, sizeof(float) * (size_t)n) != 0, "SR wgrad ignores sr_step");
    CHECK_MSG(memcmp(a, d, sizeof(float) * (size_t)n) != 0, "SR wgrad ignores the seed");
    CHECK_MSG(memcmp(a, e, sizeof(float) * (size_t)n) != 0, "SR wgrad ignores the linear id");
    free(a), free(b), free(c), free(d), free(e);

    /* dgrad: dY is SR, W is RTN. */
    float *W = rand_mat(Cout, Cin);
    float *r[3];
    const uint32_t steps[3] = {7, 7, 9};
    for (int i = 0; i < 3; i++) {
        fqt_pass pass = {&rec, FQT_MODE_FQT, 1, steps[i], NULL, false};
        r[i] = calloc((size_t)(N * Cin), sizeof(float));
        fqt_linear_dgrad(&WS, r[i], 0.0f, dY, N, W, Cout, Cin, &rec.quant, &pass, 3);
    }
    CHECK(memcmp(r[0], r[1], sizeof(float) * (size_t)(N * Cin)) == 0);
    CHECK(memcmp(r[0], r[2], sizeof(float) * (size_t)(N * Cin)) != 0);
    /* fprop is RTN on both operands: sr_step and seed change nothing. */
    float *y[2];
    for (int i = 0; i < 2; i++) {
        fqt_pass pass = {&rec, FQT_MODE_FQT, (uint64_t)i + 1, steps[i + 1], NULL, false};
        fqt_qtensor QX;
        y[i] = malloc(sizeof(float) * (size_t)(N * Cout));
        fqt_linear_quantize(&WS, &QX, &rec.quant, FQT_OP_FPROP_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_ROWS, &pass, 3);
        fqt_linear_fprop(&WS, y[i], &QX, W, Cout, &rec.quant, &pass, 3);
        WS.used = 0;
    }
    CHECK(memcmp(y[0], y[1], sizeof(float) * (size_t)(N * Cout)) == 0);
    for (int i = 0; i < 3; i++) free(r[i]);
    free(y[0]), free(y[1]), free(X), free(dY), free(W);
}

/* ---- Hadamard -------------------------------------------------------------------------- */

/* Aᵀ B in double: out[C1, C2]. */
static void atb(double *out, const float *A, const float *B, int64_t N, int64_t C1, int64_t C2) {
    for (int64_t i = 0; i < C1; i++)
        for (int64_t j = 0; j < C2; j++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += (double)A[n * C1 + i] * B[n * C2 + j];
            out[i * C2 + j] = s;
        }
}

/* Bound on |(HA)ᵀ(HB) - AᵀB| for the float transform: each transformed element is a 16-term
 * ±sum formed by 4 levels of butterflies, so its error is <= gamma_4 * S / 4 with S the
 * sum of |x| over its block column (the final * 1/4 is exact), and |(Hx)_n| <= S / 4.
 * Over the 16 rows of a block: |err| <= 16 * 2 * (gamma_4 Sa/4)(Sb/4) (1 + gamma_4)
 * ~= 2.01 gamma_4 Sa Sb. The partial tail block is untouched and contributes no error. */
static double hadamard_tol(const float *A, const float *B, int64_t N, int64_t C1, int64_t C2,
                           int64_t i, int64_t j) {
    const double u = 0x1p-24, g4 = 4 * u / (1 - 4 * u);
    double tol = 0;
    for (int64_t b = 0; b + 16 <= N; b += 16) {
        double sa = 0, sb = 0;
        for (int64_t n = b; n < b + 16; n++) {
            sa += fabs(A[n * C1 + i]);
            sb += fabs(B[n * C2 + j]);
        }
        tol += 2.01 * g4 * sa * sb;
    }
    return tol + 0x1p-140;
}

static int parity(unsigned x) {
    int p = 0;
    for (; x; x >>= 1) p ^= (int)(x & 1u);
    return p;
}

static void test_hadamard(void) {
    const int64_t N = 40, C1 = 7, C2 = 5; /* two full blocks and a tail of 8 rows */
    float *A = rand_mat(N, C1), *B = rand_mat(N, C2);
    float *HA = dup(A, N * C1), *HB = dup(B, N * C2);
    const uint64_t seed = 77, stream = fqt_sr_stream(9, 7, 3);
    fqt_hadamard16_rows(HA, N, C1, seed, stream);
    fqt_hadamard16_rows(HB, N, C2, seed, stream);
    double *ab = malloc(sizeof(double) * (size_t)(C1 * C2)), *hab = malloc(sizeof(double) * (size_t)(C1 * C2));
    atb(ab, A, B, N, C1, C2);
    atb(hab, HA, HB, N, C1, C2);
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < C1; i++)
        for (int64_t j = 0; j < C2; j++) {
            double e = fabs(hab[i * C2 + j] - ab[i * C2 + j]), t = hadamard_tol(A, B, N, C1, C2, i, j);
            if (e / t > worst) worst = e / t;
            bad += !(e <= t);
        }
    CHECK_MSG(bad == 0, "(HA)ᵀ(HB) != AᵀB in %d entries (worst %.3g of the bound)", bad, worst);
    printf("  hadamard: (HA)'(HB) vs A'B worst error/bound %.3f\n", worst);
    /* Column norms. */
    double *aa = malloc(sizeof(double) * (size_t)(C1 * C1)), *haa = malloc(sizeof(double) * (size_t)(C1 * C1));
    atb(aa, A, A, N, C1, C1);
    atb(haa, HA, HA, N, C1, C1);
    for (int64_t i = 0; i < C1; i++)
        CHECK_MSG(fabs(haa[i * C1 + i] - aa[i * C1 + i]) <= hadamard_tol(A, A, N, C1, C1, i, i),
                  "column %lld norm^2 %.9g -> %.9g", (long long)i, aa[i * C1 + i], haa[i * C1 + i]);
    /* Tail rows untouched, full blocks changed. */
    CHECK(memcmp(HA + 32 * C1, A + 32 * C1, sizeof(float) * (size_t)(8 * C1)) == 0);
    CHECK(memcmp(HA, A, sizeof(float) * (size_t)(32 * C1)) != 0);
    /* Same seed and stream: same bits; another stream: other signs, and then the product is
     * no longer preserved (so the check above can fail). */
    float *HA2 = dup(A, N * C1), *HB3 = dup(B, N * C2);
    fqt_hadamard16_rows(HA2, N, C1, seed, stream);
    CHECK(memcmp(HA2, HA, sizeof(float) * (size_t)(N * C1)) == 0);
    fqt_hadamard16_rows(HB3, N, C2, seed, stream + 8);
    CHECK(memcmp(HB3, HB, sizeof(float) * (size_t)(N * C2)) != 0);
    atb(hab, HA, HB3, N, C1, C2);
    bad = 0;
    for (int64_t i = 0; i < C1; i++)
        for (int64_t j = 0; j < C2; j++)
            bad += fabs(hab[i * C2 + j] - ab[i * C2 + j]) > hadamard_tol(A, B, N, C1, C2, i, j);
    CHECK_MSG(bad > 0, "different sign streams still preserve AᵀB: the check is blind");
    free(HA2), free(HB3);

    /* The matrix itself: on the 16x16 identity the result is (H S)[i][j] = H[i][j] s_j,
     * H[i][j] = (-1)^popcount(i&j) / 4 (Sylvester order), s_j = -1 iff bit 0 of the §4 bits
     * of (seed, stream, row j) is set. Exact. */
    float I[16 * 16];
    for (int i = 0; i < 256; i++) I[i] = (i / 16 == i % 16) ? 1.0f : 0.0f;
    fqt_hadamard16_rows(I, 16, 16, seed, stream);
    bad = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float h = parity((unsigned)(i & j)) ? -0.25f : 0.25f;
            if (fqt_sr_bits(seed, stream, (uint64_t)j) & 1u) h = -h;
            bad += I[i * 16 + j] != h;
        }
    CHECK_MSG(bad == 0, "H S differs from the Sylvester matrix with §4 signs in %d entries", bad);
    free(A), free(B), free(HA), free(HB), free(ab), free(hab), free(aa), free(haa);
}

/* With hadamard_wgrad and no quantization, wgrad is dYᵀX up to rounding: the same H S is
 * applied to both operands. */
static void test_hadamard_wgrad(void) {
    fqt_recipe rec;
    CHECK(fqt_recipe_parse("fp32,hadamard=1", &rec) == FQT_OK);
    const int64_t N = 40, Cin = 12, Cout = 9, id = 2;
    float *X = rand_mat(N, Cin), *dY = rand_mat(N, Cout);
    float *dW = calloc((size_t)(Cout * Cin), sizeof(float));
    fqt_pass pass = {&rec, FQT_MODE_FQT, 99, 5, NULL, false};
    fqt_qtensor QXt;
    fqt_linear_wgrad_x(&WS, &QXt, X, N, Cin, &rec.quant, &pass, id, id);
    /* The X operand really was transformed (fp32 "quantization" is exact). */
    float *xt = malloc(sizeof(float) * (size_t)(N * Cin));
    fqt_dequantize(&QXt, xt);
    int same = 1;
    for (int64_t n = 0; n < 32; n++)
        for (int64_t c = 0; c < Cin; c++) same &= xt[c * N + n] == X[n * Cin + c];
    CHECK_MSG(!same, "hadamard=1 left the wgrad X operand unchanged");
    fqt_linear_wgrad(&WS, dW, dY, N, Cout, &QXt, &rec.quant, &pass, id, id);
    WS.used = 0;
    double *ref = malloc(sizeof(double) * (size_t)(Cout * Cin));
    atb(ref, dY, X, N, Cout, Cin);
    const double u = 0x1p-24, gN = (double)N * u / (1 - (double)N * u);
    int bad = 0;
    double worst = 0;
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t i = 0; i < Cin; i++) {
            /* Hadamard rounding (hadamard_tol) plus the FP32 accumulation over N terms of
             * size <= Sdy Sx / 16 each within a block (and |dy x| in the tail). */
            double acc = 0;
            for (int64_t b = 0; b < N; b += 16) {
                double sa = 0, sb = 0, sab = 0;
                for (int64_t n = b; n < b + 16 && n < N; n++) {
                    sa += fabs(dY[n * Cout + o]);
                    sb += fabs(X[n * Cin + i]);
                    sab += fabs((double)dY[n * Cout + o] * X[n * Cin + i]);
                }
                acc += b + 16 <= N ? sa * sb * (1 + 3 * u) : sab;
            }
            double tol = hadamard_tol(dY, X, N, Cout, Cin, o, i) + 1.01 * gN * acc;
            double e = fabs(dW[o * Cin + i] - ref[o * Cin + i]);
            if (e / tol > worst) worst = e / tol;
            bad += !(e <= tol);
        }
    CHECK_MSG(bad == 0, "hadamard wgrad != dYᵀX in %d entries (worst %.3g of the bound)", bad, worst);
    printf("  hadamard wgrad (fp32): worst error/bound %.3f\n", worst);
    free(X), free(dY), free(dW), free(xt), free(ref);
}

/* fqt_linear_wgrad_x_into (the operand the forward keeps for the backward, core/model.c) is
 * fqt_linear_wgrad_x's operand byte for byte, SR and the Hadamard transform included, and
 * takes nothing from the workspace it does not give back. */
static void test_wgrad_x_into(void) {
    const char *recipes[] = {"nvfp4", "nvfp4,hadamard=1", "mxfp4", "fp8", "bf16"};
    for (int ri = 0; ri < 5; ri++) {
        fqt_recipe rec;
        CHECK(fqt_recipe_parse(recipes[ri], &rec) == FQT_OK);
        const int64_t N = 48, Cin = 64, id = 3;
        float *X = rand_mat(N, Cin);
        fqt_pass pass = {&rec, FQT_MODE_FQT, 77, 6, NULL, false};
        fqt_qtensor a, b;
        fqt_linear_wgrad_x(&WS, &a, X, N, Cin, &rec.quant, &pass, id, id);
        const size_t bytes = fqt_backend_qtensor_bytes(&rec.quant.op[FQT_OP_WGRAD_X].fmt, Cin, N);
        uint8_t *mem = malloc(bytes);
        const size_t used = WS.used;
        fqt_linear_wgrad_x_into(&WS, &b, mem, X, N, Cin, &rec.quant, &pass, id, id);
        CHECK_MSG(WS.used == used, "%s: the workspace mark moved", recipes[ri]);
        CHECK_MSG(a.rows == b.rows && a.cols == b.cols && fqt_format_equal(&a.fmt, &b.fmt) &&
                      !memcmp(a.codes, b.codes, fqt_qtensor_code_bytes(&a)) &&
                      !memcmp(a.scales, b.scales, fqt_qtensor_scale_bytes(&a)) &&
                      !memcmp(&a.tensor_scale, &b.tensor_scale, sizeof a.tensor_scale),
                  "%s: the kept wgrad operand differs from the backward's", recipes[ri]);
        WS.used = 0;
        free(mem);
        free(X);
    }
}

/* With bf16 activations (a device backend's storage; here the CPU table with that storage
 * and column-major views declared, whose quantize is never reached) the plain bf16 operands of
 * X and dY are views of their source: fqt_linear_quantize takes no workspace for them, and the
 * workspace sizes count none (only the float32 weights' bf16 copies), except in a pass that
 * gathers statistics. The sizes and the placement decide by the same rule. */
static void test_bf16_views(void) {
    fqt_backend be = fqt_backend_cpu;
    be.act_dtype = FQT_DT_BF16;
    be.qgemm_colmajor_bf16 = true;
    fqt_recipe rec;
    CHECK(fqt_recipe_parse("bf16", &rec) == FQT_OK);
    const fqt_linear_spec *s = &rec.quant;
    const int64_t N = 64, Cin = 32, Cout = 48;
    const size_t wb = fqt_backend_qtensor_bytes(&s->op[FQT_OP_FPROP_W].fmt, Cout, Cin);
    CHECK(fqt_linear_ws_fwd(&be, s, N, Cin, Cout, false) == wb);
    CHECK(fqt_linear_ws_bwd(&be, s, N, Cin, Cout, false) == fqt_backend_qtensor_bytes(&s->op[FQT_OP_DGRAD_W].fmt, Cin, Cout));
    CHECK(fqt_linear_ws_fwd(&be, s, N, Cin, Cout, true) == wb + fqt_backend_qtensor_bytes(&s->op[FQT_OP_FPROP_X].fmt, N, Cin));
    CHECK(fqt_linear_ws_bwd(&be, s, N, Cin, Cout, true) > fqt_linear_ws_bwd(&be, s, N, Cin, Cout, false));
    fqt_ws ws = {0};
    FQT_ASSERT(fqt_ws_reserve(&ws, &be, 1 << 20) == FQT_OK);
    uint16_t *x = calloc((size_t)(N * Cout), 2);
    fqt_pass pass = {&rec, FQT_MODE_FQT, 77, 6, NULL, false};
    const struct { fqt_operand op; fqt_axis axis; } ops[] = {{FQT_OP_FPROP_X, FQT_AXIS_ROWS}, {FQT_OP_DGRAD_DY, FQT_AXIS_ROWS},
                                                            {FQT_OP_WGRAD_X, FQT_AXIS_COLS}, {FQT_OP_WGRAD_DY, FQT_AXIS_COLS}};
    for (int i = 0; i < 4; i++) {
        fqt_qtensor q;
        fqt_linear_quantize(&ws, &q, s, ops[i].op, x, FQT_DT_BF16, N, Cout, ops[i].axis, &pass, 3);
        CHECK_MSG(ws.used == 0 && q.codes == (uint8_t *)x && q.colmajor == (ops[i].axis == FQT_AXIS_COLS) &&
                      q.rows == (ops[i].axis == FQT_AXIS_ROWS ? N : Cout),
                  "operand %d: not a view of its bf16 source", (int)ops[i].op);
    }
    free(x);
    fqt_ws_free(&ws);
}

/* A backend that offers expanded E2M1 operands and kept tensor scales (as the CUDA one does):
 * the CPU table with those entries, recording what quantize was asked. */
static int fake_calls, fake_expanded, fake_tscale, fake_tscale_calls;
static bool fake_expands(const fqt_format *f, const fqt_format *other) {
    return f->elem == FQT_ELEM_E2M1 && other->elem == FQT_ELEM_E2M1; /* "the partner takes the BF16 path" */
}
static void fake_tensor_scale(float *t, const void *src, fqt_dtype dt, int64_t n, const fqt_format *f) {
    (void)src, (void)dt, (void)n, (void)f;
    for (int i = 0; i < FQT_TSCALE_FLOATS; i++) t[i] = 1.0f;
    fake_tscale_calls++;
}
static void fake_quantize(fqt_qtensor *q, const void *src, fqt_dtype dt, int64_t R, int64_t C, fqt_axis axis,
                          fqt_rounding rd, uint64_t seed, uint64_t stream, fqt_qstats *st, const float *tscale) {
    fake_calls++;
    fake_expanded = q->expanded;
    fake_tscale = tscale != NULL;
    if (!q->expanded) fqt_backend_cpu.quantize(q, src, dt, R, C, axis, rd, seed, stream, st, NULL);
}

/* core/linear.c's two uses of such a backend: an operand is expanded only where its GEMM
 * partner's format lets the GEMM read it (a GEMM against fp32 weights does not), and a
 * source's second quantization takes the kept tensor scale of its first only when that first
 * one, in this pass, kept one (after a first one in a format without a tensor scale, a kept
 * scale of an earlier pass over the same buffers is not taken). */
static void test_expanded_and_kept_scales(void) {
    fqt_backend be = fqt_backend_cpu;
    be.qgemm_expands = fake_expands;
    be.tensor_scale = fake_tensor_scale;
    be.quantize = fake_quantize;
    const int64_t N = 64, Cin = 32, id = 3;
    float *X = rand_mat(N, Cin);
    fqt_ws ws = {0};
    FQT_ASSERT(fqt_ws_reserve(&ws, &be, 1 << 20) == FQT_OK && fqt_ws_keep_tscales(&ws, 8) == FQT_OK);
    const char *names[] = {"nvfp4", "nvfp4,w=fp32"};
    for (int i = 0; i < 2; i++) {
        fqt_recipe rec;
        CHECK(fqt_recipe_parse(names[i], &rec) == FQT_OK);
        fqt_pass pass = {&rec, FQT_MODE_FQT, 77, 6, NULL, false};
        fqt_qtensor q;
        fqt_linear_quantize(&ws, &q, &rec.quant, FQT_OP_FPROP_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_ROWS, &pass, id);
        CHECK_MSG(fake_expanded == (i == 0) && q.expanded == (i == 0), "%s: fprop.x expanded %d", names[i], fake_expanded);
        CHECK(ws.used <= fqt_linear_ws_fwd(&be, &rec.quant, N, Cin, 16, false));
        ws.used = 0;
    }
    fqt_recipe a, b;
    CHECK(fqt_recipe_parse("nvfp4", &a) == FQT_OK && fqt_recipe_parse("nvfp4,fprop.x=mxfp4", &b) == FQT_OK);
    fqt_pass pa = {&a, FQT_MODE_FQT, 77, 6, NULL, false}, pb = {&b, FQT_MODE_FQT, 77, 7, NULL, false};
    fqt_qtensor q;
    fake_tscale_calls = 0;
    fqt_linear_quantize(&ws, &q, &a.quant, FQT_OP_FPROP_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_ROWS, &pa, id);
    CHECK(fake_tscale && fake_tscale_calls == 1);
    fqt_linear_quantize(&ws, &q, &a.quant, FQT_OP_WGRAD_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_COLS, &pa, id);
    CHECK_MSG(fake_tscale && fake_tscale_calls == 1, "wgrad.x did not take fprop.x's kept scale");
    fqt_linear_quantize(&ws, &q, &a.quant, FQT_OP_WGRAD_X, X + 1, FQT_DT_F32, N, Cin - 1, FQT_AXIS_COLS, &pa, id);
    CHECK_MSG(!fake_tscale, "a kept scale was taken for another source");
    ws.used = 0;
    fqt_linear_quantize(&ws, &q, &b.quant, FQT_OP_FPROP_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_ROWS, &pb, id);
    fqt_linear_quantize(&ws, &q, &b.quant, FQT_OP_WGRAD_X, X, FQT_DT_F32, N, Cin, FQT_AXIS_COLS, &pb, id);
    CHECK_MSG(!fake_tscale, "wgrad.x took a scale kept by an earlier pass");
    ws.used = 0;
    fqt_ws_free(&ws);
    free(X);
}

int main(void) {
    FQT_ASSERT(fqt_ws_reserve(&WS, &fqt_backend_cpu, (size_t)256 << 20) == FQT_OK);
    test_expanded_and_kept_scales();
    test_bf16_views();
    test_wgrad_x_into();
    test_linear_vs_reference();
    test_sr_keys();
    test_hadamard();
    test_hadamard_wgrad();
    return check_finish();
}
