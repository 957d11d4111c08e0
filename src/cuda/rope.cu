/* cuda/rope.cu — rotary embedding in place on x[B,T,H,HS], forward and inverse. Oracle:
 * cpu/ops_impl.h rope_rotate: angle t * theta^(-2i/HS) in double, cos and sin in double
 * rounded to float once, then the same two products and one add per output. CUDA's double
 * pow/cos/sin may differ from libm in the last bit of a double, which almost never changes
 * the float; the rotation itself is bit-identical given the same cos and sin. */
#include "cuda/common.cuh"

template <typename T>
__global__ void rope_kernel(T *x, int64_t BT, int64_t T_, int64_t H, int64_t HS, float theta, int sign) {
    const int64_t half = HS / 2;
    const int64_t total = BT * H * half;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e % half, bth = e / half, t = (bth / H) % T_;
        const double inv_freq = pow((double)theta, -2.0 * (double)i / (double)HS);
        const double a = (double)t * inv_freq;
        const float cs = (float)cos(a), sn = (float)((double)sign * sin(a));
        T *v = x + bth * HS;
        const float x0 = ldf(v, i), x1 = ldf(v, i + half);
        stf(v, i, x0 * cs - x1 * sn);
        stf(v, i + half, x1 * cs + x0 * sn);
    }
}

static void rope(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta, int sign) {
    FQT_ASSERT(HS % 2 == 0);
    if (B <= 0 || T <= 0 || H <= 0 || HS == 0) return;
    const int64_t total = B * T * H * (HS / 2);
    unsigned nb = fqt_cuda_blocks(total, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, TT, rope_kernel<TT><<<nb, 256>>>((TT *)x, B * T, T, H, HS, theta, sign));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_rope_fwd(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    rope(x, B, T, H, HS, theta, +1);
}
void fqt_cuda_rope_bwd(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    rope(dx, B, T, H, HS, theta, -1);
}
