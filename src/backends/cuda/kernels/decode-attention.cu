// Decode attention over a KV cache (one new token), split-K over the context:
//   decode_partial: block (split s, KV head hk) reads its chunk of rows once and serves all GROUP query
//                   heads of the KV head (the GQA group), writing an unnormalised partial output with
//                   its row max and exp-sum (log2 domain).
//   decode_combine: block (query head h) merges the splits' partials into the final [H, D] output.
// Memory-bound: each K and V row is read once, with 16-byte loads, D/8 lanes per row.
//
// Layouts:
//   q     : [H, D] bf16                 out : [H, D] bf16
//   k, v  : [Hkv, kvStride, D] bf16     rows [0, kvLen) valid (per-KV-head contiguous rows)
//   partO : [splits, H, D] fp32          partML : [splits, H, 2] fp32 (max, sum), log2 domain
// Query head h reads KV head h / GROUP.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), GROUP (query heads per KV head, 1..8), CHUNK (rows
// per split, a multiple of 64).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GROUP
#define GROUP 4
#endif
#ifndef CHUNK
#define CHUNK 512
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int THREADS = 32 * WARPS;
constexpr int LANES_PER_ROW = D / 8;                   // each lane holds 8 consecutive bf16 (16 bytes)
constexpr int ROWS_PER_WARP = 32 / LANES_PER_ROW;
constexpr int ROWS_PER_PASS = ROWS_PER_WARP * WARPS;  // rows the block covers per load round
constexpr int UNROLL = 8;                              // independent 16-byte loads in flight per lane
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(CHUNK % (ROWS_PER_PASS * UNROLL) == 0, "CHUNK must be a multiple of rows per unrolled pass");
static_assert(GROUP >= 1 && GROUP <= 8, "GROUP must be 1..8");

struct alignas(16) Vec8 {
  u32 w[4];
};

__device__ __forceinline__ void unpack8(const Vec8& v, float* f) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(v.w[i] << 16);
    f[2 * i + 1] = __uint_as_float(v.w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ Vec8 load_stream(const bf16_t* p) {
  Vec8 v;
  // Streamed once: keep it out of L1.
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "l"(p));
  return v;
}
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS) decode_partial(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    float* __restrict__ partO, float* __restrict__ partML, int H, int kvStride, int kvLen, float scaleLog2) {
  __shared__ float scores[GROUP][CHUNK];
  __shared__ float reduceO[WARPS][GROUP][D];

  const int split = blockIdx.x;
  const int hk = blockIdx.y;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int sub = lane % LANES_PER_ROW;        // which 8-wide slice of the row
  const int rowInWarp = lane / LANES_PER_ROW;  // which row of the warp's ROWS_PER_WARP
  const int rowBase = split * CHUNK;
  const int rows = min(CHUNK, kvLen - rowBase);  // > 0: the launcher sizes the grid from kvLen

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;

  // This lane's slice of every query head of the group, pre-scaled into the log2 domain.
  float qv[GROUP][8];
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    const Vec8 raw = *reinterpret_cast<const Vec8*>(q + (size_t)(hk * GROUP + gh) * D + sub * 8);
    unpack8(raw, qv[gh]);
#pragma unroll
    for (int e = 0; e < 8; ++e) qv[gh][e] *= scaleLog2;
  }

  // Pass 1: scores of every row of the chunk for every head of the group.
  for (int base = 0; base < rows; base += ROWS_PER_PASS * UNROLL) {
    Vec8 kr[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * ROWS_PER_PASS + warp * ROWS_PER_WARP + rowInWarp;
      if (r < rows) kr[u] = load_stream(kHead + (size_t)(rowBase + r) * D + sub * 8);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * ROWS_PER_PASS + warp * ROWS_PER_WARP + rowInWarp;
      float kf[8];
      unpack8(kr[u], kf);
#pragma unroll
      for (int gh = 0; gh < GROUP; ++gh) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(qv[gh][e], kf[e], dot);
#pragma unroll
        for (int off = LANES_PER_ROW / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (sub == 0 && r < rows) scores[gh][r] = dot;
      }
    }
  }
  __syncthreads();

  // Pass 2: per head, max and exp-sum over the chunk; scores become unnormalised probabilities.
  for (int gh = warp; gh < GROUP; gh += WARPS) {
    float mx = NEG_INF;
    for (int r = lane; r < rows; r += 32) mx = fmaxf(mx, scores[gh][r]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    float sum = 0.f;
    for (int r = lane; r < rows; r += 32) {
      const float p = fast_exp2(scores[gh][r] - mx);
      scores[gh][r] = p;
      sum += p;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) {
      float* ml = partML + ((size_t)split * H + hk * GROUP + gh) * 2;
      ml[0] = mx;
      ml[1] = sum;
    }
  }
  __syncthreads();

  // Pass 3: unnormalised P V; each lane accumulates its 8-wide slice for every head.
  float acc[GROUP][8];
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[gh][e] = 0.f;
  for (int base = 0; base < rows; base += ROWS_PER_PASS * UNROLL) {
    Vec8 vr[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * ROWS_PER_PASS + warp * ROWS_PER_WARP + rowInWarp;
      if (r < rows) vr[u] = load_stream(vHead + (size_t)(rowBase + r) * D + sub * 8);
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * ROWS_PER_PASS + warp * ROWS_PER_WARP + rowInWarp;
      if (r < rows) {
        float vf[8];
        unpack8(vr[u], vf);
#pragma unroll
        for (int gh = 0; gh < GROUP; ++gh) {
          const float p = scores[gh][r];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[gh][e] = fmaf(p, vf[e], acc[gh][e]);
        }
      }
    }
  }
  // Sum the warp's rows (lanes with the same slice), then the warps, through shared memory.
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh)
#pragma unroll
    for (int e = 0; e < 8; ++e)
#pragma unroll
      for (int off = LANES_PER_ROW; off < 32; off <<= 1)
        acc[gh][e] += __shfl_xor_sync(0xffffffffu, acc[gh][e], off);
  if (rowInWarp == 0) {
#pragma unroll
    for (int gh = 0; gh < GROUP; ++gh)
#pragma unroll
      for (int e = 0; e < 8; ++e) reduceO[warp][gh][sub * 8 + e] = acc[gh][e];
  }
  __syncthreads();
  for (int i = tid; i < GROUP * D; i += THREADS) {
    const int gh = i / D, d = i % D;
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) s += reduceO[w][gh][d];
    partO[((size_t)split * H + hk * GROUP + gh) * D + d] = s;
  }
}

// grid (H), block (D): merges `splits` partials of query head h.
extern "C" __global__ void __launch_bounds__(128) decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  const int h = blockIdx.x;
  const int d = threadIdx.x;
  float m = NEG_INF;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, partML[((size_t)s * H + h) * 2]);
  float total = 0.f, acc = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float* ml = partML + ((size_t)s * H + h) * 2;
    const float w = fast_exp2(ml[0] - m);
    total += w * ml[1];
    if (d < D) acc += w * partO[((size_t)s * H + h) * D + d];
  }
  if (d < D) out[(size_t)h * D + d] = f32_to_bf16(acc / total);
}
