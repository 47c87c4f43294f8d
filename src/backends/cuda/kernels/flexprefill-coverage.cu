// FlexPrefill's budget rule on the device (the CPU side is src/methods/flexprefill.ts:
// sortedPrefixSumsOfFloat32, coverCount, FlexPrefillPrefill.sizesFor):
//   fp_coverage_curves  one block per score row (the H vertical rows, then the H slash rows): the
//                       row's fp32 scores sorted descending by a stable LSD radix sort (4 passes of
//                       8 bits) over select.ts's order keys (every NaN first, +0 before -0: the same
//                       values in the same order as sortFloat32Descending), then the coverage curve
//                       prefix[i] = prefix[i - 1] + (double)sorted[i] * scale in float64, one rounded
//                       product and one rounded addition after another, exactly as the CPU loop adds
//                       them (no FMA contraction: __dmul_rn / __dadd_rn). The sum is serial by
//                       nature (a parallel scan rounds differently); one thread runs it per row while
//                       the block stages the products in shared memory.
//   fp_cover_sizes      per row: the CPU's binary search for the number of prefix sums <= alpha, plus
//                       one, clamped to n (all n when alpha >= 1), then
//                       max(forced, min(n, max(minBudget, cover))) -> counts [2H] (columns, then
//                       diagonals: the layout vertical-slash-index.cu reads)
#include "common.cuh"
#include "top-k.cuh"
#include "flexprefill-sizes.cuh"

namespace {
constexpr int THREADS = 1024;
constexpr int WARPS = THREADS / 32;
constexpr int ITEMS = 8;                // keys per thread in one tile
constexpr int TILE = THREADS * ITEMS;   // keys per tile
constexpr int CHAIN = 4096;             // products staged per chunk of the serial sum

// Descending value order = ascending key order (src/methods/select.ts sortFloat32Descending):
// NaN -> 0, positives from the largest (bits ^ 0x7fffffff), negatives from the smallest magnitude.
__device__ __forceinline__ u32 descending_key(u32 bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0u;
  return (bits & 0x80000000u) ? bits : (bits ^ 0x7fffffffu);
}

__device__ __forceinline__ float key_value(u32 key) {
  return __uint_as_float(key == 0u ? 0x7fc00000u : ((key & 0x80000000u) ? key : (key ^ 0x7fffffffu)));
}

struct CoverageShared {
  union {
    u32 warpHist[WARPS][256];  // sort: per warp and digit, its count, then its first output slot
    double chain[CHAIN];       // serial sum: products in, prefix sums out
  } u;
  u32 binBase[256];            // next output slot per digit (running over the tiles)
  TopKShared scan;
};

template <bool FROM_SCORES>
__device__ __forceinline__ u32 load_key(const void* src, int i) {
  if (FROM_SCORES) return descending_key(__float_as_uint(static_cast<const float*>(src)[i]));
  return static_cast<const u32*>(src)[i];
}

// One stable counting pass over digit (key >> shift) & 255: src [n] -> dst [n].
template <bool FROM_SCORES>
__device__ void radix_pass(const void* src, u32* dst, int n, int shift, CoverageShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const unsigned full = 0xffffffffu;
  // Digit histogram; lanes with the same digit add once (scores of one magnitude share high bytes).
  if (tid < 256) sh.binBase[tid] = 0u;
  __syncthreads();
  for (int base = 0; base < n; base += THREADS) {
    const int i = base + tid;
    const int d = i < n ? (int)((load_key<FROM_SCORES>(src, i) >> shift) & 255u) : -1;
    const unsigned peers = __match_any_sync(full, d);
    if (d >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.binBase[d], (u32)__popc(peers));
  }
  __syncthreads();
  int total;
  const int count = tid < 256 ? (int)sh.binBase[tid] : 0;
  const int before = topk_block_exclusive_scan<THREADS>(count, sh.scan, total);
  if (tid < 256) sh.binBase[tid] = (u32)before;
  __syncthreads();

  // Tiles in order; inside a tile warp w owns keys [w·32·ITEMS, (w + 1)·32·ITEMS), visited as ITEMS
  // rows of 32 consecutive keys, so (tile, warp, row, lane) is the input order and the pass is stable.
  const unsigned below = (1u << lane) - 1u;
  u32* hist = sh.u.warpHist[warp];
  for (int tile = 0; tile < n; tile += TILE) {
    const int first = tile + warp * 32 * ITEMS;
    u32 keys[ITEMS];
    int digits[ITEMS];
    for (int b = lane; b < 256; b += 32) hist[b] = 0u;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int i = first + j * 32 + lane;
      keys[j] = i < n ? load_key<FROM_SCORES>(src, i) : 0u;
      digits[j] = i < n ? (int)((keys[j] >> shift) & 255u) : -1;
      const unsigned peers = __match_any_sync(full, digits[j]);
      if (digits[j] >= 0 && lane == __ffs(peers) - 1) hist[digits[j]] += (u32)__popc(peers);
      __syncwarp();
    }
    __syncthreads();
    // Per digit: the warps' first slots in warp order after the tiles before this one.
    if (tid < 256) {
      u32 run = sh.binBase[tid];
      for (int w = 0; w < WARPS; ++w) {
        const u32 c = sh.u.warpHist[w][tid];
        sh.u.warpHist[w][tid] = run;
        run += c;
      }
      sh.binBase[tid] = run;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int d = digits[j];
      const unsigned peers = __match_any_sync(full, d);
      const u32 slot = d >= 0 ? hist[d] + (u32)__popc(peers & below) : 0u;
      __syncwarp();
      if (d >= 0) {
        if (lane == __ffs(peers) - 1) hist[d] += (u32)__popc(peers);
        dst[slot] = keys[j];
      }
      __syncwarp();
    }
  }
  __syncthreads();
}
}  // namespace

// grid (2H), THREADS threads. vertical / slash [H, n] fp32 scores; keysA / keysB [2H, n] scratch;
// prefix [2H, n] float64 out (rows: vertical heads, then slash heads). scale = 1/A as the two halves
// of a double (kernel parameters are 32-bit here).
extern "C" __global__ void __launch_bounds__(THREADS) fp_coverage_curves(
    const float* __restrict__ vertical, const float* __restrict__ slash, u32* __restrict__ keysA, u32* __restrict__ keysB,
    double* __restrict__ prefix, int n, int H, int scaleHi, int scaleLo) {
  __shared__ CoverageShared sh;
  const int row = blockIdx.x;
  const float* scores = (row < H ? vertical + (size_t)row * n : slash + (size_t)(row - H) * n);
  u32* a = keysA + (size_t)row * n;
  u32* b = keysB + (size_t)row * n;
  radix_pass<true>(scores, b, n, 0, sh);
  radix_pass<false>(b, a, n, 8, sh);
  radix_pass<false>(a, b, n, 16, sh);
  radix_pass<false>(b, a, n, 24, sh);

  const double scale = __hiloint2double(scaleHi, scaleLo);
  double* out = prefix + (size_t)row * n;
  double acc = 0.0;
  for (int base = 0; base < n; base += CHAIN) {
    const int len = min(CHAIN, n - base);
    for (int j = threadIdx.x; j < len; j += THREADS) sh.u.chain[j] = __dmul_rn((double)key_value(a[base + j]), scale);
    __syncthreads();
    if (threadIdx.x == 0) {
#pragma unroll 8
      for (int j = 0; j < len; ++j) {
        acc = __dadd_rn(acc, sh.u.chain[j]);
        sh.u.chain[j] = acc;
      }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < len; j += THREADS) out[base + j] = sh.u.chain[j];
    __syncthreads();
  }
}

// grid (ceil(2H / 128)), 128 threads. prefix [2H, n]; counts [2H] out. alpha as the two halves of a
// double.
extern "C" __global__ void __launch_bounds__(128) fp_cover_sizes(const double* __restrict__ prefix, int* __restrict__ counts, int n,
                                                                int H, int alphaHi, int alphaLo, int minBudget,
                                                                int forcedColumns, int forcedDiagonals) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= 2 * H) return;
  const double alpha = __hiloint2double(alphaHi, alphaLo);
  counts[row] = fp_size(prefix + (size_t)row * n, n, alpha, minBudget, row < H ? forcedColumns : forcedDiagonals);
}
