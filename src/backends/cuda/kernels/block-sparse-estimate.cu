// Importance estimation of the Block-Sparse method on the GPU (src/methods/block-sparse.ts is the
// reference): mean-pooled query and key chunks, pooled chunk-pair scores, and per (query head, query
// chunk) the kept key chunks, written ascending into the device chunk lists the attention reads.
//
//   pool_chunks        bf16 rows -> fp32 chunk means [heads, B, D]: sum of the chunk's rows / c, the last
//                      partial chunk zero-padded and still divided by c (as the method pools)
//   chunk_scores       S[hb, m, j] = qPool[h, m] . kPool[h / g, j] (fp32 FMA in order of d), only for the
//                      candidate pairs 1 <= j <= m - 2 (128 x 128 tiles, 8 x 8 per thread); a batch of heads
//   select_top_chunks  chunk m keeps 0 .. m when m + 1 <= t; else chunks 0, m - 1, m and the t - 3 best
//                      candidates (score descending, ties to the lower index, NaN last), found by a
//                      radix select over order-preserving integer keys; the kept set goes to a bitmap
//                      and out ascending, so the lists are the method's exactly.
// Layouts: scores [Hb, B, B] fp32 (row m, column j); lists [H, B, t] int32; counts [H, B] int32.
#include "common.cuh"

namespace {
constexpr int SELECT_THREADS = 256;
constexpr int SCORE_TILE = 128;
constexpr int SCORE_K = 8;
}  // namespace

// grid (B, heads), block D threads. src row r of head x at src + r * rowStride + x * headStride.
extern "C" __global__ void pool_chunks(const bf16_t* __restrict__ src, float* __restrict__ dst, int rows, int rowStride,
                                       int headStride, int c, int D, float invC) {
  const int m = blockIdx.x, x = blockIdx.y, d = threadIdx.x;
  const int B = gridDim.x;
  if (d >= D) return;
  const bf16_t* base = src + (size_t)x * headStride + d;
  const int r1 = min(rows, (m + 1) * c);
  float sum = 0.f;
  for (int r = m * c; r < r1; ++r) sum += bf16_to_f32(base[(size_t)r * rowStride]);
  dst[((size_t)x * B + m) * D + d] = sum * invC;
}

// grid (ceil(B / 128), ceil(B / 128), Hb), block 256: a 128 x 128 tile of (query chunk m, key chunk j),
// 8 x 8 per thread (rows ty*4 + {0..3} and 64 + ty*4 + {0..3}, columns likewise with tx), operands
// staged dim-major in shared memory 8 dims at a time. Each score is one fp32 FMA chain over d in order.
// Tiles with no candidate pair (all j > m - 2) or only rows that keep every chunk (m + 1 <= t) are skipped.
extern "C" __global__ void __launch_bounds__(256) chunk_scores(const float* __restrict__ qPool, const float* __restrict__ kPool,
                                                              float* __restrict__ scores, int B, int D, int headBase, int group, int t) {
  const int j0 = blockIdx.x * SCORE_TILE, m0 = blockIdx.y * SCORE_TILE;
  if (j0 > m0 + SCORE_TILE - 1 - 2 || m0 + SCORE_TILE - 1 < t) return;
  const int z = blockIdx.z, h = headBase + z;
  const float* qp = qPool + (size_t)h * B * D;
  const float* kp = kPool + (size_t)(h / group) * B * D;
  __shared__ __align__(16) float sq[SCORE_K][SCORE_TILE + 4];
  __shared__ __align__(16) float sk[SCORE_K][SCORE_TILE + 4];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  // Loader: one float4 (4 dims) of one row of each operand per thread.
  const int lr = tid / 2, lk = (tid % 2) * 4;
  const int lm = min(m0 + lr, B - 1), lj = min(j0 + lr, B - 1);
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) acc[i][jj] = 0.f;
  for (int d0 = 0; d0 < D; d0 += SCORE_K) {
    const float4 a = *reinterpret_cast<const float4*>(qp + (size_t)lm * D + d0 + lk);
    const float4 b = *reinterpret_cast<const float4*>(kp + (size_t)lj * D + d0 + lk);
    sq[lk + 0][lr] = a.x; sq[lk + 1][lr] = a.y; sq[lk + 2][lr] = a.z; sq[lk + 3][lr] = a.w;
    sk[lk + 0][lr] = b.x; sk[lk + 1][lr] = b.y; sk[lk + 2][lr] = b.z; sk[lk + 3][lr] = b.w;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SCORE_K; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&sq[kk][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&sq[kk][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&sk[kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&sk[kk][64 + tx * 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int jj = 0; jj < 8; ++jj) acc[i][jj] = fmaf(av[i], bv[jj], acc[i][jj]);
    }
    __syncthreads();
  }
  float* out = scores + (size_t)z * B * B;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
    if (m >= B) continue;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int j = j0 + (jj < 4 ? tx * 4 + jj : 64 + tx * 4 + jj - 4);
      if (j <= m - 2) out[(size_t)m * B + j] = acc[i][jj];
    }
  }
}

// Larger key = better: order-preserving map of floats (+0 and -0 equal, NaN below everything).
__device__ __forceinline__ u32 score_key(float f) {
  if (f != f) return 0u;
  if (f == 0.f) f = 0.f;
  const u32 u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Block-wide exclusive prefix of `mine` (SELECT_THREADS threads); total via *total.
__device__ __forceinline__ int block_exclusive_scan(int mine, int* warpTotals, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = mine;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += y;
  }
  __syncthreads();
  if (lane == 31) warpTotals[warp] = incl;
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < SELECT_THREADS / 32; ++w) {
    if (w < warp) before += warpTotals[w];
    all += warpTotals[w];
  }
  *total = all;
  return before + incl - mine;
}

// grid (B, Hb), block 256, dynamic shared memory (B + B / 32 + 1) words: candidate keys and the bitmap.
extern "C" __global__ void __launch_bounds__(SELECT_THREADS) select_top_chunks(
    const float* __restrict__ scores, int* __restrict__ lists, int* __restrict__ counts, int B, int t, int headBase) {
  extern __shared__ u32 shared[];
  __shared__ int hist[256];
  __shared__ int warpTotals[SELECT_THREADS / 32];
  __shared__ int chosen[3];  // digit found, elements in higher bins, elements in its bin
  const int m = blockIdx.x, z = blockIdx.y, h = headBase + z;
  const int tid = threadIdx.x;
  int* row = lists + ((size_t)h * B + m) * t;
  if (m + 1 <= t) {
    for (int j = tid; j <= m; j += SELECT_THREADS) row[j] = j;
    if (tid == 0) counts[(size_t)h * B + m] = m + 1;
    return;
  }
  const int C = m - 2;  // candidates are chunks 1 .. m - 2
  const int E = t - 3;  // how many of them are kept (C > E here, since m >= t)
  u32* keys = shared;
  u32* bitmap = shared + B;
  const int words = m / 32 + 1;
  for (int i = tid; i < words; i += SELECT_THREADS) bitmap[i] = 0u;
  const float* srow = scores + ((size_t)z * B + m) * B;
  for (int i = tid; i < C; i += SELECT_THREADS) keys[i] = score_key(srow[i + 1]);
  __syncthreads();
  if (tid == 0) {
    atomicOr(&bitmap[0], 1u);
    atomicOr(&bitmap[(m - 1) >> 5], 1u << ((m - 1) & 31));
    atomicOr(&bitmap[m >> 5], 1u << (m & 31));
  }

  if (E > 0) {
    // Radix select of the E-th largest key, 8 bits at a time from the top.
    u32 prefix = 0u, prefixMask = 0u;
    int remaining = E;  // how many still to take among keys matching the prefix
    for (int shift = 24; shift >= 0; shift -= 8) {
      hist[tid] = 0;  // SELECT_THREADS == 256 bins
      __syncthreads();
      if (shift == 24) {
        // Warp-aggregated: the leading bytes (sign, exponent) crowd into a few bins, so lanes of one
        // bin add once. Later passes only count the few keys left in the chosen bin: plain atomics.
        for (int base = tid & ~31; base < C; base += SELECT_THREADS) {
          const int i = base + (tid & 31);
          const u32 bin = i < C ? keys[i] >> 24 : 256u;
          const unsigned peers = __match_any_sync(0xffffffffu, bin);
          if (bin < 256u && (tid & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
        }
      } else {
        for (int i = tid; i < C; i += SELECT_THREADS) {
          const u32 key = keys[i];
          if ((key & prefixMask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
        }
      }
      __syncthreads();
      if (tid < 32) {
        // Warp 0 walks the bins from the top, 32 at a time: suffix sums find where `remaining` falls.
        int above = 0, found = -1;
        for (int base = 255; base >= 0 && found < 0; base -= 32) {
          const int bin = base - tid;
          const int cnt = hist[bin];
          int incl = cnt;  // inclusive prefix over lanes 0..tid = bins base .. bin (descending)
#pragma unroll
          for (int d = 1; d < 32; d <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, incl, d);
            if (tid >= d) incl += y;
          }
          const unsigned hit = __ballot_sync(0xffffffffu, above + incl >= remaining);
          if (hit) {
            const int lane = __ffs(hit) - 1;
            const int excl = __shfl_sync(0xffffffffu, incl - cnt, lane);
            found = base - lane;
            above += excl;
          } else {
            above += __shfl_sync(0xffffffffu, incl, 31);
          }
        }
        if (tid == 0) {
          chosen[0] = found;
          chosen[1] = above;
          chosen[2] = hist[found];  // after the last pass: how many keys equal the threshold
        }
      }
      __syncthreads();
      prefix |= (u32)chosen[0] << shift;
      prefixMask |= 255u << shift;
      remaining -= chosen[1];
      __syncthreads();
    }
    const u32 threshold = prefix;  // the E-th largest key; `remaining` of its equals are kept
    const bool takeAllEqual = chosen[2] == remaining;  // no tie across the boundary: every equal key is in
    for (int i = tid; i < C; i += SELECT_THREADS) {
      const u32 key = keys[i];
      if (key > threshold || (takeAllEqual && key == threshold)) atomicOr(&bitmap[(i + 1) >> 5], 1u << ((i + 1) & 31));
    }
    // A tie across the boundary: the lowest indices first (warp 0, 32 candidates at a time, in order).
    if (!takeAllEqual && tid < 32) {
      int need = remaining;
      for (int base = 0; base < C && need > 0; base += 32) {
        const int i = base + tid;
        const bool eq = i < C && keys[i] == threshold;
        const unsigned ball = __ballot_sync(0xffffffffu, eq);
        const int rank = __popc(ball & ((1u << tid) - 1u));
        if (eq && rank < need) atomicOr(&bitmap[(i + 1) >> 5], 1u << ((i + 1) & 31));
        need -= __popc(ball);
      }
    }
  }
  __syncthreads();

  // Ascending compaction of the bitmap into the list.
  const int per = (words + SELECT_THREADS - 1) / SELECT_THREADS;
  const int wb = min(words, tid * per), we = min(words, wb + per);
  int mine = 0;
  for (int i = wb; i < we; ++i) mine += __popc(bitmap[i]);
  int total;
  int pos = block_exclusive_scan(mine, warpTotals, &total);
  for (int i = wb; i < we; ++i) {
    u32 x = bitmap[i];
    while (x) {
      const int b = __ffs(x) - 1;
      x &= x - 1u;
      if (pos < t) row[pos] = i * 32 + b;
      ++pos;
    }
  }
  if (tid == 0) counts[(size_t)h * B + m] = min(total, t);
}
