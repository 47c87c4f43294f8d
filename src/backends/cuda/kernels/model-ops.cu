// The per-token kernels the whole-model forward needs beyond elementwise.cu (bf16 in and out, fp32
// arithmetic inside):
//   embed_rows       out[t, :] = table[ids[t], :] * scale                    (Gemma: scale = sqrt(hidden))
//   gated_act_rows   out[r, i] = act(gu[r, i]) * gu[r, I + i]   gu = fused [rows, 2I] gate|up projection
//                    act 0: silu (SwiGLU), 1: gelu tanh approximation (Gemma's GeGLU)
//   bias_add_rows    y[r, c] += b[c]                                      (Qwen2's q/k/v projection bias)
//   rmsnorm_heads    in place over heads inside strided rows               (Qwen3 / Gemma 3 q and k norms)
//   rope_heads       rotate-half RoPE in place over heads inside strided rows (q and k in fused qkv rows)
//   softcap_f32      x = cap * tanh(x / cap)                                (Gemma final logit soft-capping)
//   fill_uniform_bf16 deterministic uniform values from a counter hash      (benchmark weights, made on device)
//   advance_position *pos += 1                                             (the last node of a captured decode step)
// No codegen parameters: one module serves every shape.
#include "common.cuh"

namespace {
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// Hash of a 32-bit counter (lowbias32), so every element's value depends only on (seed, index).
__device__ __forceinline__ u32 hash32(u32 x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
}  // namespace

// grid (T), block (256). ids: [T] int32 (checked on the host); table: [V, C]; out: [T, C].
extern "C" __global__ void __launch_bounds__(256) embed_rows(
    const int* __restrict__ ids, const bf16_t* __restrict__ table, bf16_t* __restrict__ out, int C, float scale) {
  const bf16_t* src = table + (size_t)ids[blockIdx.x] * C;
  bf16_t* dst = out + (size_t)blockIdx.x * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dst[i] = f32_to_bf16(bf16_to_f32(src[i]) * scale);
}

// One thread per output. gu: [rows, 2I]; out: [rows, I].
extern "C" __global__ void __launch_bounds__(256) gated_act_rows(
    const bf16_t* __restrict__ gu, bf16_t* __restrict__ out, int rows, int I, int act) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)rows * I) return;
  const size_t r = idx / I;
  const int i = idx % I;
  const float g = bf16_to_f32(gu[r * 2 * I + i]);
  const float u = bf16_to_f32(gu[r * 2 * I + I + i]);
  float a;
  if (act == 0) {
    a = g / (1.f + __expf(-g));
  } else {
    // 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))), as torch's gelu(approximate='tanh').
    const float inner = 0.7978845608028654f * (g + 0.044715f * g * g * g);
    a = 0.5f * g * (1.f + tanhf(inner));
  }
  out[idx] = f32_to_bf16(a * u);
}

// One thread per element. y: [rows, C]; b: [C].
extern "C" __global__ void __launch_bounds__(256) bias_add_rows(
    bf16_t* __restrict__ y, const bf16_t* __restrict__ b, int rows, int C) {
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)rows * C) return;
  y[idx] = f32_to_bf16(bf16_to_f32(y[idx]) + bf16_to_f32(b[idx % C]));
}

// One warp per (token, head); block 128 (4 rows). Row (t, h) starts at x + t * rowStride + h * D.
// w: [D]; out = x / rms(x) * (w + weightOffset), in place.
extern "C" __global__ void __launch_bounds__(128) rmsnorm_heads(
    bf16_t* __restrict__ x, const bf16_t* __restrict__ w, int T, int heads, int D, int rowStride, float eps,
    float weightOffset) {
  const int row = blockIdx.x * 4 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= T * heads) return;
  bf16_t* v = x + (size_t)(row / heads) * rowStride + (size_t)(row % heads) * D;
  float ss = 0.f;
  for (int i = lane; i < D; i += 32) {
    const float a = bf16_to_f32(v[i]);
    ss = fmaf(a, a, ss);
  }
  const float inv = rsqrtf(warp_sum(ss) / D + eps);
  for (int i = lane; i < D; i += 32) v[i] = f32_to_bf16(bf16_to_f32(v[i]) * inv * (bf16_to_f32(w[i]) + weightOffset));
}

// One thread per rotated pair. Head h of token t starts at x + t * rowStride + h * D; positions: [T]
// int32; invFreq: [D/2] fp32 (scaling applied). HF rotate-half: pairs (i, i + D/2).
extern "C" __global__ void __launch_bounds__(256) rope_heads(
    bf16_t* __restrict__ x, const int* __restrict__ positions, const float* __restrict__ invFreq, int T, int heads,
    int D, int rowStride) {
  const int half = D >> 1;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)T * heads * half) return;
  const int i = idx % half;
  const size_t th = idx / half;
  const int t = th / heads;
  const int h = th % heads;
  float s, c;
  // The angle is rounded to fp32 first, as transformers computes position * inv_freq in float32.
  sincosf((float)positions[t] * invFreq[i], &s, &c);
  bf16_t* v = x + (size_t)t * rowStride + (size_t)h * D;
  const float x1 = bf16_to_f32(v[i]);
  const float x2 = bf16_to_f32(v[i + half]);
  v[i] = f32_to_bf16(x1 * c - x2 * s);
  v[i + half] = f32_to_bf16(x2 * c + x1 * s);
}

extern "C" __global__ void __launch_bounds__(256) softcap_f32(float* __restrict__ x, int n, float cap) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  x[i] = cap * tanhf(x[i] / cap);
}

// Grid-stride over n values: x[i] = mean + halfWidth * u, u uniform in [-1, 1) from hash(seed, i).
extern "C" __global__ void __launch_bounds__(256) fill_uniform_bf16(
    bf16_t* __restrict__ x, int n, int seed, float mean, float halfWidth) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const u32 h = hash32((u32)i * 0x9e3779b9u ^ hash32((u32)seed));
    const float u = (float)(h >> 8) * (1.f / 8388608.f) - 1.f;
    x[i] = f32_to_bf16(fmaf(halfWidth, u, mean));
  }
}

// grid (1), block (1): the position a captured decode step reads (RoPE, KV row, attention length)
// moves on by one after the step, so the next replay needs no host write.
extern "C" __global__ void advance_position(int* __restrict__ pos) { *pos += 1; }
