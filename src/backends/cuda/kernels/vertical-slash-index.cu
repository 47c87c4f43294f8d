// Vertical-Slash selection and its execution index, on the device (the CPU side is
// src/methods/vertical-slash-pattern.ts: forcedRanks, VerticalSlashBuilder):
//   vs_select          per head: the top `counts[h]` of n scores with items 0 .. forced-1 ranked first
//                      (sink columns 0..3, diagonals 0..63) and ties to the lower index, written as an
//                      ascending index list [H, stride]
//   vs_layout_ranges   per (head, 64-row query block m): the original's merge of kept diagonals into
//                      64-wide key ranges (offsets visited from the largest, e = max(end - o, 64); a
//                      range is extended by 64 when e lies within 64 past its end, else a new one
//                      starts), the number of kept columns outside every range and left of the last
//                      one, and the block's exact causal pairs (summed per head, 64-bit)
//   vs_count_pairs     vs_layout_ranges' exact pairs alone, nothing stored (a count search's probe)
//   vs_scan            exclusive prefix sum of the per-block column counts (one block)
//   vs_layout_columns  per (head, block): those columns, ascending, into one flat list
//
// Range storage: vertical-slash-ranges.cuh (C = the largest slash count).
#include "common.cuh"
#include "top-k.cuh"
#include "vertical-slash-ranges.cuh"
#include "vertical-slash-walk.cuh"

namespace {
constexpr int SELECT_THREADS = 1024;
constexpr int RANGE_STAGE_INTS = 6144;  // vs_layout_ranges_staged: a head's kept columns and offsets, when they fit

// vs_layout_ranges' work for this thread's (head h, block m) over the kept columns V [kv] and offsets
// S [ks] (global or staged); adds the block's pairs into blockPairs.
__device__ __forceinline__ void vs_layout_ranges_block(const int* V, int kv, const int* S, int ks, int h, int m, int2* __restrict__ ranges,
                                                       int* __restrict__ rangeCount, int* __restrict__ colCount, int* __restrict__ status,
                                                       int n, int numBlocks, int C, int perHead, long long& blockPairs) {
  const int start = m * VS_BLOCK, end = start + VS_BLOCK, rowEnd = min(end, n);
  int2* out = ranges + (size_t)h * perHead + vs_range_offset(m, C);
  const int cap = min(C, m + 2);
  int count = 0;
  vs_walk_ranges(S, ks, end, [&](int a, int b) {
    if (count < cap) out[count] = make_int2(a, b);
    ++count;
  });
  if (count > cap) {
    status[0] = 1;
    count = cap;
  }
  int next = 0, cols = 0;  // next: the first kept column right of the ranges so far
  for (int r = 0; r < count; ++r) {
    const int2 rg = out[r];
    blockPairs += vs_causal_rect_pairs(start, rowEnd, rg.x, rg.y);
    const int left = vs_gallop(V, kv, next, rg.x);
    cols += left - next;
    next = vs_gallop(V, kv, left, rg.y);
  }
  blockPairs += (long long)cols * (rowEnd - start);
  rangeCount[(size_t)h * numBlocks + m] = count;
  colCount[(size_t)h * numBlocks + m] = cols;
}
}  // namespace

// grid (H), SELECT_THREADS threads. scores [H, n]; counts [H] (clamped to n); selected [H, stride].
extern "C" __global__ void __launch_bounds__(SELECT_THREADS) vs_select(const float* __restrict__ scores, const int* __restrict__ counts,
                                                                      int* __restrict__ selected, int n, int forced, int stride) {
  __shared__ TopKShared sh;
  const int h = blockIdx.x;
  const float* row = scores + (size_t)h * n;
  int* out = selected + (size_t)h * stride;
  const int k = min(counts[h], n);
  // Forced items outrank every score (a float's order key is at most 0xff800000, +inf).
  auto keyOf = [&](int i) -> u32 { return i < forced ? 0xffffffffu : topk_order_key(row[i]); };
  const TopKCut cut = topk_cut<SELECT_THREADS>(n, k, keyOf, sh);
  topk_emit<SELECT_THREADS>(n, cut, keyOf, [&](int i, int rank) { out[rank] = i; }, sh);
}

// grid (ceil(numBlocks / 128), H), 128 threads. selV [H, strideV] ascending columns, selS [H, strideS]
// ascending offsets; kvCounts / ksCounts [H]. Writes ranges, rangeCount and colCount [H, numBlocks];
// adds each head's pairs into pairs[h] (zeroed by the caller). status[0] is set if a block overflows
// its range slots (cannot happen when C >= every slash count).
extern "C" __global__ void __launch_bounds__(128) vs_layout_ranges(
    const int* __restrict__ selV, const int* __restrict__ kvCounts, int strideV, const int* __restrict__ selS,
    const int* __restrict__ ksCounts, int strideS, int2* __restrict__ ranges, int* __restrict__ rangeCount,
    int* __restrict__ colCount, unsigned long long* __restrict__ pairs, int* __restrict__ status, int n, int numBlocks,
    int C, int perHead) {
  const int h = blockIdx.y;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  long long blockPairs = 0;
  if (m < numBlocks) {
    const int kv = min(kvCounts[h], n), ks = min(ksCounts[h], n);
    vs_layout_ranges_block(selV + (size_t)h * strideV, kv, selS + (size_t)h * strideS, ks, h, m, ranges, rangeCount, colCount, status, n,
                           numBlocks, C, perHead, blockPairs);
  }
  unsigned long long v = (unsigned long long)blockPairs;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(&pairs[h], v);
}

// vs_layout_ranges with the head's kept columns and offsets staged in shared memory when together
// they fit RANGE_STAGE_INTS (session 7, opt-in: VerticalSlashIndexBuilder's stagedRanges): each
// thread's walk is a chain of dependent loads (a binary search per kept offset reaching its block, a
// gallop per range), from L2 / L1 otherwise. The same ranges, counts and pairs.
extern "C" __global__ void __launch_bounds__(128) vs_layout_ranges_staged(
    const int* __restrict__ selV, const int* __restrict__ kvCounts, int strideV, const int* __restrict__ selS,
    const int* __restrict__ ksCounts, int strideS, int2* __restrict__ ranges, int* __restrict__ rangeCount,
    int* __restrict__ colCount, unsigned long long* __restrict__ pairs, int* __restrict__ status, int n, int numBlocks,
    int C, int perHead) {
  __shared__ int stage[RANGE_STAGE_INTS];
  const int h = blockIdx.y;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  const int kv = min(kvCounts[h], n), ks = min(ksCounts[h], n);
  const int* V = selV + (size_t)h * strideV;
  const int* S = selS + (size_t)h * strideS;
  if (kv + ks <= RANGE_STAGE_INTS) {  // the same for every thread of the block (one head)
    for (int j = threadIdx.x; j < kv; j += blockDim.x) stage[j] = V[j];
    for (int j = threadIdx.x; j < ks; j += blockDim.x) stage[kv + j] = S[j];
    __syncthreads();
    V = stage;
    S = stage + kv;
  }
  long long blockPairs = 0;
  if (m < numBlocks) vs_layout_ranges_block(V, kv, S, ks, h, m, ranges, rangeCount, colCount, status, n, numBlocks, C, perHead, blockPairs);
  unsigned long long v = (unsigned long long)blockPairs;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(&pairs[h], v);
}

// One block of SELECT_THREADS threads. starts[0 .. count] = exclusive prefix sums of values; the
// total also goes to *total (64-bit, so the host can refuse a list past 2^31 entries).
extern "C" __global__ void __launch_bounds__(SELECT_THREADS) vs_scan(const int* __restrict__ values, int* __restrict__ starts,
                                                                    unsigned long long* __restrict__ total, int count) {
  __shared__ TopKShared sh;
  long long carry = 0;
  for (int base = 0; base < count; base += SELECT_THREADS) {
    const int i = base + threadIdx.x;
    const int x = i < count ? values[i] : 0;
    int chunkTotal;
    const int before = topk_block_exclusive_scan<SELECT_THREADS>(x, sh, chunkTotal);
    if (i < count) starts[i] = (int)(carry + before);
    carry += chunkTotal;
  }
  if (threadIdx.x == 0) {
    starts[count] = (int)carry;
    *total = (unsigned long long)carry;
  }
}

// grid (ceil(numBlocks / 4), H), 128 threads: one warp per (head, block).
extern "C" __global__ void __launch_bounds__(128) vs_layout_columns(
    const int* __restrict__ selV, const int* __restrict__ kvCounts, int strideV, const int2* __restrict__ ranges,
    const int* __restrict__ rangeCount, const int* __restrict__ colStart, int* __restrict__ colList, int n, int numBlocks, int C,
    int perHead) {
  const int h = blockIdx.y;
  const int m = blockIdx.x * 4 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (m >= numBlocks) return;
  const int* V = selV + (size_t)h * strideV;
  const int kv = min(kvCounts[h], n);
  const int2* rg = ranges + (size_t)h * perHead + vs_range_offset(m, C);
  const int count = rangeCount[(size_t)h * numBlocks + m];
  int dst = colStart[(size_t)h * numBlocks + m];
  int lo = 0;  // the first kept column right of the ranges so far
  for (int r = 0; r < count; ++r) {
    const int2 range = rg[r];
    const int hi = vs_gallop(V, kv, lo, range.x);
    for (int j = lo + lane; j < hi; j += 32) colList[dst + j - lo] = V[j];
    dst += hi - lo;
    lo = vs_gallop(V, kv, hi, range.y);
  }
}

// grid (ceil(numBlocks / 128), H), 128 threads: vs_layout_ranges' pair count without storing the
// ranges (the count search's probe, where the largest slash count can reach n and the range slots
// would grow with it). Adds each head's exact pairs into pairs[h] (zeroed by the caller).
extern "C" __global__ void __launch_bounds__(128) vs_count_pairs(
    const int* __restrict__ selV, const int* __restrict__ kvCounts, int strideV, const int* __restrict__ selS,
    const int* __restrict__ ksCounts, int strideS, unsigned long long* __restrict__ pairs, int n, int numBlocks) {
  const int h = blockIdx.y;
  const int m = blockIdx.x * blockDim.x + threadIdx.x;
  long long blockPairs = 0;
  if (m < numBlocks) {
    const int* V = selV + (size_t)h * strideV;
    const int* S = selS + (size_t)h * strideS;
    const int kv = min(kvCounts[h], n), ks = min(ksCounts[h], n);
    blockPairs = vs_block_pairs(V, kv, S, ks, m, n);
  }
  unsigned long long v = (unsigned long long)blockPairs;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(&pairs[h], v);
}
