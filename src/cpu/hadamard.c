/* cpu/hadamard.c — the CPU reference of the random Hadamard transform on the wgrad inputs
 * (fqt_hadamard16_rows, fqt/ops.h; NVIDIA's recipe, core/linear.h). */
#include "fqt/formats.h"
#include "fqt/ops.h"

void fqt_hadamard16_rows(float *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream) {
    const int64_t nb = N / 16;
#pragma omp parallel for schedule(guided)
    for (int64_t b = 0; b < nb; b++) {
        float *blk = x + b * 16 * C;
        for (int i = 0; i < 16; i++) {
            if (fqt_sr_bits(seed, stream, (uint64_t)(b * 16 + i)) & 1u) {
                float *row = blk + i * C;
                for (int64_t c = 0; c < C; c++) row[c] = -row[c];
            }
        }
        /* Fast Walsh-Hadamard butterflies over the 16 rows, then the 1/4 normalisation
         * (exact: a power of two). */
        for (int h = 1; h < 16; h <<= 1)
            for (int i = 0; i < 16; i += 2 * h)
                for (int j = i; j < i + h; j++) {
                    float *a = blk + j * C, *bb = blk + (j + h) * C;
                    for (int64_t c = 0; c < C; c++) {
                        float u = a[c], v = bb[c];
                        a[c] = u + v;
                        bb[c] = u - v;
                    }
                }
        for (int64_t i = 0; i < 16 * C; i++) blk[i] *= 0.25f;
    }
}
