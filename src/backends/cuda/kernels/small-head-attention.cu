// Dense causal attention for head dims the flash prefill / split-K decode kernels do not cover (any
// even D up to 256; the tiny test checkpoints use 16). A correctness path, not a fast one: one warp
// per (query, head), keys visited 32 at a time with an online softmax in fp32.
//   q   : token t's head h at q[t * qRowStride + h * D] (fused qkv rows or packed [T, H, D])
//   k, v: [Hkv, kvStride, D], row r = position r
//   out : [T, H, D]
// Query t sits at position queryStart + t and sees rows [max(0, p - window + 1), min(kvLen, p + 1)).
#include "common.cuh"

#define MAX_D 256

extern "C" __global__ void __launch_bounds__(32) small_head_attention(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    int H, int Hkv, int D, int qRowStride, int kvStride, int queryStart, int kvLen, int window, float scaleLog2) {
  __shared__ float qs[MAX_D];
  const int t = blockIdx.x, h = blockIdx.y, lane = threadIdx.x;
  const int kvh = h / (H / Hkv);
  const bf16_t* qr = q + (size_t)t * qRowStride + (size_t)h * D;
  for (int i = lane; i < D; i += 32) qs[i] = bf16_to_f32(qr[i]);
  __syncwarp();
  const int p = queryStart + t;
  const int hi = min(kvLen, p + 1);
  const int lo = max(0, p - window + 1);
  const bf16_t* kh = k + (size_t)kvh * kvStride * D;
  const bf16_t* vh = v + (size_t)kvh * kvStride * D;
  float acc[MAX_D / 32];
#pragma unroll
  for (int j = 0; j < MAX_D / 32; ++j) acc[j] = 0.f;
  float m = NEG_INF, l = 0.f;
  for (int j0 = lo; j0 < hi; j0 += 32) {
    const int key = j0 + lane;
    float s = NEG_INF;
    if (key < hi) {
      const bf16_t* kr = kh + (size_t)key * D;
      float dot = 0.f;
      for (int i = 0; i < D; ++i) dot = fmaf(qs[i], bf16_to_f32(kr[i]), dot);
      s = dot * scaleLog2;
    }
    float chunkMax = s;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) chunkMax = fmaxf(chunkMax, __shfl_xor_sync(0xffffffffu, chunkMax, off));
    const float mNew = fmaxf(m, chunkMax);  // finite: the first chunk holds at least one visible key
    const float corr = exp2f(m - mNew);
    const float pr = key < hi ? exp2f(s - mNew) : 0.f;
    float psum = pr;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, off);
    l = l * corr + psum;
#pragma unroll
    for (int j = 0; j < MAX_D / 32; ++j) acc[j] *= corr;
    const int visible = min(32, hi - j0);
    for (int jj = 0; jj < visible; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, pr, jj);
      const bf16_t* vr = vh + (size_t)(j0 + jj) * D;
#pragma unroll
      for (int j = 0; j < MAX_D / 32; ++j) {
        const int d = lane + 32 * j;
        if (d < D) acc[j] = fmaf(pj, bf16_to_f32(vr[d]), acc[j]);
      }
    }
    m = mNew;
  }
  bf16_t* o = out + ((size_t)t * H + h) * D;
  const float inv = 1.f / l;
#pragma unroll
  for (int j = 0; j < MAX_D / 32; ++j) {
    const int d = lane + 32 * j;
    if (d < D) o[d] = f32_to_bf16(acc[j] * inv);
  }
}
