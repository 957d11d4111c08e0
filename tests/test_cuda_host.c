/* tests/test_cuda_host.c — host-side pieces of the CUDA backend, tested without a GPU
 * (part of `make test`):
 *  - workspace placement of quantized tensors (fqt_backend_qtensor_bytes / bind / scale slot):
 *    parts 256-byte aligned, disjoint, inside the allocation;
 *  - launch-shape independence of the SR keying: a host emulation of the CUDA fused
 *    quantizer's traversal (src/cuda/quantize.cu qz_fused_kernel: one thread per block,
 *    grid-stride, Philox words cached per 4 indices) run with several grid sizes gives the
 *    same bytes as fqt_quantize, because every element's bits are keyed by its index in the
 *    quantized layout (§4), never by the thread;
 *  - the Blackwell scale-layout conversion (cuda/scale_layout.c, FORMATS.md §7): known offsets,
 *    a bijection onto the padded tile buffer, zero padding. Not for: the kernels themselves
 *    (tests/cuda/, on a GPU). */
#include "check.h"

#include "cuda/scale_layout.h"
#include "formats/codec.h"
#include "fqt/backend.h"

#include <stdlib.h>


static void test_workspace(void) {
    const char *fs[] = {"nvfp4", "mxfp4", "fp8", "fp8-w", "bf16", "fp32", "e2m1:b15:ue4m3", NULL};
    const int64_t sh[][2] = {{1, 1}, {1, 37}, {33, 129}, {256, 512}, {130, 257}};
    for (int fi = 0; fs[fi]; fi++)
        for (int si = 0; si < 5; si++) {
            fqt_format f;
            FQT_ASSERT(fqt_format_parse(fs[fi], &f) == FQT_OK);
            const size_t bytes = fqt_backend_qtensor_bytes(&f, sh[si][0], sh[si][1]);
            uint8_t *mem = aligned_alloc(256, (bytes + 255) & ~(size_t)255);
            fqt_qtensor q;
            fqt_backend_qtensor_bind(&q, &f, sh[si][0], sh[si][1], mem);
            uint8_t *slot = (uint8_t *)fqt_backend_qtensor_scale_slot(&q);
            CHECK(q.codes == mem);
            CHECK(((uintptr_t)q.scales & 255) == 0 && ((uintptr_t)slot & 255) == 0);
            CHECK(q.scales >= q.codes + fqt_qtensor_code_bytes(&q));
            CHECK(slot >= q.scales + fqt_qtensor_scale_bytes(&q));
            CHECK(slot + 4 <= mem + bytes);
            free(mem);
        }
}

/* The fused kernel's per-block work, as the CUDA code does it. */
static void emulate_block(const fqt_qtensor *q, const float *src, int64_t src_cols, int axis,
                          int64_t i, uint64_t seed, uint64_t stream, float s_enc, float s_dec) {
    const fqt_format *f = &q->fmt;
    int64_t r, j;
    if (axis) { j = i / q->rows; r = i - j * q->rows; }
    else { r = i / q->scale_cols; j = i - r * q->scale_cols; }
    const int64_t c0 = j * f->block, c1 = c0 + f->block < q->cols ? c0 + f->block : q->cols;
    float amax = 0.0f;
    for (int64_t c = c0; c < c1; c++) {
        float a = fabsf(axis ? src[c * src_cols + r] : src[r * src_cols + c]);
        if (a > amax) amax = a;
    }
    fqt_block_map m = fqt_block_scale_i(f->scale, f->scale_ceil, fqt_elem_max(f->elem),
                                        fqt_elem_emax(f->elem), amax, s_enc, s_dec,
                                        q->scales + r * q->scale_cols + j);
    uint64_t cached = ~0ull;
    uint32_t w[4] = {0, 0, 0, 0};
    uint8_t *row = q->codes + r * q->row_bytes;
    for (int64_t c = c0; c < c1; c++) {
        const float v = axis ? src[c * src_cols + r] : src[r * src_cols + c];
        const uint64_t idx = (uint64_t)(r * q->cols + c);
        if ((idx >> 2) != cached) { cached = idx >> 2; fqt_sr_block4(seed, stream, cached, w); }
        const uint8_t code = fqt_e2m1_sr_i(v * m.mul, w[idx & 3]);
        row[c >> 1] = (c & 1) ? (uint8_t)((row[c >> 1] & 0x0F) | (code << 4)) : code;
    }
}

static void test_sr_launch_shape(void) {
    const char *fs[] = {"nvfp4", "mxfp4", NULL};
    const int64_t R = 37, C = 96;
    float *x = malloc((size_t)(R * C) * 4);
    uint64_t s = 7;
    for (int64_t i = 0; i < R * C; i++) x[i] = (float)((int64_t)(fqt_splitmix64(&s) >> 40) - (1 << 23)) * 0x1p-22f;
    for (int fi = 0; fs[fi]; fi++)
        for (int axis = 0; axis < 2; axis++) {
            fqt_format f;
            FQT_ASSERT(fqt_format_parse(fs[fi], &f) == FQT_OK);
            const int64_t qr = axis ? C : R, qc = axis ? R : C;
            fqt_qtensor ref, emu;
            FQT_ASSERT(fqt_qtensor_alloc(&ref, &f, qr, qc) == FQT_OK);
            FQT_ASSERT(fqt_qtensor_alloc(&emu, &f, qr, qc) == FQT_OK);
            fqt_quantize(&ref, x, R, C, (fqt_axis)axis, FQT_ROUND_SR, 99, 5, NULL);
            /* s_enc, s_dec as the tensor-scale kernel computes them: from the amax. */
            float amax = 0.0f;
            for (int64_t i = 0; i < R * C; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            const float se = f.tensor_scale ? fqt_tensor_s_enc_i(amax, fqt_elem_max(f.elem)) : 1.0f, sd = f.tensor_scale ? 1.0f / se : 1.0f;
            const int64_t nblk = emu.rows * emu.scale_cols;
            const int64_t grids[] = {1, 3, 64, 256 * 5, 100000};
            for (int gi = 0; gi < 5; gi++) {
                memset(emu.codes, 0, fqt_qtensor_code_bytes(&emu));
                memset(emu.scales, 0, fqt_qtensor_scale_bytes(&emu));
                /* threads in reverse order: any interleaving must give the same bytes */
                for (int64_t t = grids[gi] - 1; t >= 0; t--)
                    for (int64_t i = t; i < nblk; i += grids[gi]) emulate_block(&emu, x, C, axis, i, 99, 5, se, sd);
                CHECK_MSG(!memcmp(emu.codes, ref.codes, fqt_qtensor_code_bytes(&ref)) &&
                              !memcmp(emu.scales, ref.scales, fqt_qtensor_scale_bytes(&ref)),
                          "%s axis %d grid %lld: emulated SR codes differ from fqt_quantize", fs[fi], axis,
                          (long long)grids[gi]);
            }
            CHECK_BITS(sd, ref.tensor_scale);
            fqt_qtensor_free(&ref);
            fqt_qtensor_free(&emu);
        }
    free(x);
}

static void test_scale_layout(void) {
    /* known offsets: (0,0) 0; (1,0) 16; (32,0) 4; (0,1) 1; (0,4) the next tile 512; (128,0)
     * the first tile of the second tile row */
    CHECK(fqt_scales_tiled_offset(0, 0, 8) == 0 && fqt_scales_tiled_offset(1, 0, 8) == 16);
    CHECK(fqt_scales_tiled_offset(32, 0, 8) == 4 && fqt_scales_tiled_offset(0, 1, 8) == 1);
    CHECK(fqt_scales_tiled_offset(0, 4, 8) == 512 && fqt_scales_tiled_offset(128, 0, 8) == 1024);
    CHECK(fqt_scales_tiled_offset(127, 3, 8) == 31 * 16 + 3 * 4 + 3);
    const int64_t shapes[][2] = {{1, 1}, {128, 4}, {130, 5}, {300, 48}};
    for (int s = 0; s < 4; s++) {
        const int64_t R = shapes[s][0], SC = shapes[s][1];
        const size_t nb = fqt_scales_tiled_bytes(R, SC);
        CHECK(nb == (size_t)(((R + 127) / 128 * 128) * ((SC + 3) / 4 * 4)));
        uint8_t *seen = calloc(nb, 1), *src = malloc((size_t)(R * SC)), *dst = malloc(nb);
        int ok = 1, inv_ok = 1;
        for (int64_t r = 0; r < (R + 127) / 128 * 128; r++)
            for (int64_t c = 0; c < (SC + 3) / 4 * 4; c++) {
                int64_t o = fqt_scales_tiled_offset(r, c, SC);
                ok &= o >= 0 && (size_t)o < nb && !seen[o];
                if (o >= 0 && (size_t)o < nb) seen[o] = 1;
                /* the inverse (the device conversion's) names the source, -1 for padding */
                inv_ok &= fqt_scales_tiled_source(o, R, SC) == (r < R && c < SC ? r * SC + c : -1);
            }
        CHECK_MSG(ok, "tiled scale layout [%lld, %lld] is not a bijection", (long long)R, (long long)SC);
        CHECK_MSG(inv_ok, "tiled scale layout [%lld, %lld]: fqt_scales_tiled_source is not the inverse", (long long)R,
                  (long long)SC);
        for (int64_t i = 0; i < R * SC; i++) src[i] = (uint8_t)(i * 7 + 1) | 1;
        fqt_scales_to_tiled(src, R, SC, dst);
        int64_t nz = 0;
        for (size_t i = 0; i < nb; i++) nz += dst[i] != 0;
        CHECK(nz == R * SC);
        CHECK(dst[fqt_scales_tiled_offset(R - 1, SC - 1, SC)] == src[R * SC - 1]);
        free(seen); free(src); free(dst);
    }
}

/* An unknown value of a CUDA switch is an error naming it and the known values, with --device
 * auto too (which otherwise falls back to the CPU on a machine without a GPU). */
static void test_env_switches(void) {
#ifdef FQT_HAVE_CUDA
    const char *vars[][3] = {{"FQT_CUDA_ATTN", "flsh", "flash cublas"},
                             {"FQT_CUDA_FP8", "FP32", "blockscaled fp32"},
                             {"FQT_CUDA_ACT", "bfloat16", "bf16 f32 fp32"},
                             {"FQT_CUDA_MXFP4", "fp4", "bf16 fp8"},
                             {"FQT_CUDA_FP4", "fp4", "native bf16"}};
    for (int i = 0; i < 5; i++) {
        setenv(vars[i][0], vars[i][1], 1);
        for (int d = 0; d < 2; d++) {
            const char *dev = d ? "auto" : "cuda";
            CHECK_MSG(fqt_backend_get(dev) == NULL, "%s=%s accepted by --device %s", vars[i][0], vars[i][1], dev);
            char want[128];
            snprintf(want, sizeof want, "--device %s: %s=%s is not a known value (one of: %s)", dev, vars[i][0],
                     vars[i][1], vars[i][2]);
            CHECK_MSG(strstr(fqt_last_error(), want) != NULL, "message: %s", fqt_last_error());
        }
        unsetenv(vars[i][0]);
    }
    setenv("FQT_CUDA_ATTN", "cublas", 1);
    CHECK_MSG(fqt_backend_get("auto") != NULL, "a known value refused: %s", fqt_last_error());
    unsetenv("FQT_CUDA_ATTN");
#else
    printf("SKIP env switches: built without CUDA\n");
#endif
}

int main(void) {
    test_env_switches();
    test_scale_layout();
    test_workspace();
    test_sr_launch_shape();
    return check_finish();
}
