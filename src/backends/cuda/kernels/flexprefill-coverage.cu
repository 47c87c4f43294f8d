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
#include "radix-sort.cuh"

namespace {
constexpr int THREADS = 1024;
constexpr int ITEMS = 8;     // keys per thread in one sort tile
constexpr int CHAIN = 4096;  // products staged per chunk of the serial sum (the sort's 32 KB of warp histograms)
static_assert(CHAIN * sizeof(double) == sizeof(RadixShared<THREADS>::warpHist), "the chain reuses the warp histograms");

// Descending value order = ascending key order (src/methods/select.ts sortFloat32Descending):
// NaN -> 0, positives from the largest (bits ^ 0x7fffffff), negatives from the smallest magnitude.
__device__ __forceinline__ u32 descending_key(u32 bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0u;
  return (bits & 0x80000000u) ? bits : (bits ^ 0x7fffffffu);
}

__device__ __forceinline__ float key_value(u32 key) {
  return __uint_as_float(key == 0u ? 0x7fc00000u : ((key & 0x80000000u) ? key : (key ^ 0x7fffffffu)));
}
}  // namespace

// grid (2H), THREADS threads. vertical / slash [H, n] fp32 scores; keysA / keysB [2H, n] scratch;
// prefix [2H, n] float64 out (rows: vertical heads, then slash heads). scale = 1/A as the two halves
// of a double (kernel parameters are 32-bit here).
extern "C" __global__ void __launch_bounds__(THREADS) fp_coverage_curves(
    const float* __restrict__ vertical, const float* __restrict__ slash, u32* __restrict__ keysA, u32* __restrict__ keysB,
    double* __restrict__ prefix, int n, int H, int scaleHi, int scaleLo) {
  __shared__ RadixShared<THREADS> sh;
  const int row = blockIdx.x;
  const float* scores = (row < H ? vertical + (size_t)row * n : slash + (size_t)(row - H) * n);
  u32* a = keysA + (size_t)row * n;
  u32* b = keysB + (size_t)row * n;
  auto none = [](int) { return 0; };
  radix_pass<THREADS, ITEMS, false>([&](int i) { return descending_key(__float_as_uint(scores[i])); }, none, b, nullptr, n, 0, sh);
  radix_pass<THREADS, ITEMS, false>([&](int i) { return b[i]; }, none, a, nullptr, n, 8, sh);
  radix_pass<THREADS, ITEMS, false>([&](int i) { return a[i]; }, none, b, nullptr, n, 16, sh);
  radix_pass<THREADS, ITEMS, false>([&](int i) { return b[i]; }, none, a, nullptr, n, 24, sh);

  const double scale = __hiloint2double(scaleHi, scaleLo);
  double* out = prefix + (size_t)row * n;
  double* chain = reinterpret_cast<double*>(&sh.warpHist[0][0]);
  double acc = 0.0;
  for (int base = 0; base < n; base += CHAIN) {
    const int len = min(CHAIN, n - base);
    for (int j = threadIdx.x; j < len; j += THREADS) chain[j] = __dmul_rn((double)key_value(a[base + j]), scale);
    __syncthreads();
    if (threadIdx.x == 0) {
#pragma unroll 8
      for (int j = 0; j < len; ++j) {
        acc = __dadd_rn(acc, chain[j]);
        chain[j] = acc;
      }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < len; j += THREADS) out[base + j] = chain[j];
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
