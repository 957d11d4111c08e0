/* cuda/rope.cu — rotary embedding in place on x[B,T,H,HS], forward and inverse. Oracle:
 * cpu/ops_impl.h rope_rotate: angle t * theta^(-2i/HS) in double, cos and sin in double
 * rounded to float once, then the same two products and one add per output. CUDA's double
 * pow/cos/sin may differ from libm in the last bit of a double, which almost never changes
 * the float; the rotation itself is bit-identical given the same cos and sin. The cos and sin
 * are computed once per (t, i) into a table, not once per element, and kept across calls.
 * HS % 8 == 0 (every model's head size) takes the four-pairs-a-thread kernel. */
#include "cuda/common.cuh"

/* The angles' cos and sin per (t, i), once per call: tab[t * half + i] = (cos, sin) rounded
 * to float, the same double arithmetic as the oracle (sign * sin rounds to sign times the
 * rounded sin, so the inverse rotation shares the table). */
__global__ void rope_table_kernel(float2 *tab, int64_t T_, int64_t HS, float theta) {
    const int64_t half = HS / 2;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < T_ * half;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = e / half, i = e - t * half;
        const double inv_freq = pow((double)theta, -2.0 * (double)i / (double)HS);
        const double a = (double)t * inv_freq;
        tab[e] = make_float2((float)cos(a), (float)sin(a));
    }
}

/* Rows (b, t, h) of HS elements; blockDim (32, 8): threadIdx.y picks the row, threadIdx.x the
 * pairs (i, i + HS/2) of it. I: the index type, 32-bit where every row index fits (64-bit
 * division per element cost more than the rotation). */
template <typename T, typename I>
__global__ void rope_kernel(T *x, const float2 *tab, I rows, I T_, I H, int half, float sign) {
    for (I row = blockIdx.x * (I)blockDim.y + threadIdx.y; row < rows; row += (I)gridDim.x * blockDim.y) {
        const I t = (row / H) % T_;
        T *v = x + (int64_t)row * (2 * half);
        const float2 *tb = tab + (int64_t)t * half;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            const float2 a = tb[i];
            const float cs = a.x, sn = sign * a.y;
            const float x0 = ldf(v, i), x1 = ldf(v, i + half);
            stf(v, i, x0 * cs - x1 * sn);
            stf(v, i + half, x1 * cs + x0 * sn);
        }
    }
}

/* Four pairs a thread (half % 4 == 0): 8- (bf16) or 16-byte (float) loads and stores of
 * x[i..i+3] and x[i+half..i+half+3] (ld4/st4), two 16-byte table loads; the same arithmetic per
 * element as rope_kernel. Threads run over (row, group of 4) pairs. */
template <typename T, typename I>
__global__ void rope4_kernel(T *x, const float2 *tab, I rows, I T_, I H, int half, float sign) {
    const I q = (I)(half / 4), n = rows * q;
    for (I e = blockIdx.x * (I)blockDim.x + threadIdx.x; e < n; e += (I)gridDim.x * blockDim.x) {
        const I row = e / q;
        const int i = (int)(e - row * q) * 4;
        const I t = (row / H) % T_;
        T *v = x + (int64_t)row * (2 * half);
        const float4 *tb = (const float4 *)(tab + (int64_t)t * half + i);
        const float4 a01 = tb[0], a23 = tb[1];
        const float cs[4] = {a01.x, a01.z, a23.x, a23.z};
        const float sn[4] = {sign * a01.y, sign * a01.w, sign * a23.y, sign * a23.w};
        float x0[4], x1[4], y0[4], y1[4];
        ld4(v + i, x0);
        ld4(v + i + half, x1);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            y0[k] = x0[k] * cs[k] - x1[k] * sn[k];
            y1[k] = x1[k] * cs[k] + x0[k] * sn[k];
        }
        st4(v + i, y0);
        st4(v + i + half, y1);
    }
}

static void rope(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta, int sign) {
    FQT_ASSERT(HS % 2 == 0);
    if (B <= 0 || T <= 0 || H <= 0 || HS == 0) return;
    const int64_t half = HS / 2;
    /* The table depends on (T, HS, theta) only: kept until they change (or its scratch moves). */
    static const float2 *tab_at;
    static int64_t tab_T, tab_HS;
    static float tab_theta;
    float2 *tab = (float2 *)fqt_cuda_scratch(FQT_SCR_ROPE, (size_t)(T * half) * sizeof(float2));
    if (tab != tab_at || T != tab_T || HS != tab_HS || theta != tab_theta) {
        unsigned nt = fqt_cuda_blocks(T * half, 256);
        rope_table_kernel<<<nt > 65536 ? 65536 : nt, 256>>>(tab, T, HS, theta);
        FQT_CUDA_LAUNCHED();
        tab_at = tab, tab_T = T, tab_HS = HS, tab_theta = theta;
    }
    const int64_t rows = B * T * H;
    const float sg = sign > 0 ? 1.0f : -1.0f;
    if (half % 4 == 0 && (uintptr_t)x % 16 == 0 && rows * (half / 4) < (1LL << 31) - 65536LL * 256) {
        unsigned nb = fqt_cuda_blocks(rows * (half / 4), 256);
        if (nb > 65536) nb = 65536;
        FQT_DT_DISPATCH(fqt_cuda.act, TT,
                        rope4_kernel<TT, uint32_t><<<nb, 256>>>((TT *)x, tab, (uint32_t)rows, (uint32_t)T,
                                                                 (uint32_t)H, (int)half, sg));
        FQT_CUDA_LAUNCHED();
        return;
    }
    unsigned nb = fqt_cuda_blocks(rows, 8);
    if (nb > 65536) nb = 65536;
    const dim3 blk(32, 8);
    FQT_DT_DISPATCH(fqt_cuda.act, TT, {
        if (rows < (1LL << 31) - 65536LL * 8)
            rope_kernel<TT, uint32_t><<<nb, blk>>>((TT *)x, tab, (uint32_t)rows, (uint32_t)T, (uint32_t)H, (int)half, sg);
        else
            rope_kernel<TT, int64_t><<<nb, blk>>>((TT *)x, tab, rows, T, H, (int)half, sg);
    });
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_rope_fwd(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    rope(x, B, T, H, HS, theta, +1);
}
void fqt_cuda_rope_bwd(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    rope(dx, B, T, H, HS, theta, -1);
}
