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

// The block scan's operations (block_exclusive_scan's Op): identity, accumulate, and how a thread's
// exclusive value comes out of the in-warp inclusive scan and the warps before it.
//   BlockScanSum: the inclusive value less the thread's own (addition has an inverse).
//   BlockScanMax: x >= -1 (-1 before thread 0); the lane before's inclusive value (max has no inverse).
struct BlockScanSum {
  static constexpr int identity = 0;
  __device__ __forceinline__ void accumulate(int& acc, int y) const { acc += y; }
  __device__ __forceinline__ int in_warp_exclusive(int, int) const { return 0; }  // unused: finish subtracts
  __device__ __forceinline__ int before(int, int warp, const int* warpSums) const { return warp > 0 ? warpSums[warp - 1] : 0; }
  __device__ __forceinline__ int finish(int before, int incl, int x) const { return before + incl - x; }
};
struct BlockScanMax {
  static constexpr int identity = -1;
  __device__ __forceinline__ void accumulate(int& acc, int y) const { acc = max(acc, y); }
  __device__ __forceinline__ int in_warp_exclusive(int incl, int lane) const {
    const int y = __shfl_up_sync(0xffffffffu, incl, 1);
    return lane == 0 ? -1 : y;
  }
  __device__ __forceinline__ int before(int inWarp, int warp, const int* warpSums) const { return warp > 0 ? max(inWarp, warpSums[warp - 1]) : inWarp; }
  __device__ __forceinline__ int finish(int before, int, int) const { return before; }
};

// Exclusive scan of x over the block (thread order) under Op; `total` gets the block's reduction. All
// threads call it; sh.warpSums is free again when it returns.
template <int THREADS, class Op>
__device__ __forceinline__ int block_exclusive_scan(int x, TopKShared& sh, int& total, Op op) {
  constexpr int WARPS = THREADS / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = x;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) op.accumulate(incl, y);
  }
  const int inWarp = op.in_warp_exclusive(incl, lane);
  if (lane == 31) sh.warpSums[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    int w = lane < WARPS ? sh.warpSums[lane] : Op::identity;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, off);
      if (lane >= off) op.accumulate(w, y);
    }
    if (lane < WARPS) sh.warpSums[lane] = w;
  }
  __syncthreads();
  const int before = op.before(inWarp, warp, sh.warpSums);
  total = sh.warpSums[WARPS - 1];
  __syncthreads();  // warpSums is reused by the next scan
  return op.finish(before, incl, x);
}

// Exclusive prefix sum of x over the block (thread order); `total` gets the block's sum.
template <int THREADS>
__device__ __forceinline__ int topk_block_exclusive_scan(int x, TopKShared& sh, int& total) {
  return block_exclusive_scan<THREADS>(x, sh, total, BlockScanSum{});
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

// ---------------------------------------------------------------------------------------------------
// Top-k of a row whose keys sit in shared memory (written by the caller with topk_order_key; the
// helpers below may zero keys of the row's non-taken elements). Same result as topk_cut + topk_emit
// (ties by the lower index), fewer block-wide steps for rows of similar scores (Quest's page bounds):
//   1. the AND and OR of all candidate keys: bits where they agree are no digit at all (scores of
//      one magnitude share sign, exponent and leading mantissa bits, 10-14 bits that an 8-bit radix
//      spends one or two passes on);
//   2. radix passes of up to 11 bits over the differing bits, from the highest;
//   3. once the k-th element's bin is taken whole, or holds at most TOPK_RANK_LIMIT keys (then they
//      are gathered and ranked exactly by (key desc, index asc)), or is a single key value (then the
//      lowest-indexed equal keys are kept), the non-taken keys of that bin are zeroed;
//   4. an ordered pass in which each warp streams a contiguous run of the row, lanes on consecutive
//      elements (no bank conflicts), hands each taken element its rank in ascending index order.
// Taken afterwards: key != 0 and (key & mask) >= prefix.

constexpr int TOPK_RADIX_BITS = 11;
constexpr int TOPK_RANK_LIMIT = 256;

struct TopKStagedShared {
  TopKShared base;  // warpSums for the scans
  u32 hist[1 << TOPK_RADIX_BITS];
  u32 candKey[TOPK_RANK_LIMIT];
  int candIdx[TOPK_RANK_LIMIT];
  u32 andBits, orBits;
  int candidates;
  int bin, binCount, remaining;
  int total;
};

struct TopKStagedCut {
  u32 prefix;  // taken: key != 0 and (key & mask) >= prefix
  u32 mask;
};

__device__ __forceinline__ bool topk_staged_taken(u32 key, TopKStagedCut cut) {
  return key != 0u && (key & cut.mask) >= cut.prefix;
}

// For every i in [0, n) with pred(i), in ascending i, calls act(i, rank) with rank its place among
// them; returns their count. Warp w streams [w·per, (w+1)·per) with lanes on consecutive elements.
// act(i, ·) may change what pred(i) reads for that i alone.
template <int THREADS, class Pred, class Act>
__device__ int topk_ordered_pass(int n, Pred pred, Act act, TopKStagedShared& sh) {
  constexpr int WARPS = THREADS / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int per = ((n + WARPS - 1) / WARPS + 31) & ~31;
  const int lo = min(n, warp * per), hi = min(n, lo + per);
  int count = 0;
  for (int base = lo; base < hi; base += 32) {
    const int i = base + lane;
    count += __popc(__ballot_sync(0xffffffffu, i < hi && pred(i)));
  }
  if (lane == 0) sh.base.warpSums[warp] = count;
  __syncthreads();
  if (warp == 0) {
    const int c = lane < WARPS ? sh.base.warpSums[lane] : 0;
    int incl = c;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += y;
    }
    if (lane < WARPS) sh.base.warpSums[lane] = incl - c;
    if (lane == 31) sh.total = incl;
  }
  __syncthreads();
  int rank = sh.base.warpSums[warp];
  const unsigned below = (1u << lane) - 1u;
  for (int base = lo; base < hi; base += 32) {
    const int i = base + lane;
    const bool p = i < hi && pred(i);
    const unsigned m = __ballot_sync(0xffffffffu, p);
    if (p) act(i, rank + __popc(m & below));
    rank += __popc(m);
  }
  const int total = sh.total;
  __syncthreads();  // warpSums and total are reused by the next call
  return total;
}

// Chooses the k largest keys of keys[0, n) (0: not a candidate) and zeroes the keys of the bin's
// non-taken elements so that topk_staged_taken tells the taken ones. k <= 0 takes none.
// Rank of the candidate (key, idx) among sh.candKey / sh.candIdx [0, c): how many come before it in
// the selection order, key descending, then index ascending.
__device__ __forceinline__ int topk_candidate_rank(u32 key, int idx, int c, const TopKStagedShared& sh) {
  int rank = 0;
  for (int j = 0; j < c; ++j) {
    const u32 other = sh.candKey[j];
    rank += (other > key || (other == key && sh.candIdx[j] < idx)) ? 1 : 0;
  }
  return rank;
}

// With sh.hist[0, bins) the histogram of the current digit over the candidates that match the prefix,
// and `remaining` of them still to take: the bin holding the remaining-th largest (sh.bin), its count
// (sh.binCount) and how many of it are taken (sh.remaining). Thread t sums bins
// [bins - (t+1)·per, bins - t·per) from the top; its exclusive scan is the count in higher bins. All
// threads call it; every block that holds the same histogram computes the same.
template <int THREADS>
__device__ __forceinline__ void topk_staged_find_bin(int bins, int remaining, TopKStagedShared& sh) {
  const int tid = threadIdx.x;
  const int per = bins > THREADS ? bins / THREADS : 1;
  const int hiBin = bins - 1 - tid * per;
  int c = 0;
  if (hiBin >= 0) {
    for (int j = 0; j < per; ++j) c += (int)sh.hist[hiBin - j];
  }
  int total;
  int above = topk_block_exclusive_scan<THREADS>(c, sh.base, total);
  if (hiBin >= 0 && c > 0 && above < remaining && above + c >= remaining) {
    for (int j = 0; j < per; ++j) {
      const int cnt = (int)sh.hist[hiBin - j];
      if (above + cnt >= remaining) {
        sh.bin = hiBin - j;
        sh.binCount = cnt;
        sh.remaining = remaining - above;
        break;
      }
      above += cnt;
    }
  }
  __syncthreads();
}

template <int THREADS>
__device__ TopKStagedCut topk_select_staged(u32* keys, int n, int k, TopKStagedShared& sh) {
  static_assert(THREADS >= TOPK_RANK_LIMIT && THREADS <= 1024 && THREADS % 32 == 0, "staged top-k block size");
  const int tid = threadIdx.x, lane = tid & 31;
  if (k <= 0) return TopKStagedCut{0xffffffffu, 0xffffffffu};  // no key is 0xffffffff (NaN keys are 1)
  if (tid == 0) {
    sh.andBits = 0xffffffffu;
    sh.orBits = 0u;
    sh.candidates = 0;
  }
  __syncthreads();
  {
    u32 a = 0xffffffffu, o = 0u;
    int c = 0;
    for (int i = tid; i < n; i += THREADS) {
      const u32 key = keys[i];
      if (key != 0u) {
        a &= key;
        o |= key;
        ++c;
      }
    }
    a = __reduce_and_sync(0xffffffffu, a);
    o = __reduce_or_sync(0xffffffffu, o);
    c = (int)__reduce_add_sync(0xffffffffu, (unsigned)c);
    if (lane == 0) {
      atomicAnd(&sh.andBits, a);
      atomicOr(&sh.orBits, o);
      atomicAdd(&sh.candidates, c);
    }
  }
  __syncthreads();
  if (sh.candidates <= k) return TopKStagedCut{0u, 0u};
  const u32 diff = sh.andBits ^ sh.orBits;
  // Bits above `top` are common to every candidate: they form the prefix from the start.
  int top = diff == 0u ? -1 : 31 - __clz(diff);
  u32 mask = top >= 31 ? 0u : (0xffffffffu << (top + 1));
  u32 prefix = sh.andBits & mask;
  int remaining = k;
  int binCount = sh.candidates;
  // Invariant: binCount candidates match prefix under mask, remaining of them are still to take
  // (remaining < binCount), every candidate above the prefix is taken.
  while (top >= 0 && binCount > TOPK_RANK_LIMIT) {
    const int shift = max(0, top - (TOPK_RADIX_BITS - 1));
    const int bins = 1 << (top - shift + 1);
    for (int b = tid; b < bins; b += THREADS) sh.hist[b] = 0u;
    __syncthreads();
    for (int base = 0; base < n; base += THREADS) {
      const int i = base + tid;
      int bin = -1;
      if (i < n) {
        const u32 key = keys[i];
        if (key != 0u && (key & mask) == prefix) bin = (int)((key >> shift) & (u32)(bins - 1));
      }
      // Lanes of a warp in one bin add once (similar scores crowd a few bins).
      const unsigned peers = __match_any_sync(0xffffffffu, bin);
      if (bin >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.hist[bin], (u32)__popc(peers));
    }
    __syncthreads();
    topk_staged_find_bin<THREADS>(bins, remaining, sh);
    prefix |= (u32)sh.bin << shift;
    mask |= (u32)(bins - 1) << shift;
    remaining = sh.remaining;
    binCount = sh.binCount;
    __syncthreads();  // sh.bin etc. are rewritten by the next pass
    top = shift - 1;
    if (binCount == remaining) break;
  }
  if (binCount == remaining) return TopKStagedCut{prefix, mask};
  const TopKStagedCut cut{prefix, mask};
  if (top < 0 && binCount > TOPK_RANK_LIMIT) {
    // One key value: keep its lowest-indexed `remaining` elements.
    topk_ordered_pass<THREADS>(
        n, [&](int i) { return keys[i] == prefix; },
        [&](int i, int rank) {
          if (rank >= remaining) keys[i] = 0u;
        },
        sh);
    return cut;
  }
  // At most TOPK_RANK_LIMIT candidates in the bin: gather them, rank each by (key desc, index asc).
  __syncthreads();  // every thread has read sh.candidates (no radix pass may have run) before it is reset
  if (tid == 0) sh.candidates = 0;
  __syncthreads();
  for (int base = 0; base < n; base += THREADS) {
    const int i = base + tid;
    const u32 key = i < n ? keys[i] : 0u;
    const bool in = key != 0u && (key & mask) == prefix;
    const unsigned m = __ballot_sync(0xffffffffu, in);
    int at = 0;
    if (lane == 0 && m) at = atomicAdd(&sh.candidates, __popc(m));
    at = __shfl_sync(0xffffffffu, at, 0);
    if (in) {
      const int slot = at + __popc(m & ((1u << lane) - 1u));
      sh.candKey[slot] = key;
      sh.candIdx[slot] = i;
    }
  }
  __syncthreads();
  const int c = sh.candidates;
  if (tid < c) {
    const u32 key = sh.candKey[tid];
    const int idx = sh.candIdx[tid];
    if (topk_candidate_rank(key, idx, c, sh) >= remaining) keys[idx] = 0u;
  }
  __syncthreads();
  return cut;
}

// Calls emit(i, rank) for every taken element in ascending i; returns how many were taken.
template <int THREADS, class Emit>
__device__ int topk_emit_staged(const u32* keys, int n, TopKStagedCut cut, Emit emit, TopKStagedShared& sh) {
  return topk_ordered_pass<THREADS>(n, [&](int i) { return topk_staged_taken(keys[i], cut); }, emit, sh);
}
