// Block-wide top-k of one row of fp32 scores, with the CPU methods' tie rule (src/methods/select.ts:
// equal scores rank by the lower index), for Quest's page choice and SnapKV's kept rows.
//   cut   : a radix select over order-preserving 32-bit keys, 8 bits per pass (4 passes): the key T of
//           the k-th largest element and how many elements equal to T are taken (the lowest-indexed).
//   emit  : one ordered pass over the row; every taken element is handed to emit(index, rank) with
//           its rank in ascending index order, so the output lists come out sorted.
// Keys: 0 marks an element that is not a candidate (excluded); NaN ranks below every number (key 1)
// as rankDescending ranks it last; -0 and +0 are equal, as === makes them.
// One block per row; THREADS (>= 256, a multiple of 32, <= 1024) threads all call these together.
// Include common.cuh before this header (kernel-source.ts inlines one level of local headers).
#pragma once

__device__ __forceinline__ u32 topk_order_key(float x) {
  if (x != x) return 1u;
  if (x == 0.f) x = 0.f;
  const u32 b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Shared scratch of the helpers below.
struct TopKShared {
  int warpSums[32];
  u32 hist[256];
  u32 prefix;
  int remaining;
};

// Exclusive prefix sum of x over the block (thread order); `total` gets the block's sum.
template <int THREADS>
__device__ __forceinline__ int topk_block_exclusive_scan(int x, TopKShared& sh, int& total) {
  constexpr int WARPS = THREADS / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = x;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += y;
  }
  if (lane == 31) sh.warpSums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int w = lane < WARPS ? sh.warpSums[lane] : 0;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) w += y;
    }
    if (lane < WARPS) sh.warpSums[lane] = w;
  }
  __syncthreads();
  const int before = warp > 0 ? sh.warpSums[warp - 1] : 0;
  total = sh.warpSums[WARPS - 1];
  __syncthreads();  // warpSums is reused by the next scan
  return before + incl - x;
}

struct TopKCut {
  u32 key;        // elements with a larger key are taken
  int takeEqual;  // and this many of those equal to key, lowest index first
};

// keyOf(i) -> u32 key (0: not a candidate). k >= candidates takes every candidate.
template <int THREADS, class KeyOf>
__device__ TopKCut topk_cut(int n, int k, KeyOf keyOf, TopKShared& sh) {
  static_assert(THREADS >= 256 && THREADS <= 1024 && THREADS % 32 == 0, "top-k block size");
  const int tid = threadIdx.x;
  if (k <= 0) return TopKCut{0xffffffffu, 0};
  if (tid == 0) {
    sh.prefix = 0u;
    sh.remaining = k;
  }
  u32 mask = 0u;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = tid; b < 256; b += THREADS) sh.hist[b] = 0u;
    __syncthreads();
    const u32 prefix = sh.prefix;
    // Scores of similar magnitude share their high bytes, so most lanes hit one bin: the lanes of a
    // warp with equal bins add once (v1 added per element, serialised on that bin's address).
    for (int base = 0; base < n; base += THREADS) {
      const int i = base + tid;
      int bin = -1;
      if (i < n) {
        const u32 key = keyOf(i);
        if (key != 0u && (key & mask) == prefix) bin = (int)((key >> shift) & 255u);
      }
      const unsigned peers = __match_any_sync(0xffffffffu, bin);
      if (bin >= 0 && (int)(tid & 31) == __ffs(peers) - 1) atomicAdd(&sh.hist[bin], (u32)__popc(peers));
    }
    __syncthreads();
    // Thread t looks at bin 255 - t: its exclusive scan is the count of elements in higher bins.
    const int remaining = sh.remaining;
    const int c = tid < 256 ? (int)sh.hist[255 - tid] : 0;
    int total;
    const int above = topk_block_exclusive_scan<THREADS>(c, sh, total);
    if (shift == 24 && total <= remaining) {
      // Fewer candidates than k: all of them (every key > 0).
      return TopKCut{0u, 0};
    }
    if (tid < 256 && c > 0 && above < remaining && above + c >= remaining) {
      sh.prefix = prefix | ((u32)(255 - tid) << shift);
      sh.remaining = remaining - above;
    }
    mask |= 255u << shift;
    __syncthreads();
  }
  return TopKCut{sh.prefix, sh.remaining};
}

// Calls emit(i, rank) for every taken element in ascending i; returns how many were taken. Each
// thread owns a contiguous run of the row, so two block scans place every element (v1 scanned twice
// per THREADS elements).
template <int THREADS, class KeyOf, class Emit>
__device__ int topk_emit(int n, TopKCut cut, KeyOf keyOf, Emit emit, TopKShared& sh) {
  const int per = (n + THREADS - 1) / THREADS;
  const int lo = min(n, (int)threadIdx.x * per), hi = min(n, lo + per);
  int equal = 0;
  for (int i = lo; i < hi; ++i) {
    const u32 key = keyOf(i);
    equal += (key != 0u && key == cut.key) ? 1 : 0;
  }
  int unused;
  const int eqBase = topk_block_exclusive_scan<THREADS>(equal, sh, unused);
  // Whether element i (key) is taken, given the equal elements before it.
  auto takes = [&](u32 key, int& eqSeen) {
    if (key == 0u) return false;
    if (key > cut.key) return true;
    if (key != cut.key) return false;
    return eqSeen++ < cut.takeEqual;
  };
  int taken = 0, eqSeen = eqBase;
  for (int i = lo; i < hi; ++i) taken += takes(keyOf(i), eqSeen) ? 1 : 0;
  int total;
  int rank = topk_block_exclusive_scan<THREADS>(taken, sh, total);
  eqSeen = eqBase;
  for (int i = lo; i < hi; ++i) {
    if (takes(keyOf(i), eqSeen)) emit(i, rank++);
  }
  return total;
}
