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
//   rope_append_at   bias + RoPE of q and k + K/V cache append of one token (a captured decode step)
//   gemv_bf16        y[N] = W[N, K] x[K], one token's linear layer (T = 1) without cuBLAS
//   gemv_bf16_deep   the same with twice the loads in flight per thread (opt-in)
//   gemv_fused_bf16  the same with the step's small kernels folded in (opt-in): x RMSNorm-ed in the
//                    prologue, the residual add or the gated activation in the epilogue
// No codegen parameters: one module serves every shape.
#include "common.cuh"
#include "row-rms.cuh"

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
  // Unrolled so that several rows' loads are in flight before the first store (each store waits for its load).
#pragma unroll 8
  for (int i = threadIdx.x; i < C; i += blockDim.x) dst[i] = f32_to_bf16(bf16_to_f32(src[i]) * scale);
}

// One thread per output. gu: [rows, 2I]; out: [rows, I].
// release: 1 lets a programmatic dependent launched after this kernel (the down GEMV, which waits for
// this grid before reading) start now; 0 as before.
extern "C" __global__ void __launch_bounds__(256) gated_act_rows(
    const bf16_t* __restrict__ gu, bf16_t* __restrict__ out, int rows, int I, int act, int release) {
  if (release) asm volatile("griddepcontrol.launch_dependents;");
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

// One token of a captured decode step, the work between its qkv projection and attention in one launch:
// q|k|v bias (optional), rotate-half RoPE of the q and k heads at position *posDev, all written back into
// the fused qkv row, and K/V of the token into cache row *posDev of every KV head (as kv_append_at).
// Bit for bit what bias_add_rows, rope_heads (q heads, then k heads) and kv_append_at give: the same
// roundings in the same order.
//   qkv : [(H + 2 Hkv) D] bf16, q heads then k heads then v heads, in place; bias: same length, or null
//   invFreq: [D/2] fp32; kCache, vCache: [Hkv, capacity, D] bf16
// grid (H + 2 Hkv): one block per head slot; block (D/2): one thread per rotated pair (i, i + D/2).
extern "C" __global__ void __launch_bounds__(128) rope_append_at(
    bf16_t* __restrict__ qkv, const bf16_t* __restrict__ bias, const float* __restrict__ invFreq,
    bf16_t* __restrict__ kCache, bf16_t* __restrict__ vCache, const int* __restrict__ posDev, int H, int Hkv, int D,
    int capacity) {
  const int half = D >> 1;
  const int i = threadIdx.x;
  const int slot = blockIdx.x;
  if (i >= half) return;
  const int pos = *posDev;
  bf16_t* v = qkv + (size_t)slot * D;
  float x1 = bf16_to_f32(v[i]);
  float x2 = bf16_to_f32(v[i + half]);
  if (bias != nullptr) {
    const bf16_t* b = bias + (size_t)slot * D;
    // Rounded to bf16 as the separate bias kernel stores it.
    x1 = bf16_to_f32(f32_to_bf16(x1 + bf16_to_f32(b[i])));
    x2 = bf16_to_f32(f32_to_bf16(x2 + bf16_to_f32(b[i + half])));
  }
  bf16_t y1, y2;
  if (slot < H + Hkv) {
    float s, c;
    sincosf((float)pos * invFreq[i], &s, &c);
    y1 = f32_to_bf16(x1 * c - x2 * s);
    y2 = f32_to_bf16(x2 * c + x1 * s);
  } else {
    y1 = f32_to_bf16(x1);  // exact: x1, x2 hold bf16 values
    y2 = f32_to_bf16(x2);
  }
  v[i] = y1;
  v[i + half] = y2;
  if (slot < H || pos < 0 || pos >= capacity) return;  // the host checks capacity before each replay
  const bool isKey = slot < H + Hkv;
  const int h = isKey ? slot - H : slot - H - Hkv;
  bf16_t* dst = (isKey ? kCache : vCache) + ((size_t)h * capacity + pos) * D;
  dst[i] = y1;
  dst[i + half] = y2;
}

namespace {
// 16 bytes of a weight row that is read once: no L1 allocation (the activations stay there).
__device__ __forceinline__ uint4 load_streaming16(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

// Dot product of 8 bf16 pairs packed in two uint4, accumulated in fp32 in element order.
__device__ __forceinline__ float dot8(uint4 w, uint4 x, float acc) {
  const u32 ws[4] = {w.x, w.y, w.z, w.w}, xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc = fmaf(__uint_as_float(ws[i] << 16), __uint_as_float(xs[i] << 16), acc);
    acc = fmaf(__uint_as_float(ws[i] & 0xffff0000u), __uint_as_float(xs[i] & 0xffff0000u), acc);
  }
  return acc;
}
}  // namespace

// One token's linear layer, y = W x with W [N, K] bf16 row-major (an HF Linear weight), x [K] bf16,
// y [N] bf16 (outF32 = 0) or fp32 (outF32 = 1); fp32 accumulation. K a multiple of 8, W and x 16-byte
// aligned (the launcher checks). grid (ceil(N / 8)), block (256): one warp per row; lane l reads the
// 16-byte chunks l, l + 32, ... of its row, four at a time, so each thread keeps 64 bytes of the weight
// stream in flight (DEEP: the next four requested before the current four are used, 128 bytes, in
// gemv_bf16_deep). Bandwidth-bound: every weight byte is read once. Either way each lane adds its chunks
// in ascending order into one sum: the same bits.
template <bool DEEP>
__device__ __forceinline__ void gemv_row(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, void* __restrict__ y, int N, int K, int outF32) {
  const int row = blockIdx.x * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const uint4* w = reinterpret_cast<const uint4*>(W + (size_t)row * K);
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const int chunks = K >> 3;
  float acc = 0.f;
  int c = lane;
  // The weights do not depend on the kernel before: the first four chunks are requested before
  // waiting for it (griddepcontrol.wait, a no-op unless launched as a programmatic dependent), so in
  // a programmatic launch they stream while that kernel finishes. Same sums in the same order either way.
  uint4 a0, a1, a2, a3, b0, b1, b2, b3;
  const bool full = c + 96 < chunks;
  if (full) {
    a0 = load_streaming16(w + c), a1 = load_streaming16(w + c + 32);
    a2 = load_streaming16(w + c + 64), a3 = load_streaming16(w + c + 96);
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (full && !DEEP) {
    for (;;) {
      acc = dot8(a0, xv[c], acc);
      acc = dot8(a1, xv[c + 32], acc);
      acc = dot8(a2, xv[c + 64], acc);
      acc = dot8(a3, xv[c + 96], acc);
      c += 128;
      if (c + 96 >= chunks) break;
      a0 = load_streaming16(w + c), a1 = load_streaming16(w + c + 32);
      a2 = load_streaming16(w + c + 64), a3 = load_streaming16(w + c + 96);
    }
  } else if (full) {
    // Two sets of four in turn: one is summed while the other is in flight.
    bool nextB = c + 224 < chunks;
    if (nextB) {
      b0 = load_streaming16(w + c + 128), b1 = load_streaming16(w + c + 160);
      b2 = load_streaming16(w + c + 192), b3 = load_streaming16(w + c + 224);
    }
    for (;;) {
      acc = dot8(a0, xv[c], acc);
      acc = dot8(a1, xv[c + 32], acc);
      acc = dot8(a2, xv[c + 64], acc);
      acc = dot8(a3, xv[c + 96], acc);
      c += 128;
      if (!nextB) break;
      const bool nextA = c + 224 < chunks;
      if (nextA) {
        a0 = load_streaming16(w + c + 128), a1 = load_streaming16(w + c + 160);
        a2 = load_streaming16(w + c + 192), a3 = load_streaming16(w + c + 224);
      }
      acc = dot8(b0, xv[c], acc);
      acc = dot8(b1, xv[c + 32], acc);
      acc = dot8(b2, xv[c + 64], acc);
      acc = dot8(b3, xv[c + 96], acc);
      c += 128;
      if (!nextA) break;
      nextB = c + 224 < chunks;
      if (nextB) {
        b0 = load_streaming16(w + c + 128), b1 = load_streaming16(w + c + 160);
        b2 = load_streaming16(w + c + 192), b3 = load_streaming16(w + c + 224);
      }
    }
  }
  for (; c < chunks; c += 32) acc = dot8(load_streaming16(w + c), xv[c], acc);
  acc = warp_sum(acc);
  if (lane != 0) return;
  if (outF32) reinterpret_cast<float*>(y)[row] = acc;
  else reinterpret_cast<bf16_t*>(y)[row] = f32_to_bf16(acc);
}

extern "C" __global__ void __launch_bounds__(256) gemv_bf16(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, void* __restrict__ y, int N, int K, int outF32) {
  gemv_row<false>(W, x, y, N, K, outF32);
}

extern "C" __global__ void __launch_bounds__(256) gemv_bf16_deep(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, void* __restrict__ y, int N, int K, int outF32) {
  gemv_row<true>(W, x, y, N, K, outF32);
}

// gemv_fused_bf16 flags.
#define GF_NORM 1       // x normalised in the prologue: x / rms(x) * (normW + weightOffset), as rmsnorm
#define GF_RESIDUAL 2   // y is the residual stream [N] bf16: y[r] = y[r] + bf16(W x)[r], as add
#define GF_GATED 4      // unit i = rows i (gate) and gatedInner + i (up): y[i] = act(gate) * up, as gated_act_rows
#define GF_GELU 8       // with GF_GATED: gelu tanh instead of silu
#define GF_OUT_F32 16   // plain output in fp32 (the LM head)
#define GF_RELEASE 32   // griddepcontrol.launch_dependents at the start (a programmatic dependent may start)
#define GF_NORM_REGS 16

// gemv_fused_bf16's epilogue for one unit: accUp is the up row's sum with GF_GATED.
__device__ __forceinline__ void write_fused_unit(void* __restrict__ y, int unit, float acc, float accUp, int flags) {
  if (flags & GF_GATED) {
    // As gated_act_rows on the bf16 gate|up outputs.
    const float gv = bf16_to_f32(f32_to_bf16(acc)), uv = bf16_to_f32(f32_to_bf16(accUp));
    float a;
    if (flags & GF_GELU) {
      const float inner = 0.7978845608028654f * (gv + 0.044715f * gv * gv * gv);
      a = 0.5f * gv * (1.f + tanhf(inner));
    } else {
      a = gv / (1.f + __expf(-gv));
    }
    reinterpret_cast<bf16_t*>(y)[unit] = f32_to_bf16(a * uv);
  } else if (flags & GF_RESIDUAL) {
    bf16_t* res = reinterpret_cast<bf16_t*>(y);
    res[unit] = f32_to_bf16(bf16_to_f32(res[unit]) + bf16_to_f32(f32_to_bf16(acc)));
  } else if (flags & GF_OUT_F32) {
    reinterpret_cast<float*>(y)[unit] = acc;
  } else {
    reinterpret_cast<bf16_t*>(y)[unit] = f32_to_bf16(acc);
  }
}

// One token's linear layer with its neighbours folded in, bit for bit what rmsnorm / add_rmsnorm,
// gemv_bf16, gated_act_rows and add give (the same roundings; the same per-lane chunk order and warp sum
// as gemv_bf16; the norm's reduction exactly as rmsnorm's with 256 threads).
//   W: [rows, K] bf16; x: [K] bf16 (the residual stream with GF_NORM); normW: [K] or null; y: see flags.
//   units: output rows (gated: gatedInner pairs). grid (any), block (256): warp w of block b takes units
//   b * 8 + w, then + gridDim.x * 8, ...; x (normed or not) is staged once per block in dynamic shared
//   memory (K * 2 bytes). The first unit's first weight chunks are prefetched to L2 before
//   griddepcontrol.wait (a no-op unless launched as a programmatic dependent).
// DEEP (gemv_fused_bf16_deep): eight chunks a lane requested per batch (gated: four of each row) before
// the batches of four (two), the same chunks in the same order.
template <bool DEEP>
__device__ __forceinline__ void gemv_fused(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, const bf16_t* __restrict__ normW, void* __restrict__ y,
    int units, int K, int gatedInner, float eps, float weightOffset, int flags) {
  extern __shared__ uint4 xs4[];
  __shared__ float partial[8];
  if (flags & GF_RELEASE) asm volatile("griddepcontrol.launch_dependents;");
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int chunks = K >> 3;
  const bool gated = (flags & GF_GATED) != 0;
  const uint4* W4 = reinterpret_cast<const uint4*>(W);
  const int firstUnit = blockIdx.x * 8 + warp;
  if (firstUnit < units) {
    const uint4* r0 = W4 + (size_t)firstUnit * chunks;
    const uint4* r1 = gated ? W4 + (size_t)(gatedInner + firstUnit) * chunks : r0 + 64;
    if (lane < chunks) asm volatile("prefetch.global.L2 [%0];" ::"l"(r0 + lane));
    if (lane + 32 < chunks) asm volatile("prefetch.global.L2 [%0];" ::"l"(r0 + lane + 32));
    if ((gated ? lane : lane + 64) < chunks) asm volatile("prefetch.global.L2 [%0];" ::"l"(r1 + lane));
    if ((gated ? lane : lane + 64) + 32 < chunks) asm volatile("prefetch.global.L2 [%0];" ::"l"(r1 + lane + 32));
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");

  bf16_t* xs = reinterpret_cast<bf16_t*>(xs4);
  const int t = threadIdx.x;
  if ((flags & GF_NORM) && K <= GF_NORM_REGS * ROW_RMS_THREADS) {
    // As rmsnorm's register form (row-rms.cuh): the row and the weights requested at once, 16 values
    // a thread (rows up to 4096; wider ones take the loop) to keep registers for the GEMV's occupancy.
    float v[GF_NORM_REGS], g[GF_NORM_REGS];
    row_rms_load(x, normW, K, v, g);
    const float inv = row_inv_rms(row_rms_sum_squares(v, K), partial, K, eps);
    row_rms_store(xs, v, g, inv, weightOffset, K);
  } else if (flags & GF_NORM) {
    float ss = 0.f;
    for (int i = t; i < K; i += blockDim.x) {
      const float v = bf16_to_f32(x[i]);
      ss = fmaf(v, v, ss);
    }
    const float inv = row_inv_rms(ss, partial, K, eps);
    for (int i = t; i < K; i += blockDim.x) {
      xs[i] = f32_to_bf16(bf16_to_f32(x[i]) * inv * (bf16_to_f32(normW[i]) + weightOffset));
    }
  } else {
    // Several 16-byte chunks requested before the first is stored (each store waits for its load).
#pragma unroll 8
    for (int i = t; i < chunks; i += blockDim.x) xs4[i] = reinterpret_cast<const uint4*>(x)[i];
  }
  __syncthreads();

  for (int unit = firstUnit; unit < units; unit += gridDim.x * 8) {
    float acc = 0.f, accUp = 0.f;
    int c = lane;
    if (!gated) {
      const uint4* w = W4 + (size_t)unit * chunks;
      if (DEEP) {
        for (; c + 224 < chunks; c += 256) {
          uint4 q[8];
#pragma unroll
          for (int k = 0; k < 8; ++k) q[k] = load_streaming16(w + c + 32 * k);
#pragma unroll
          for (int k = 0; k < 8; ++k) acc = dot8(q[k], xs4[c + 32 * k], acc);
        }
      }
      for (; c + 96 < chunks; c += 128) {
        const uint4 w0 = load_streaming16(w + c), w1 = load_streaming16(w + c + 32);
        const uint4 w2 = load_streaming16(w + c + 64), w3 = load_streaming16(w + c + 96);
        acc = dot8(w0, xs4[c], acc);
        acc = dot8(w1, xs4[c + 32], acc);
        acc = dot8(w2, xs4[c + 64], acc);
        acc = dot8(w3, xs4[c + 96], acc);
      }
      for (; c < chunks; c += 32) acc = dot8(load_streaming16(w + c), xs4[c], acc);
    } else {
      // Each row's chunks in the same order as gemv_bf16's loop takes them: the same sums.
      const uint4* g = W4 + (size_t)unit * chunks;
      const uint4* u = W4 + (size_t)(gatedInner + unit) * chunks;
      if (DEEP) {
        for (; c + 96 < chunks; c += 128) {
          uint4 gq[4], uq[4];
#pragma unroll
          for (int k = 0; k < 4; ++k) gq[k] = load_streaming16(g + c + 32 * k), uq[k] = load_streaming16(u + c + 32 * k);
#pragma unroll
          for (int k = 0; k < 4; ++k) acc = dot8(gq[k], xs4[c + 32 * k], acc);
#pragma unroll
          for (int k = 0; k < 4; ++k) accUp = dot8(uq[k], xs4[c + 32 * k], accUp);
        }
      }
      for (; c + 32 < chunks; c += 64) {
        const uint4 g0 = load_streaming16(g + c), g1 = load_streaming16(g + c + 32);
        const uint4 u0 = load_streaming16(u + c), u1 = load_streaming16(u + c + 32);
        acc = dot8(g0, xs4[c], acc);
        acc = dot8(g1, xs4[c + 32], acc);
        accUp = dot8(u0, xs4[c], accUp);
        accUp = dot8(u1, xs4[c + 32], accUp);
      }
      for (; c < chunks; c += 32) {
        acc = dot8(load_streaming16(g + c), xs4[c], acc);
        accUp = dot8(load_streaming16(u + c), xs4[c], accUp);
      }
      accUp = warp_sum(accUp);
    }
    acc = warp_sum(acc);
    if (lane == 0) write_fused_unit(y, unit, acc, accUp, flags);
  }
}

extern "C" __global__ void __launch_bounds__(256) gemv_fused_bf16(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, const bf16_t* __restrict__ normW, void* __restrict__ y,
    int units, int K, int gatedInner, float eps, float weightOffset, int flags) {
  gemv_fused<false>(W, x, normW, y, units, K, gatedInner, eps, weightOffset, flags);
}

extern "C" __global__ void __launch_bounds__(256) gemv_fused_bf16_deep(
    const bf16_t* __restrict__ W, const bf16_t* __restrict__ x, const bf16_t* __restrict__ normW, void* __restrict__ y,
    int units, int K, int gatedInner, float eps, float weightOffset, int flags) {
  gemv_fused<true>(W, x, normW, y, units, K, gatedInner, eps, weightOffset, flags);
}
