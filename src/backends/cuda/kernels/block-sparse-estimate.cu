// Importance estimation of the Block-Sparse method on the GPU (src/methods/block-sparse.ts is the
// reference): mean-pooled query and key chunks, pooled chunk-pair scores, and per (query head, query
// chunk) the kept key chunks, written ascending into the device chunk lists the attention reads.
//
//   pool_chunks        bf16 rows -> fp32 chunk means [heads, B, D]: sum of the chunk's rows / c, the last
//                      partial chunk zero-padded and still divided by c (as the method pools)
//   chunk_scores       S[hb, m, j] = qPool[h, m] . kPool[h / g, j] (fp32 FMA in order of d), only for the
//                      candidate pairs 1 <= j <= m - 2 (64 x 64 tiles, 4 x 4 per thread); a batch of heads
//   select_top_chunks  chunk m keeps 0 .. m when m + 1 <= t; else chunks 0, m - 1, m and the t - 3 best
//                      candidates (score descending, ties to the lower index, NaN last), found by a
//                      radix select over order-preserving integer keys; the kept set goes to a bitmap
//                      and out ascending, so the lists are the method's exactly.
// Layouts: scores [Hb, B, B] fp32 (row m, column j); lists [H, B, t] int32; counts [H, B] int32.
#include "common.cuh"

namespace {
constexpr int SELECT_THREADS = 256;
constexpr int SCORE_TILE = 64;
constexpr int SCORE_K = 16;
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

// grid (ceil(B / 64), ceil(B / 64), Hb), block 256. Head of batch slot z: headBase + z.
extern "C" __global__ void __launch_bounds__(256) chunk_scores(const float* __restrict__ qPool, const float* __restrict__ kPool,
                                                              float* __restrict__ scores, int B, int D, int headBase, int group) {
  const int j0 = blockIdx.x * SCORE_TILE, m0 = blockIdx.y * SCORE_TILE;
  // Candidates need j <= m - 2: a tile whose first column is right of its last row's candidates is empty.
  if (j0 > m0 + SCORE_TILE - 1 - 2) return;
  const int z = blockIdx.z, h = headBase + z;
  const float* qp = qPool + (size_t)h * B * D;
  const float* kp = kPool + (size_t)(h / group) * B * D;
  __shared__ float sq[SCORE_K][SCORE_TILE + 4];
  __shared__ float sk[SCORE_K][SCORE_TILE + 4];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;  // columns 4 * tx .., rows 4 * ty ..
  float acc[4][4] = {};
  for (int d0 = 0; d0 < D; d0 += SCORE_K) {
    // 64 rows x 16 dims of each operand: 1024 values, 4 per thread, stored dim-major.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = tid + i * 256;
      const int r = idx / SCORE_K, kk = idx % SCORE_K;
      const int m = m0 + r, j = j0 + r;
      sq[kk][r] = m < B ? qp[(size_t)m * D + d0 + kk] : 0.f;
      sk[kk][r] = j < B ? kp[(size_t)j * D + d0 + kk] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < SCORE_K; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = sq[kk][4 * ty + i];
        b[i] = sk[kk][4 * tx + i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) acc[i][jj] = fmaf(a[i], b[jj], acc[i][jj]);
    }
    __syncthreads();
  }
  float* out = scores + (size_t)z * B * B;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + 4 * ty + i;
    if (m >= B) continue;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int j = j0 + 4 * tx + jj;
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
  __shared__ int chosen[2];  // digit found, elements above it
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
      for (int i = tid; i < C; i += SELECT_THREADS) {
        const u32 key = keys[i];
        if ((key & prefixMask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
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
        }
      }
      __syncthreads();
      prefix |= (u32)chosen[0] << shift;
      prefixMask |= 255u << shift;
      remaining -= chosen[1];
      __syncthreads();
    }
    const u32 threshold = prefix;  // the E-th largest key; `remaining` of its equals are kept
    for (int i = tid; i < C; i += SELECT_THREADS) {
      if (keys[i] > threshold) atomicOr(&bitmap[(i + 1) >> 5], 1u << ((i + 1) & 31));
    }
    // Equal keys: the lowest indices first (warp 0, 32 candidates at a time, in index order).
    if (tid < 32) {
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
