// The Vertical-Slash family's count searches for a target sparsity, each in one cooperative launch
// (every block resident; they meet at grid-wide barriers), so the host waits once per layer instead
// of once per probe. Every block runs the same control flow on the same numbers, so all take the
// same branches:
//   mode 0, Vertical-Slash: vertical-slash-counts.ts chooseVerticalSlashCounts (and closestColumns),
//           probe for probe: one common count for columns and diagonals by bisection, then columns.
//   mode 1, FlexPrefill: flexprefill.ts thresholdNearestTarget over alpha (30 halvings of [0, 1]),
//           every probe sizing each head from its coverage curve (flexprefill-sizes.cuh).
// Each row's rank order is sorted once per layer (vs_rank_rows: forced items first, then the scores
// descending, ties to the lower index: vs_select's rule), so a probe's selection is a compaction of
// the ranks below its count. Both searches are one state machine (SearchState, search_advance) that
// a probe's exact layer pairs move on; two kernels drive it:
//   vs_count_search          one probe at a time: the selection of every row whose count changed, a
//                            barrier, the exact pairs of every (head, 64-row block)
//                            (vertical-slash-walk.cuh, the head's lists staged in shared memory) summed
//                            into one 64-bit total, a barrier; a probe whose counts equal the last
//                            one's reuses its total (the same counts give the same pairs).
//   vs_count_search_batched  the next `levels` levels of the search's decision tree at once (up to
//                            2^levels - 1 probes: every probe the next levels could make, whatever the
//                            outcomes), then the real outcomes followed down the tree. The same probes
//                            are answered in the same order, so the same result, in about 1/levels of
//                            the rounds; for few heads (H = 4: 8 score rows on a GPU of 132
//                            multiprocessors) one round costs about what one probe does. Its walks
//                            step once per run of kept offsets (vs_walk_runs), not once per 64 keys.
//   vs_count_search_batched_lanes  the batched search with each 64-row block's walk shared by several
//                            threads (vs_block_pairs_lane; opt-in): the last blocks' walks are a
//                            round's critical path when the kept diagonals are spread out.
//   vs_select_ranked         the index builder's selection from the same ranks (hand-off path).
//   vs_rank_chunks, vs_rank_merge  vs_rank_rows' ranks with many blocks per row (opt-in): each
//                            RANK_CHUNK-item chunk sorted in shared memory, then each item's rank =
//                            its place in its chunk + how many items of every other chunk precede it
//                            (binary searches of their sorted keys).
// Totals are integers below 2^53, so the float64 comparisons with the target are the host's, bit for bit.
#include "common.cuh"
#include "top-k.cuh"
#include "vertical-slash-walk.cuh"
#include "flexprefill-sizes.cuh"
#include "radix-sort.cuh"


// Entry groups (session 10): a compile with -DVS_SEARCH_ENTRIES=<group> defines only that group's entries
// (vertical-slash-search-groups.ts, VS_SEARCH_ENTRY_GROUPS), so a search compiles what its options launch: the
// default searches need the rank and defaults groups (7 + 4 entries) instead of all 22 (31.5 s of NVRTC on a
// fresh H100). Without the define (or 0) every entry is compiled: the compile checks and the host tests read the
// whole file. Each entry's code is the same in every compile that defines it; only which entries exist changes.
// The timed entries need VS_SEARCH_TIMING as well.
#ifndef VS_SEARCH_ENTRIES
#define VS_SEARCH_ENTRIES 0
#endif
#define VS_SEARCH_COMPILES(GROUP) (VS_SEARCH_ENTRIES == 0 || VS_SEARCH_ENTRIES == (GROUP))
#if VS_SEARCH_ENTRIES != 0
// A group leaves some of the file's helpers and constants unread (warning 177); the whole file reads them all.
#pragma nv_diag_suppress 177
#endif
#define VS_SEARCH_ENTRIES_RANK 1        // ranking, rank order, the guide's model, vs_select_ranked: every search
#define VS_SEARCH_ENTRIES_DEFAULTS 2    // both methods' default searches (+ V-S's hand-off twin: see the groups' .ts)
#define VS_SEARCH_ENTRIES_HAND_OFF 4    // the other guided kernels' selection hand-off twins (selectionHandOff)
#define VS_SEARCH_ENTRIES_OTHER 5       // older searches and options that are not default
#define VS_SEARCH_ENTRIES_COMPACT 6     // the compact layout's kernels (compactLayout)
#define VS_SEARCH_ENTRIES_TIMED 7       // with VS_SEARCH_TIMING: the guided and unguided defaults' round timing
#define VS_SEARCH_ENTRIES_TIMED_LEAN 8  // with VS_SEARCH_TIMING: the lean and compact layouts' round timing

namespace {
constexpr int THREADS = 512;
constexpr int RANK_THREADS = 1024;
constexpr int RANK_ITEMS = 4;    // keys and indices per thread in one sort tile
constexpr int SELECT_ITEMS = 8;  // consecutive ranks per thread in one compaction step
constexpr int STAGE_INTS = 8192; // a head's kept columns and diagonals, staged for the walk when they fit
constexpr int MAX_LEVELS = 5;
constexpr int MAX_BATCH = (1 << MAX_LEVELS) - 1;  // probes in one round of the batched search, at most
constexpr int MAX_BATCH_COUNTS = 1024;            // probes x 2H counts one round keeps in shared memory
constexpr double ABOVE_ANY_TARGET = 1e308;        // an assumed probe outcome above the target
constexpr int CHUNK_THREADS = 256;                // the chunked ranking's blocks
constexpr int CHUNK_ITEMS = 8;
constexpr int RANK_CHUNK = CHUNK_THREADS * CHUNK_ITEMS;  // items per chunk: one sort tile in shared memory
constexpr int GUIDE_THREADS = 256;     // vs_guide_gains: blocks of GUIDE_TILE items of one row
constexpr int GUIDE_TILE = 1024;
constexpr int GUIDE_REACH = 64;        // neighbours looked at each side: a band is 64 wide
constexpr int GUIDE_HALF = 32;         // an offset's modelled band: [o - 32, o + 32)
constexpr int GUIDE_SCAN_THREADS = 1024;
constexpr int GUIDE_SCAN_ITEMS = 4;

__device__ __forceinline__ u32 load_acquire(const u32* p) {
  u32 v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Grid-wide barrier over a counter that only grows: barrier g is passed once it reaches g·gridDim.x.
// The fences around it make each block's writes before it visible to every block after it.
// TRAP_AFTER_POLLS (0: never): a wait that long means some block never arrives (a launch or control
// flow fault), so the kernel traps and the host gets a launch error instead of a hang.
template <u32 TRAP_AFTER_POLLS = 0>
__device__ __forceinline__ void grid_barrier(u32* counter, u32& generation) {
  __syncthreads();
  ++generation;
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    const u32 goal = generation * gridDim.x;
    for (u32 polls = 1; load_acquire(counter) < goal; ++polls) {
      if (TRAP_AFTER_POLLS != 0 && polls == TRAP_AFTER_POLLS) asm volatile("trap;");
      __nanosleep(32);
    }
    __threadfence();
  }
  __syncthreads();
}

// The batched search's barriers: 2^24 polls (seconds; a barrier takes microseconds).
constexpr u32 BATCHED_TRAP_POLLS = 1u << 24;

// out = the items of rank < k of one row (vs_select's top k), in ascending index order. All threads call it.
__device__ __forceinline__ void select_ranked(const int* rank, int n, int k, int* out, TopKShared& sh) {
  int written = 0;
  for (int base = 0; base < n; base += THREADS * SELECT_ITEMS) {
    const int first = base + threadIdx.x * SELECT_ITEMS;
    int taken = 0;
#pragma unroll
    for (int j = 0; j < SELECT_ITEMS; ++j) taken += (first + j < n && rank[first + j] < k) ? 1 : 0;
    int total;
    int at = written + topk_block_exclusive_scan<THREADS>(taken, sh, total);
#pragma unroll
    for (int j = 0; j < SELECT_ITEMS; ++j) {
      if (first + j < n && rank[first + j] < k) out[at++] = first + j;
    }
    written += total;
  }
}

// out = the items of rank < k of one row in ascending index order, as select_ranked, from the row's
// rank order (order [n]: order[r] = the item of rank r; vs_rank_order) instead of a pass over all n
// ranks: the k items set bits of a bitmap over [0, n) in `bits` (ceil(n / 32) words of shared memory),
// one block scan of the words' counts places them. For k small against n (orderedSelect, session 8).
// All threads call it.
__device__ __forceinline__ void select_ordered(const int* order, int n, int k, int* out, u32* bits, TopKShared& sh) {
  const int words = (n + 31) >> 5;
  for (int w = threadIdx.x; w < words; w += THREADS) bits[w] = 0u;
  __syncthreads();
  for (int t = threadIdx.x; t < k; t += THREADS) {
    const int i = order[t];
    atomicOr(&bits[i >> 5], 1u << (i & 31));
  }
  __syncthreads();
  const int per = (words + THREADS - 1) / THREADS;
  const int w0 = min(words, (int)threadIdx.x * per), w1 = min(words, w0 + per);
  int mine = 0;
  for (int w = w0; w < w1; ++w) mine += __popc(bits[w]);
  int total;
  int at = topk_block_exclusive_scan<THREADS>(mine, sh, total);
  for (int w = w0; w < w1; ++w) {
    for (u32 b = bits[w]; b != 0u; b &= b - 1u) out[at++] = (w << 5) + __ffs(b) - 1;
  }
}

// runStart[t] for the ascending offsets S [0, k): the first index of t's run, a run being
// consecutive offsets at most 64 apart (vs_walk_runs' steps). S must be visible to every thread
// (written before a __syncthreads). All threads call it.
__device__ __forceinline__ void vs_mark_runs(const int* S, int k, int* runStart, TopKShared& sh) {
  int carry = -1;
  for (int base = 0; base < k; base += THREADS * SELECT_ITEMS) {
    const int first = base + threadIdx.x * SELECT_ITEMS;
    int mine = -1;
#pragma unroll
    for (int j = 0; j < SELECT_ITEMS; ++j) {
      const int t = first + j;
      if (t < k && (t == 0 || S[t] - S[t - 1] > VS_BLOCK)) mine = t;
    }
    int total;
    int run = max(carry, block_exclusive_scan<THREADS>(mine, sh, total, BlockScanMax{}));
#pragma unroll
    for (int j = 0; j < SELECT_ITEMS; ++j) {
      const int t = first + j;
      if (t < k) {
        if (t == 0 || S[t] - S[t - 1] > VS_BLOCK) run = t;
        runStart[t] = run;
      }
    }
    carry = max(carry, total);
  }
}

// Whether a block's walk by runs (vs_walk_runs) certainly starts a new range at kept offset index p,
// whatever ranges it made before: S[p + 1] - S[p] >= 128. After the run ending at S[p + 1] the range
// end b lies below e' + 64 (e' = max(end - S[p + 1], 64), that run's last e; when e' is clamped to 64,
// every e so far was, and b = 64), and e at p = max(end - S[p], 64) >= e' + 128 (or >= 129 when e' is
// clamped) exceeds b + 64: the three-way rule restarts. Such points cut a block's walk into pieces
// that can be walked apart.
__device__ __forceinline__ bool vs_certain_restart(const int* S, int p) {
  return S[p + 1] - S[p] >= 2 * VS_BLOCK;
}

// #V < x for x in [0, n], from V's bitmap over [0, n) (bits [ceil(n / 32)]) and each word's count
// of the set bits before it (before [ceil(n / 32) + 1], the last = kv): two loads, whatever kv is.
__device__ __forceinline__ int vs_columns_below(const u32* bits, const int* before, int x) {
  const int w = x >> 5, r = x & 31;
  return before[w] + (r != 0 ? __popc(bits[w] & ((1u << r) - 1u)) : 0);
}

// The two-level form (session 7, for n past the one-level stage: coarseColumnBitmap): before4
// [ceil(ceil(n / 32) / 4) + 1] holds the set bits before every fourth word (the last = kv), and the
// up to three words between are counted here: a quarter of the counts' space for up to 4 more loads.
__device__ __forceinline__ int vs_columns_below_coarse(const u32* bits, const int* before4, int x) {
  const int w = x >> 5, r = x & 31;
  int c = before4[w >> 2];
  for (int j = w & ~3; j < w; ++j) c += __popc(bits[j]);
  return c + (r != 0 ? __popc(bits[w] & ((1u << r) - 1u)) : 0);
}

// Lane `lane` of `lanes` threads walking one 64-row block m together (vs_block_pairs_by_runs' pairs
// = the sum of this over the lanes; V [kv], S [ks] ascending, runStart as vs_walk_runs takes it).
// The offsets [0, end) are cut into `lanes` equal spans, lane 0 the largest (the smallest e: walked
// first); the kept offsets in a span are an index span [lo, hi] of S. A lane walks every piece
// (from a vs_certain_restart, or the walk's first index, to the next) that starts in its index
// span, past the span's end when a piece does, so each piece is walked once, from the fresh state
// the whole walk reaches it in. Equal offset spans, not equal index spans:
// the forced diagonals 0..63 are one run, and spread kept diagonals cost a run and a range each.
// Each range's causal pairs are its own; the columns left of and between the ranges, sum over
// ranges j of (#V < a_j) - (#V < b_{j-1}), are regrouped as sum over j of ((#V < a_j) - (#V < b_j))
// + (#V < b_last): each lane adds its ranges' terms, the lane that reaches offset index 0 (the
// last range) adds the last one. #V < x by gallops over V (BITS 0), or from `bits` (x clamped to n:
// no column lies past it) by vs_columns_below (BITS 1, `before` per word) or vs_columns_below_coarse
// (BITS 2, `before` per four words).
template <int BITS>
__device__ __forceinline__ long long vs_block_pairs_lane(const int* V, int kv, const u32* bits, const int* before, const int* S,
                                                        const int* runStart, int ks, int m, int n, int lane, int lanes) {
  const int start = m * VS_BLOCK, end = start + VS_BLOCK, rowEnd = min(end, n);
  const int width = (end + lanes - 1) / lanes;
  const int hi = vs_lower_bound(S, ks, max(end - lane * width, 0)) - 1;
  const int lo = vs_lower_bound(S, hi + 1, max(end - (lane + 1) * width, 0));
  if (hi < lo) return 0;
  const int top = lane == 0 ? hi : vs_lower_bound(S, ks, end) - 1;  // the walk's first index
  // The first piece starting in [lo, hi]: hi itself, else below the run holding hi.
  int i = hi;
  if (i != top && !vs_certain_restart(S, i)) {
    for (;;) {
      i = runStart[i] - 1;
      if (i < lo) return 0;
      if (vs_certain_restart(S, i)) break;
    }
  }
  long long pairs = 0;
  int cols = 0, next = 0;  // next: #V below the last range's end
  auto emit = [&](int a, int b) {
    pairs += vs_causal_rect_pairs(start, rowEnd, a, b);
    int left;
    if constexpr (BITS == 2) {
      left = vs_columns_below_coarse(bits, before, min(a, n));
      next = vs_columns_below_coarse(bits, before, min(b, n));
    } else if constexpr (BITS == 1) {
      left = vs_columns_below(bits, before, min(a, n));
      next = vs_columns_below(bits, before, min(b, n));
    } else {
      left = vs_gallop(V, kv, next, a);
      next = vs_gallop(V, kv, left, b);
    }
    cols += left - next;
  };
  int a = -1, b = -1;
  while (i >= 0) {
    vs_merge_offset(max(end - S[i], VS_BLOCK), a, b, emit);
    const int first = runStart[i];
    const int last = max(end - S[first], VS_BLOCK);
    if (last > b) b += VS_BLOCK * ((last - b + VS_BLOCK - 1) / VS_BLOCK);
    i = first - 1;
    if (i >= 0 && i < lo && vs_certain_restart(S, i)) break;  // the next lane's piece
  }
  if (a >= 0) emit(a, b);
  if (i < 0) cols += next;
  return pairs + (long long)cols * (rowEnd - start);
}

// Zeroes bits [words] and sets bit v of word v / 32 for every kept column of V [kv] (ascending): one
// atomicOr per word a warp touches (dense lists put a warp's 32 columns in one or two words: V is
// ascending, so lanes sharing a word are consecutive, and a segmented OR down the warp leaves each
// segment's bits in its first lane, which alone writes). Ends with the block synchronised. All threads call it.
__device__ __forceinline__ void vs_stage_column_bits(const int* V, int kv, u32* bits, int words) {
  for (int j = threadIdx.x; j < words; j += THREADS) bits[j] = 0u;
  __syncthreads();
  const int lane32 = threadIdx.x & 31;
  for (int base = 0; base < kv; base += THREADS) {  // the same trip count in every warp: full-warp shuffles
    const int j = base + threadIdx.x;
    const int v = j < kv ? V[j] : -1;
    const int word = v >> 5;
    u32 merged = v >= 0 ? 1u << (v & 31) : 0u;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const u32 other = __shfl_down_sync(0xffffffffu, merged, off);
      const int otherWord = __shfl_down_sync(0xffffffffu, word, off);
      if (lane32 + off < 32 && otherWord == word) merged |= other;
    }
    const int prevWord = __shfl_up_sync(0xffffffffu, word, 1);
    if (v >= 0 && (lane32 == 0 || prevWord != word)) atomicOr(&bits[word], merged);
  }
  __syncthreads();
}

// vs_block_pairs_lane as a call, not inlined, for the bitmap kernel: its two walks (bitmap, and the
// staged list where the bitmap does not fit) inlined side by side outgrew the kernel's 64 registers
// (spills); as calls, none. One call per thread and unit.
template <int BITS>
__device__ __noinline__ long long vs_block_pairs_lane_call(const int* V, int kv, const u32* bits, const int* before, const int* S,
                                                          const int* runStart, int ks, int m, int n, int lane, int lanes) {
  return vs_block_pairs_lane<BITS>(V, kv, bits, before, S, runStart, ks, m, n, lane, lanes);
}

// This thread's 64-row block m of one head (none when m >= numBlocks): its exact pairs, with the
// head's kept columns V [kv] and offsets S [ks] staged in shared memory when they fit (the walk's
// loads are a dependent chain). All threads call it. runStart (vs_mark_runs over S, in global
// memory): walk by runs (vs_walk_runs); null: vs_walk_ranges. LANES: the block's walk is shared by
// `lanes` threads, this one lane `lane` of them (vs_block_pairs_lane; runStart required); the pairs
// of block m are then the sum over its lanes. LANES and BITS, when it fits with S: V staged as
// a bitmap over [0, n) with per-word counts (vs_columns_below) instead of a list, so a range's
// columns cost two loads however many columns are kept (and kv no longer decides what fits).
// COARSE (with LANES and BITS): where that does not fit, the two-level form if it does (counts per
// four words: vs_columns_below_coarse), before falling back to the list.
template <bool LANES = false, bool BITS = false, bool COARSE = false>
__device__ __forceinline__ long long staged_block_pairs(const int* V, int kv, const int* S, const int* runStart, int ks, int m, int n,
                                                       int numBlocks, int* stage, int lane = 0, int lanes = 1, TopKShared* sh = nullptr) {
  if constexpr (LANES && BITS && COARSE) {
    const int words = (n + 31) >> 5, groups = (words + 3) >> 2;
    if (2 * words + 1 + ks > STAGE_INTS && words + groups + 1 + ks <= STAGE_INTS) {
      u32* bits = reinterpret_cast<u32*>(stage);
      int* before4 = stage + words;
      int* staged = before4 + groups + 1;
      vs_stage_column_bits(V, kv, bits, words);
      for (int j = threadIdx.x; j < ks; j += THREADS) staged[j] = S[j];
      __syncthreads();
      // before4[g]: each thread counts a span of groups of four words, one block scan places the spans.
      const int per = (groups + THREADS - 1) / THREADS;
      const int g0 = min(groups, (int)threadIdx.x * per), g1 = min(groups, g0 + per);
      int mine = 0;
      for (int w = 4 * g0; w < min(words, 4 * g1); ++w) mine += __popc(bits[w]);
      int total;
      int run = topk_block_exclusive_scan<THREADS>(mine, *sh, total);
      for (int g = g0; g < g1; ++g) {
        before4[g] = run;
        for (int w = 4 * g; w < min(words, 4 * g + 4); ++w) run += __popc(bits[w]);
      }
      if (threadIdx.x == 0) before4[groups] = total;
      __syncthreads();
      long long pairs = 0;
      if (m < numBlocks) pairs = vs_block_pairs_lane_call<2>(V, kv, bits, before4, staged, runStart, ks, m, n, lane, lanes);
      __syncthreads();  // before the next unit overwrites the stage
      return pairs;
    }
  }
  if constexpr (LANES && BITS) {
    const int words = (n + 31) >> 5;
    if (2 * words + 1 + ks <= STAGE_INTS) {
      u32* bits = reinterpret_cast<u32*>(stage);
      int* before = stage + words;
      int* staged = before + words + 1;
      for (int j = threadIdx.x; j < ks; j += THREADS) staged[j] = S[j];  // published by the staging's barriers
      vs_stage_column_bits(V, kv, bits, words);
      // before[w]: each thread counts a span of words, one block scan places the spans.
      const int per = (words + THREADS - 1) / THREADS;
      const int w0 = min(words, (int)threadIdx.x * per), w1 = min(words, w0 + per);
      int mine = 0;
      for (int w = w0; w < w1; ++w) mine += __popc(bits[w]);
      int total;
      int run = topk_block_exclusive_scan<THREADS>(mine, *sh, total);
      for (int w = w0; w < w1; ++w) {
        before[w] = run;
        run += __popc(bits[w]);
      }
      if (threadIdx.x == 0) before[words] = total;
      __syncthreads();
      long long pairs = 0;
      if (m < numBlocks) pairs = vs_block_pairs_lane_call<1>(V, kv, bits, before, staged, runStart, ks, m, n, lane, lanes);
      __syncthreads();  // before the next unit overwrites the stage
      return pairs;
    }
  }
  if (kv + ks <= STAGE_INTS) {
    for (int j = threadIdx.x; j < kv; j += THREADS) stage[j] = V[j];
    for (int j = threadIdx.x; j < ks; j += THREADS) stage[kv + j] = S[j];
    V = stage;
    S = stage + kv;
  }
  __syncthreads();
  long long pairs = 0;
  if constexpr (LANES && BITS) {
    if (m < numBlocks) pairs = vs_block_pairs_lane_call<0>(V, kv, nullptr, nullptr, S, runStart, ks, m, n, lane, lanes);
  } else if constexpr (LANES) {
    if (m < numBlocks) pairs = vs_block_pairs_lane<0>(V, kv, nullptr, nullptr, S, runStart, ks, m, n, lane, lanes);
  } else {
    if (m < numBlocks) pairs = runStart ? vs_block_pairs_by_runs(V, kv, S, runStart, ks, m, n) : vs_block_pairs(V, kv, S, ks, m, n);
  }
  __syncthreads();  // before the next unit overwrites the stage
  return pairs;
}

// Whether a walk unit stages its kept columns as a bitmap (one-level, or with `coarse` two-level) for
// n and ks kept offsets: staged_block_pairs' and staged_block_pairs_ranked's test.
__device__ __forceinline__ bool vs_column_bitmap_stages(int n, int ks, bool coarse) {
  const int words = (n + 31) >> 5, groups = (words + 3) >> 2;
  return 2 * words + 1 + ks <= STAGE_INTS || (coarse && words + groups + 1 + ks <= STAGE_INTS);
}

// bits [words] = the column bitmap of the items of one ranked row ranked below kv (rank [n], the
// count search's ranks): one thread per word reading its 32 ranks, so one round of loads whatever kv
// is (the list's staging takes kv / THREADS dependent rounds, 16 at kv = 8192), and no atomics. Ends
// with the block synchronised. All threads call it.
__device__ __forceinline__ void vs_column_bits_from_ranks(const int* rank, int kv, int n, u32* bits, int words) {
  for (int w = threadIdx.x; w < words; w += THREADS) {
    const int first = w << 5;
    u32 b = 0u;
#pragma unroll 8
    for (int j = 0; j < 32; ++j) {
      const int i = first + j;
      if (i < n && rank[i] < kv) b |= 1u << j;
    }
    bits[w] = b;
  }
  __syncthreads();
}

// staged_block_pairs<true, true, COARSE> (lanes, column bitmap) with the bitmap read off the column
// row's ranks (vRanks [n]) instead of the kept-column list, so the search need not compact the column
// rows whose walks stage a bitmap (count_search_batched RANKBITS skips them: V is then stale and
// unread). Where no bitmap fits, the list path as before (V compacted). The same pairs.
template <bool COARSE>
__device__ __forceinline__ long long staged_block_pairs_ranked(const int* V, int kv, const int* vRanks, const int* S, const int* runStart,
                                                              int ks, int m, int n, int numBlocks, int* stage, int lane, int lanes,
                                                              TopKShared* sh) {
  const int words = (n + 31) >> 5, groups = (words + 3) >> 2;
  const bool one = 2 * words + 1 + ks <= STAGE_INTS;
  if (!vs_column_bitmap_stages(n, ks, COARSE)) {
    return staged_block_pairs<true, true, false>(V, kv, S, runStart, ks, m, n, numBlocks, stage, lane, lanes, sh);
  }
  // One level: a count per word; two: a count per four words.
  const int counts = one ? words : groups;
  u32* bits = reinterpret_cast<u32*>(stage);
  int* before = stage + words;
  int* staged = before + counts + 1;
  for (int j = threadIdx.x; j < ks; j += THREADS) staged[j] = S[j];
  vs_column_bits_from_ranks(vRanks, kv, n, bits, words);
  const int span = one ? 1 : 4;  // words per count
  const int per = (counts + THREADS - 1) / THREADS;
  const int c0 = min(counts, (int)threadIdx.x * per), c1 = min(counts, c0 + per);
  int mine = 0;
  for (int w = span * c0; w < min(words, span * c1); ++w) mine += __popc(bits[w]);
  int total;
  int run = topk_block_exclusive_scan<THREADS>(mine, *sh, total);
  for (int c = c0; c < c1; ++c) {
    before[c] = run;
    for (int w = span * c; w < min(words, span * c + span); ++w) run += __popc(bits[w]);
  }
  if (threadIdx.x == 0) before[counts] = total;
  __syncthreads();
  long long pairs = 0;
  if (m < numBlocks) {
    pairs = one ? vs_block_pairs_lane_call<1>(V, kv, bits, before, staged, runStart, ks, m, n, lane, lanes)
                : vs_block_pairs_lane_call<2>(V, kv, bits, before, staged, runStart, ks, m, n, lane, lanes);
  }
  __syncthreads();  // before the next unit overwrites the stage
  return pairs;
}

// Adds the block's pairs (one value per thread) into *total, one atomic per warp.
__device__ __forceinline__ void add_pairs(unsigned long long* total, long long mine) {
  unsigned long long v = (unsigned long long)mine;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(total, v);
}

struct Search {
  const int* ranks;       // [2H, n] rank of each column (rows < H) or offset (rows >= H), from vs_rank_rows
  const double* curves;   // [2H, n] (mode 1)
  int* selV;              // [H, n] kept columns, ascending
  int* selS;              // [H, n] kept offsets, ascending
  int* counts;            // [2H] the probe's counts: columns, then diagonals (-1 before the first)
  int* selected;          // [2H] the count each row's selection holds (-1: none)
  unsigned long long* totals;  // [3] pair totals, probe t uses t % 3
  u32* changed;           // [3] whether any count changed, probe t uses t % 3
  u32* barrier;
  int* stage;             // [STAGE_INTS] shared
  int n, H, numBlocks;
  u32 generation;
  int probes;
  double lastSum;         // the last walked probe's pairs
};

// Layer pairs (all heads) of the counts countOf(row) gives (row < H: columns of head row, else
// diagonals of head row - H). countOf is called by thread 0 of the row's block.
template <class CountOf>
__device__ __forceinline__ double probe(Search& s, CountOf countOf, TopKShared& sh, int& rowCount) {
  const int n = s.n, H = s.H;
  const int slot = s.probes % 3;
  for (int row = blockIdx.x; row < 2 * H; row += gridDim.x) {
    if (threadIdx.x == 0) {
      rowCount = min(countOf(row), n);
      if (rowCount != s.counts[row]) s.changed[slot] = 1u;
      s.counts[row] = rowCount;
    }
    __syncthreads();
    const int k = rowCount;
    if (k != s.selected[row]) {
      const bool columns = row < H;
      select_ranked(s.ranks + (size_t)row * n, n, k, (columns ? s.selV : s.selS) + (size_t)(columns ? row : row - H) * n, sh);
      __syncthreads();  // every thread has compared with selected[row]
      if (threadIdx.x == 0) s.selected[row] = k;
    }
    __syncthreads();
  }
  grid_barrier(s.barrier, s.generation);

  // The same counts as the last walked probe give the same pairs: every block sees the same flag.
  if (*(volatile u32*)&s.changed[slot] != 0u) {
    unsigned long long* total = s.totals + slot;
    long long mine = 0;
    // Work units of THREADS consecutive 64-row blocks of one head.
    const int chunks = (s.numBlocks + THREADS - 1) / THREADS;
    for (int u = blockIdx.x; u < H * chunks; u += gridDim.x) {
      const int h = u / chunks, m = (u - h * chunks) * THREADS + threadIdx.x;
      const int kv = s.counts[h], ks = s.counts[H + h];
      mine += staged_block_pairs(s.selV + (size_t)h * n, kv, s.selS + (size_t)h * n, nullptr, ks, m, n, s.numBlocks, s.stage);
    }
    add_pairs(total, mine);
    grid_barrier(s.barrier, s.generation);
    s.lastSum = (double)*(volatile unsigned long long*)total;
  }
  // Probe t - 1's slot (= probe t + 2's) was last read before this probe's first barrier.
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    s.totals[(slot + 2) % 3] = 0ull;
    s.changed[(slot + 2) % 3] = 0u;
  }
  ++s.probes;
  return s.lastSum;
}

// Where a search stands; each state names what the probe just run answers.
enum State : int {
  VS_FLOOR,          // (minV, minS): the forced floor
  VS_SMALLEST,       // (minS, minS)
  VS_COMMON,         // (mid, mid): bisection of the common count
  VS_COLUMNS,        // (mid, ks): bisection of the column count
  VS_COLUMNS_LO,     // (lo, ks): below the target by how much
  VS_COLUMNS_NEXT,   // (lo + 1, ks): above it by how much
  FP_FLOOR,          // alpha 0
  FP_TOP,            // alpha 1
  FP_HALVING,        // alpha mid
  DONE,
};

// What a search looks for (fixed for the whole search).
struct SearchGoal {
  double target;  // (1 - s)·H·causal pairs
  int n, H, mode, minBudget, forcedColumns, forcedDiagonals;
  int minV, minS;  // the forced floor's counts, clamped to n
};

// A search's position: its next probe (kv, ks in mode 0; alpha in mode 1), the bisection bounds, and
// the answer once state is DONE. A plain value, so a copy can be moved on an assumed outcome.
struct SearchState {
  int state;
  int kv, ks, lo, hi, colHi;  // Vertical-Slash: the probe's counts and bounds (columns: up to colHi at ks)
  int halvings;               // FlexPrefill: halvings of [aLo, aHi] so far
  int status;                 // 0, or 1 / 2 when the floor meets / exceeds the target
  int probes;                 // probes answered so far
  double below;               // Vertical-Slash: how far (lo, ks) lies under the target
  double alpha, aLo, aHi, loPairs, hiPairs;  // FlexPrefill: the probe's alpha and thresholdNearestTarget's state
  double first, second, floor;  // the answer (result [0], [1]) and the floor's pairs
};

__device__ __forceinline__ SearchGoal search_goal(int targetHi, int targetLo, int n, int H, int mode, int minBudget,
                                                  int forcedColumns, int forcedDiagonals) {
  return SearchGoal{__hiloint2double(targetHi, targetLo), n, H, mode, minBudget, forcedColumns, forcedDiagonals,
                    min(forcedColumns, n), min(forcedDiagonals, n)};
}

__device__ __forceinline__ SearchState search_start(const SearchGoal& g) {
  SearchState s;
  s.state = g.mode == 0 ? VS_FLOOR : FP_FLOOR;
  s.kv = g.minV;
  s.ks = g.minS;
  s.lo = s.hi = s.colHi = 0;
  s.halvings = s.status = s.probes = 0;
  s.below = 0.0;
  s.alpha = 0.0;
  s.aLo = 0.0;
  s.aHi = 1.0;
  s.loPairs = s.hiPairs = 0.0;
  s.first = s.second = s.floor = 0.0;
  return s;
}

// The count the state's probe keeps in score row `row` (row < H: columns of head row, else diagonals
// of head row - H), before the clamp to n.
__device__ __forceinline__ int search_count(const SearchState& s, const SearchGoal& g, const double* curves, int row) {
  if (g.mode == 0) return row < g.H ? s.kv : s.ks;
  return fp_size(curves + (size_t)row * g.n, g.n, s.alpha, g.minBudget, row < g.H ? g.forcedColumns : g.forcedDiagonals);
}

// Whether two states probe the same counts (so their probes have the same pairs).
__device__ __forceinline__ bool same_probe(const SearchState& a, const SearchState& b, int mode) {
  if (mode == 0) return a.kv == b.kv && a.ks == b.ks;
  return __double_as_longlong(a.alpha) == __double_as_longlong(b.alpha);
}

// The column search's next probe from [lo, hi] (or its end): the upper middle while lo < hi, then lo
// itself once (VS_COLUMNS_LO) while lo < colHi, else done with (lo, ks).
__device__ __forceinline__ void next_column(SearchState& s) {
  if (s.lo < s.hi) {
    s.kv = (s.lo + s.hi + 1) >> 1;
    s.state = VS_COLUMNS;
  } else if (s.lo < s.colHi) {
    s.kv = s.lo;
    s.state = VS_COLUMNS_LO;
  } else {
    s.first = s.lo;
    s.second = s.ks;
    s.state = DONE;
  }
}

// chooseVerticalSlashCounts' closestColumns(vLo, vHi, ks) from its first probe on.
__device__ __forceinline__ void start_columns(SearchState& s, int vLo, int vHi, int ks) {
  s.lo = vLo;
  s.hi = vHi;
  s.colHi = vHi;
  s.ks = ks;
  next_column(s);
}

__device__ __forceinline__ void next_halving(SearchState& s, double target) {
  if (s.halvings < 30 && s.hiPairs > target) {
    s.alpha = __dmul_rn(__dadd_rn(s.aLo, s.aHi), 0.5);
    ++s.halvings;
    s.state = FP_HALVING;
  } else {
    s.first = __dsub_rn(s.hiPairs, target) < __dsub_rn(target, s.loPairs) ? s.aHi : s.aLo;
    s.state = DONE;
  }
}

// Moves the search on once its probe is answered: p = the layer's exact pairs at the probe's counts.
__device__ __forceinline__ void search_advance(SearchState& s, const SearchGoal& g, double p) {
  const double target = g.target;
  const int n = g.n;
  ++s.probes;
  switch (s.state) {
    case VS_FLOOR:
      s.floor = p;
      if (p >= target) {
        s.first = g.minV;
        s.second = g.minS;
        s.status = p > target ? 2 : 1;
        s.state = DONE;
      } else {
        s.kv = s.ks = g.minS;
        s.state = VS_SMALLEST;
      }
      break;
    case VS_SMALLEST:
      if (p > target) {
        start_columns(s, g.minV, g.minS, g.minS);
        break;
      }
      s.lo = g.minS;
      s.hi = n;
      // continue with the common bisection (lo < hi unless minS = n)
      if (s.lo < s.hi) {
        s.kv = s.ks = (s.lo + s.hi + 1) >> 1;
        s.state = VS_COMMON;
      } else {
        s.first = s.second = n;
        s.state = DONE;
      }
      break;
    case VS_COMMON:
      if (p <= target) s.lo = s.kv;
      else s.hi = s.kv - 1;
      if (s.lo < s.hi) {
        s.kv = s.ks = (s.lo + s.hi + 1) >> 1;
      } else if (s.lo >= n) {
        s.first = s.second = n;
        s.state = DONE;
      } else {
        start_columns(s, s.lo, n, s.lo);
      }
      break;
    case VS_COLUMNS:
      if (p <= target) s.lo = s.kv;
      else s.hi = s.kv - 1;
      next_column(s);
      break;
    case VS_COLUMNS_LO:
      s.below = __dsub_rn(target, p);
      s.kv = s.lo + 1;
      s.state = VS_COLUMNS_NEXT;
      break;
    case VS_COLUMNS_NEXT:
      s.first = __dsub_rn(p, target) < s.below ? s.lo + 1 : s.lo;
      s.second = s.ks;
      s.state = DONE;
      break;
    case FP_FLOOR:
      s.floor = s.loPairs = p;
      if (p >= target) {
        s.status = p > target ? 2 : 1;
        s.state = DONE;
      } else {
        s.alpha = 1.0;
        s.state = FP_TOP;
      }
      break;
    case FP_TOP:
      s.hiPairs = p;
      next_halving(s, target);
      break;
    case FP_HALVING:
      if (p <= target) {
        s.aLo = s.alpha;
        s.loPairs = p;
      } else {
        s.aHi = s.alpha;
        s.hiPairs = p;
      }
      next_halving(s, target);
      break;
  }
}

// result (float64): [0] the column count (mode 0) or alpha (mode 1), [1] the diagonal count (mode
// 0), [2] 0, or 1 when the floor meets the target, 2 when it exceeds it, [3] probes run, [4] the
// floor's pairs.
__device__ __forceinline__ void write_result(double* result, const SearchState& s) {
  result[0] = s.first;
  result[1] = s.second;
  result[2] = s.status;
  result[3] = s.probes;
  result[4] = s.floor;
}

__device__ __forceinline__ bool same_counts(const int* a, const int* b, int count) {
  for (int i = 0; i < count; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Where a batched round's probe gets its pairs (source[c]): walked, not probed, another probe of
// the round with the same counts (>= 0), or CACHED - j: the last round's probe j had the same counts.
constexpr int WALK = -1, DEAD = -2, CACHED = -3;

// ---- The guided tree (vs_count_search_batched*_guided; session 7, opt-in) ----
// The heap tree answers the next `levels` levels whatever the outcomes, so a 32-probe Vertical-Slash
// search takes 8 rounds of 15 probes. Most of those outcomes are foregone: the common bisection
// starts at n / 2 when the answer is near 100. The guided tree spends the same P slots best-first
// on the probes most likely to lie on the real path, each outcome predicted from a cheap model of
// the layer pairs (guide_pairs) calibrated on the exact pairs already known: a predicted outcome
// counts GUIDE_SURE likely, an unsure one 1/2. The real outcomes are still followed exactly (every
// probe's pairs are walked, as before), so the answer cannot change; only how far a round reaches.
constexpr double GUIDE_EPS = 0.05;       // a prediction's margin per unit of model distance from its calibration point
constexpr double GUIDE_EPS_SPAN = 0.1;   // and per unit of exact pairs between the two bracketing points
constexpr float GUIDE_SURE = 0.9f;       // how likely a predicted outcome counts in the best-first layout
constexpr int GUIDE_NONE = -1, GUIDE_ENDED = -2;  // a node's child slot: not laid out / the search ends there

// The model of a probe's layer pairs from cumulative gains over rank order (vs_guide_gains /
// vs_guide_scan), each [n + 1] with [k] = the sum over heads of the first k ranked items' gains:
// col: a kept column c alone attends n - c pairs; diag: a kept offset o, modelled as a band of
// offsets [o - 32, o + 32) less the bands of better-ranked neighbours, attends its width x (n - o);
// width: the bands' widths alone. Kept columns inside a band add nothing, so the columns count at
// (1 - the bands' share of the offsets).
struct Guide {
  const double* col;
  const double* diag;
  const double* width;
  int n, H;
};

__device__ __forceinline__ double guide_pairs(const Guide& g, int kv, int ks) {
  kv = min(max(kv, 0), g.n);
  ks = min(max(ks, 0), g.n);
  return g.col[kv] * (1.0 - g.width[ks] / ((double)g.H * g.n)) + g.diag[ks];
}

// An exact probe on the real path: the model's pairs f, the exact pairs e, its common count k.
struct GuidePoint {
  double f, e;
  int k, valid;
};

__device__ __forceinline__ double guide_abs(double x) { return x < 0.0 ? -x : x; }

// The calibration: on the common line (kv = ks) and on the column line of the current column search
// (ks = vLine), the known probe nearest the target from below (lo: e <= target) and from above.
struct GuideLines {
  GuidePoint cLo, cHi, vLo, vHi;
  int vLine;
};

__device__ __forceinline__ GuideLines guide_lines_start() {
  GuideLines L;
  L.cLo.valid = L.cHi.valid = L.vLo.valid = L.vHi.valid = 0;
  L.cLo.f = L.cLo.e = L.cHi.f = L.cHi.e = L.vLo.f = L.vLo.e = L.vHi.f = L.vHi.e = 0.0;
  L.cLo.k = L.cHi.k = L.vLo.k = L.vHi.k = 0;
  L.vLine = -1;
  return L;
}

__device__ __forceinline__ bool guide_in_columns(int state) {
  return state == VS_COLUMNS || state == VS_COLUMNS_LO || state == VS_COLUMNS_NEXT;
}

// At a round's start: a column search that has begun calibrates on its own line, from (ks, ks).
__device__ __forceinline__ void guide_lines_round(GuideLines& L, const SearchState& st) {
  if (guide_in_columns(st.state) && L.vLine != st.ks) {
    L.vLine = st.ks;
    L.vLo = L.cLo;
    L.vLo.valid = L.cLo.valid && L.cLo.k == st.ks;
    L.vHi.valid = 0;
  }
}

__device__ __forceinline__ void guide_point_update(GuidePoint& lo, GuidePoint& hi, double f, double e, int k, double target) {
  if (e <= target) {
    if (!lo.valid || f >= lo.f) lo = GuidePoint{f, e, k, 1};
  } else if (!hi.valid || f <= hi.f) {
    hi = GuidePoint{f, e, k, 1};
  }
}

// After probe t (counts kv, ks; model pairs f) was answered with the exact pairs e.
__device__ __forceinline__ void guide_lines_update(GuideLines& L, const SearchState& t, double f, double e, double target) {
  if (t.kv == t.ks) guide_point_update(L.cLo, L.cHi, f, e, t.kv, target);
  if (t.ks == L.vLine) guide_point_update(L.vLo, L.vHi, f, e, t.kv, target);
}

// The exact pairs predicted at model pairs f from a line's points (p) and the margin around it (m):
// between two points the secant, from one the model's difference, from none the model itself.
__device__ __forceinline__ void guide_on_line(double f, const GuidePoint& lo, const GuidePoint& hi, double& p, double& m) {
  if (lo.valid && hi.valid && hi.f > lo.f) {
    const double slope = (hi.e - lo.e) / (hi.f - lo.f);
    p = lo.e + (f - lo.f) * slope;
    m = GUIDE_EPS * (guide_abs(f - lo.f) < guide_abs(f - hi.f) ? guide_abs(f - lo.f) : guide_abs(f - hi.f)) * slope + GUIDE_EPS_SPAN * (hi.e - lo.e);
  } else if (lo.valid || hi.valid) {
    const GuidePoint& c = lo.valid ? lo : hi;
    p = c.e + (f - c.f);
    m = GUIDE_EPS * guide_abs(f - c.f);
  } else {
    p = f;
    m = GUIDE_EPS * f;
  }
}

// The predicted outcome of probe t: -1 at or below the target, 1 above, 0 unsure (FlexPrefill's
// probes: always unsure, so its tree is the heap tree's breadth-first one). fOut: the model's pairs.
__device__ __forceinline__ int guide_predict(const SearchState& t, const SearchGoal& goal, const Guide& g, const GuideLines& L,
                                             double& fOut) {
  fOut = 0.0;
  if (goal.mode != 0) return 0;
  if (t.state == VS_COLUMNS_LO) return -1;  // its next probe is the same either way
  const double f = guide_pairs(g, t.kv, t.ks);
  fOut = f;
  double p, m;
  if (t.state == VS_FLOOR) {
    guide_on_line(f, GuidePoint{0.0, 0.0, 0, 0}, GuidePoint{0.0, 0.0, 0, 0}, p, m);
  } else if (t.kv == t.ks && !guide_in_columns(t.state)) {
    guide_on_line(f, L.cLo, L.cHi, p, m);
  } else if (t.ks == L.vLine) {
    guide_on_line(f, L.vLo, L.vHi, p, m);
  } else {
    // A column search not begun yet: its anchor (ks, ks) from the common line, then the columns' model.
    const int K = t.ks;
    double ap, am;
    if (L.cLo.valid && L.cLo.k == K) {
      ap = L.cLo.e;
      am = 0.0;
    } else {
      guide_on_line(guide_pairs(g, K, K), L.cLo, L.cHi, ap, am);
    }
    const double d = f - guide_pairs(g, K, K);
    p = ap + d;
    m = am + GUIDE_EPS * guide_abs(d);
  }
  return p + m <= goal.target ? -1 : p - m > goal.target ? 1 : 0;
}

// ---- Predictions from per-round thresholds (guideThresholds, session 8, opt-in) ----
// On a line (the common line kv = ks, or the current column search's line ks = vLine, kv varying) a
// probe's prediction depends on its count alone through the model pairs f, and p + m and p - m grow
// with f (guide_on_line: slope > 0, margins linear in |f - point|), so where f grows along the line
// the sure-below probes are a prefix of it and the sure-above ones a suffix. Four warps find the two
// ends of the two lines once a round (a 32-way search of the cumulative arrays: 3 dependent loads
// at 16K) and the layout compares counts with them, loading nothing: the 15 dependent model loads
// of a guided layout leave its chain. On the column line f grows with kv (col is cumulative); on
// the common line nearly always; where it does not, a prediction can differ from guide_predict's,
// which costs rounds, never answers (the real outcomes are followed as before).
struct GuideThresholds {
  int commonBelowEnd, commonAboveStart;  // common line: k < end sure at or below the target, k >= start sure above
  int columnBelowEnd, columnAboveStart;  // the same over kv on the line ks = vLine (valid when vLine >= 0)
};

// Whether count k on search `which` (0/1: the common line's not-sure-below / sure-above, 2/3: the
// column line's) holds: false below the threshold, true from it on where the line's f grows.
__device__ __forceinline__ bool guide_threshold_test(int which, int k, const Guide& g, const GuideLines& L, double target) {
  const bool common = which < 2;
  const double f = common ? guide_pairs(g, k, k) : guide_pairs(g, k, L.vLine);
  double p, m;
  if (common) guide_on_line(f, L.cLo, L.cHi, p, m);
  else guide_on_line(f, L.vLo, L.vHi, p, m);
  return (which & 1) ? p - m > target : !(p + m <= target);
}

// The first k in [0, n] for which guide_threshold_test holds (n + 1 if none): a 32-way search, lane
// `lane` testing one point a step (every lane of the warp calls it). The host harness (no
// __CUDA_ARCH__) runs the 32 lanes' tests in a loop: the same points, the same answer.
__device__ __forceinline__ int guide_threshold_search(int which, const Guide& g, const GuideLines& L, double target, int lane) {
  int a = 0, b = g.n + 1;  // the answer lies in [a, b]
  while (a < b) {
    const int step = (b - a + 31) >> 5;
#ifdef __CUDA_ARCH__
    const int t = a + lane * step;
    const unsigned hits = __ballot_sync(0xffffffffu, t < b && guide_threshold_test(which, t, g, L, target));
    const int first = __ffs(hits) - 1;
#else
    (void)lane;
    unsigned hits = 0;
    for (int i = 0; i < 32; ++i) {
      const int t = a + i * step;
      if (t < b && guide_threshold_test(which, t, g, L, target)) hits |= 1u << i;
    }
    const int first = hits ? __builtin_ctz(hits) : -1;
#endif
    if (hits == 0) {
      a += min(31, (b - 1 - a) / step) * step + 1;  // past the last point tested (every tested point failed)
    } else {
      if (first == 0) return a;
      b = a + first * step;  // the first test to hold; the answer lies past the one before it
      a = a + (first - 1) * step + 1;
    }
  }
  return a;
}

// Warp `which` (0-3) of a guided round's block, before the layout: one of the round's four
// thresholds, from the lines as guide_layout will see them (guide_lines_round on a copy).
__device__ __forceinline__ void guide_thresholds_warp(const SearchState& st, const GuideLines& lines, const SearchGoal& goal,
                                                      const double* guide, int which, int lane, GuideThresholds& out) {
  if (goal.mode != 0) return;
  GuideLines L = lines;
  guide_lines_round(L, st);
  if (which >= 2 && L.vLine < 0) return;  // no column search has begun: no column line
  const Guide g{guide, guide + (goal.n + 1), guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
  const int k = guide_threshold_search(which, g, L, goal.target, lane);
  if (lane == 0) {
    int* slot = which == 0 ? &out.commonBelowEnd : which == 1 ? &out.commonAboveStart : which == 2 ? &out.columnBelowEnd : &out.columnAboveStart;
    *slot = k;
  }
}

// guide_predict from the thresholds where the probe lies on a line they cover; elsewhere (the floor,
// a column search not begun yet) guide_predict itself. fOut is not set: guide_models fills the
// model pairs after the layout, every node at once.
__device__ __forceinline__ int guide_predict_thresholds(const SearchState& t, const SearchGoal& goal, const Guide& g, const GuideLines& L,
                                                        const GuideThresholds& th) {
  if (goal.mode != 0) return 0;
  if (t.state == VS_COLUMNS_LO) return -1;
  if (t.state != VS_FLOOR) {
    if (t.kv == t.ks && !guide_in_columns(t.state)) {
      const int k = min(max(t.kv, 0), g.n);
      return k < th.commonBelowEnd ? -1 : k >= th.commonAboveStart ? 1 : 0;
    }
    if (t.ks == L.vLine) {
      const int k = min(max(t.kv, 0), g.n);
      return k < th.columnBelowEnd ? -1 : k >= th.columnAboveStart ? 1 : 0;
    }
  }
  double f;
  return guide_predict(t, goal, g, L, f);
}

// The model pairs guide_predict gives node t (the follow's calibration reads them).
__device__ __forceinline__ double guide_model(const SearchState& t, const SearchGoal& goal, const Guide& g) {
  if (goal.mode != 0 || t.state == VS_COLUMNS_LO) return 0.0;
  return guide_pairs(g, t.kv, t.ks);
}
// ---- end of the thresholds ----

// A guided round's shared state beside the tree: child links (GUIDE_NONE / GUIDE_ENDED or a node),
// each node's predicted outcome and model pairs, the layout's candidates (untried children, each
// node << 1 | high, with its chance), the calibration, and the search's goal and cumulative gains.
struct GuidedRound {
  int lowChild[MAX_BATCH], highChild[MAX_BATCH], predicted[MAX_BATCH];
  double model[MAX_BATCH];
  int candidate[2 * MAX_BATCH];
  float candidateChance[2 * MAX_BATCH];
  GuideLines lines;
  SearchGoal goal;
  const double* guide;  // [3, n + 1]: Guide's col, diag, width
  // The kernel's own shared state the layout and the follow read and write.
  SearchState* st;
  SearchState* tree;
  int* live;
  const double* total;
  int P;
  GuideThresholds thresholds;  // guideThresholds: this round's (guide_thresholds_warp)
};

// guide_predict of node c of the round (model pairs into r->model[c]); THRESHOLDS:
// guide_predict_thresholds (r->model[c] left to guide_models).
template <bool THRESHOLDS>
__device__ __forceinline__ int guide_predict_node(GuidedRound* r, int c) {
  const SearchGoal& goal = r->goal;
  const Guide g{r->guide, r->guide + (goal.n + 1), r->guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
  if constexpr (THRESHOLDS) return guide_predict_thresholds(r->tree[c], goal, g, r->lines, r->thresholds);
  else return guide_predict(r->tree[c], goal, g, r->lines, r->model[c]);
}

// guide_predict_node for node c's state t held in registers (the lean layout: REGS).
template <bool THRESHOLDS>
__device__ __forceinline__ int guide_predict_state(GuidedRound* r, const SearchState& t, int c) {
  const SearchGoal& goal = r->goal;
  const Guide g{r->guide, r->guide + (goal.n + 1), r->guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
  if constexpr (THRESHOLDS) return guide_predict_thresholds(t, goal, g, r->lines, r->thresholds);
  else return guide_predict(t, goal, g, r->lines, r->model[c]);
}

// With thresholds: every live node's model pairs, nodes first, first + stride, ... (the kernel's
// threads after the layout; the layout left them unset).
__device__ __forceinline__ void guide_models(GuidedRound* r, int first, int stride) {
  const SearchGoal& goal = r->goal;
  const Guide g{r->guide, r->guide + (goal.n + 1), r->guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
  for (int c = first; c < r->P; c += stride) {
    if (r->live[c]) r->model[c] = guide_model(r->tree[c], goal, g);
  }
}

// Adds node c's two children to the candidates, each with c's chance times its outcome's (a sure
// prediction GUIDE_SURE for its side and 1 - GUIDE_SURE for the other, an unsure one 1/2 each).
__device__ __forceinline__ void guide_push_children(GuidedRound* r, int& candidates, int c, float chance) {
  const int pred = r->predicted[c];
  const float sure = pred == 0 ? 0.5f : GUIDE_SURE;
  r->candidate[candidates] = c << 1;
  r->candidateChance[candidates++] = chance * (pred == 1 ? 1.0f - sure : sure);
  r->candidate[candidates] = (c << 1) | 1;
  r->candidateChance[candidates++] = chance * (pred == -1 ? 1.0f - sure : sure);
}

// Lays out this round's nodes best-first from st (node 0): the next node is the untried child with
// the largest chance of lying on the real path (the product of its ancestors' outcome chances),
// taken from a candidate list (ties to the earlier entry; a taken entry is replaced by the last).
// live[c] = 1 for the nodes laid out, 0 for the rest of the P slots. Returns the nodes laid out.
// One thread; inlined into the guided kernels (one block per multiprocessor: registers to spare).
// The lean layout's step for the candidate (parent, high) as node `count`: its state advanced in
// registers (from cur when the parent is the last laid-out node), stored once; false when the search
// ends there (the parent's child slot marked ended). cur / curAt follow the last laid-out node.
template <bool THRESHOLDS, class Laps>
__device__ __forceinline__ bool lean_layout_node(GuidedRound* r, Laps& laps, SearchState& cur, int& curAt, int parent, int high, int count) {
  SearchState t = parent == curAt ? cur : r->tree[parent];
  search_advance(t, r->goal, high ? ABOVE_ANY_TARGET : -1.0);
  int& slot = high ? r->highChild[parent] : r->lowChild[parent];
  if (t.state == DONE) {
    slot = GUIDE_ENDED;
    laps.advance(t.state);
    return false;
  }
  r->tree[count] = t;
  slot = count;
  r->live[count] = 1;
  r->lowChild[count] = r->highChild[count] = GUIDE_NONE;
  laps.advance(t.kv);
  r->predicted[count] = guide_predict_state<THRESHOLDS>(r, t, count);
  laps.predict(r->predicted[count]);
  cur = t;
  curAt = count;
  return true;
}

// Laps: where the layout's time goes (scan / advance / predict, each given a value its part computed:
// NoLaps does nothing; the round timing's ClockLaps sums cycles).
struct NoLaps {
  __device__ __forceinline__ void scan(int) {}
  __device__ __forceinline__ void advance(int) {}
  __device__ __forceinline__ void predict(int) {}
};

// REGS (the lean layout, session 8): each node's state is advanced in registers from the last laid-out
// node's (kept in registers: on the predicted path a node's parent is usually the node before it) or
// from the tree, and stored once, instead of copied and advanced in shared memory. The same tree.
template <bool THRESHOLDS, class Laps, bool REGS = false>
__device__ __forceinline__ int guide_layout(GuidedRound* r, Laps& laps) {
  SearchState* tree = r->tree;
  int* live = r->live;
  const SearchState* st = r->st;
  const int P = r->P;
  const SearchGoal& goal = r->goal;
  guide_lines_round(r->lines, *st);
  tree[0] = *st;
  live[0] = 1;
  r->lowChild[0] = r->highChild[0] = GUIDE_NONE;
  laps.advance(live[0]);
  r->predicted[0] = guide_predict_node<THRESHOLDS>(r, 0);
  laps.predict(r->predicted[0]);
  int candidates = 0;
  guide_push_children(r, candidates, 0, 1.0f);
  int count = 1;
  SearchState cur;  // REGS: the last laid-out node's state (node curAt)
  int curAt = 0;
  if constexpr (REGS) cur = tree[0];
  while (count < P && candidates > 0) {
    int best = 0;
    float bestChance = r->candidateChance[0];
    for (int i = 1; i < candidates; ++i) {
      const float x = r->candidateChance[i];
      if (x > bestChance) { best = i; bestChance = x; }
    }
    const int parent = r->candidate[best] >> 1, bestHigh = r->candidate[best] & 1;
    --candidates;
    r->candidate[best] = r->candidate[candidates];
    r->candidateChance[best] = r->candidateChance[candidates];
    laps.scan(parent);
    if constexpr (REGS) {
      if (lean_layout_node<THRESHOLDS>(r, laps, cur, curAt, parent, bestHigh, count)) guide_push_children(r, candidates, count++, bestChance);
      continue;
    }
    tree[count] = tree[parent];
    search_advance(tree[count], goal, bestHigh ? ABOVE_ANY_TARGET : -1.0);
    int& slot = bestHigh ? r->highChild[parent] : r->lowChild[parent];
    if (tree[count].state == DONE) {
      slot = GUIDE_ENDED;
      laps.advance(tree[count].state);
      continue;
    }
    slot = count;
    live[count] = 1;
    r->lowChild[count] = r->highChild[count] = GUIDE_NONE;
    laps.advance(tree[count].kv);
    r->predicted[count] = guide_predict_node<THRESHOLDS>(r, count);
    laps.predict(r->predicted[count]);
    guide_push_children(r, candidates, count, bestChance);
    ++count;
  }
  for (int c = count; c < P; ++c) live[c] = 0;
  return count;
}

template <bool THRESHOLDS = false>
__device__ __forceinline__ int guide_layout(GuidedRound* r) {
  NoLaps none;
  return guide_layout<THRESHOLDS>(r, none);
}

// guide_follow with the search's state in registers (the lean rounds, session 8): loaded once, moved
// on along the path, stored once. The same steps.
__device__ __forceinline__ void guide_follow_lean(GuidedRound* r) {
  const SearchState* tree = r->tree;
  const double* total = r->total;
  const SearchGoal& goal = r->goal;
  SearchState s = *r->st;
  int c = 0;
  for (;;) {
    if (goal.mode == 0) guide_lines_update(r->lines, tree[c], r->model[c], total[c], goal.target);
    search_advance(s, goal, total[c]);
    if (s.state == DONE) break;
    const int low = r->lowChild[c], high = r->highChild[c];
    if (low >= 0 && same_probe(tree[low], s, goal.mode)) c = low;
    else if (high >= 0 && same_probe(tree[high], s, goal.mode)) c = high;
    else break;
  }
  *r->st = s;
}

// Step (6) of a guided round from node c on (thread 0): calibrates on each real probe's exact pairs
// and follows the child links while the real path stays in the tree.
__device__ __forceinline__ void guide_follow(GuidedRound* r) {
  SearchState* st = r->st;
  const SearchState* tree = r->tree;
  const double* total = r->total;
  const SearchGoal& goal = r->goal;
  int c = 0;
  for (;;) {
    if (goal.mode == 0) guide_lines_update(r->lines, tree[c], r->model[c], total[c], goal.target);
    search_advance(*st, goal, total[c]);
    if (st->state == DONE) break;
    const int low = r->lowChild[c], high = r->highChild[c];
    if (low >= 0 && same_probe(tree[low], *st, goal.mode)) c = low;
    else if (high >= 0 && same_probe(tree[high], *st, goal.mode)) c = high;
    else break;
  }
}
// ---- The compact layout (compactLayout, session 10, opt-in; entry group COMPACT) ----
// The lean layout's tree, node by node, from a cheaper chain: the lean layout carries each node as a
// whole SearchState (9 ints, 9 doubles), advances it through search_advance's nine states, writes it
// with 14 stores through the tree pointer GuidedRound holds and re-reads the goal and thresholds from
// shared memory every node. The tree's readers (counts, models, follow) and the next advance read six
// ints of a Vertical-Slash node, and the guided tree runs Vertical-Slash searches only (mode 0), so a
// node here is those six ints, advanced by an int-only state machine for the assumed outcome and
// stored into the first 24 bytes of its tree slot (the slot's other fields are read by nobody); the
// goal's counts, the column line and the thresholds sit in registers; and a column search not begun
// yet predicts from a per-round cache of its line's anchor (guide_predict's values, the same
// operations in the same order: one load a node instead of six and three divisions).
struct LayoutNode {
  int state, kv, ks, lo, hi, colHi;  // SearchState's first six fields
};

__device__ __forceinline__ LayoutNode layout_node_of(const SearchState& s) { return LayoutNode{s.state, s.kv, s.ks, s.lo, s.hi, s.colHi}; }

__device__ __forceinline__ void layout_store(SearchState& slot, const LayoutNode& s) {
  slot.state = s.state;
  slot.kv = s.kv;
  slot.ks = s.ks;
  slot.lo = s.lo;
  slot.hi = s.hi;
  slot.colHi = s.colHi;
}

// next_column on a node (its answer fields are not kept).
__device__ __forceinline__ void layout_next_column(LayoutNode& s) {
  if (s.lo < s.hi) {
    s.kv = (s.lo + s.hi + 1) >> 1;
    s.state = VS_COLUMNS;
  } else if (s.lo < s.colHi) {
    s.kv = s.lo;
    s.state = VS_COLUMNS_LO;
  } else {
    s.state = DONE;
  }
}

__device__ __forceinline__ void layout_start_columns(LayoutNode& s, int vLo, int vHi, int ks) {
  s.lo = vLo;
  s.hi = vHi;
  s.colHi = vHi;
  s.ks = ks;
  layout_next_column(s);
}

// search_advance of a Vertical-Slash node for an assumed outcome: `high` above every target
// (ABOVE_ANY_TARGET), else at or below it (-1.0; a target is never negative). The state, counts and
// bounds search_advance leaves.
__device__ __forceinline__ void layout_advance(LayoutNode& s, int n, int minV, int minS, bool high) {
  switch (s.state) {
    case VS_FLOOR:
      if (high) {
        s.state = DONE;
      } else {
        s.kv = s.ks = minS;
        s.state = VS_SMALLEST;
      }
      break;
    case VS_SMALLEST:
      if (high) {
        layout_start_columns(s, minV, minS, minS);
        break;
      }
      s.lo = minS;
      s.hi = n;
      if (s.lo < s.hi) {
        s.kv = s.ks = (s.lo + s.hi + 1) >> 1;
        s.state = VS_COMMON;
      } else {
        s.state = DONE;
      }
      break;
    case VS_COMMON:
      if (high) s.hi = s.kv - 1;
      else s.lo = s.kv;
      if (s.lo < s.hi) s.kv = s.ks = (s.lo + s.hi + 1) >> 1;
      else if (s.lo >= n) s.state = DONE;
      else layout_start_columns(s, s.lo, n, s.lo);
      break;
    case VS_COLUMNS:
      if (high) s.hi = s.kv - 1;
      else s.lo = s.kv;
      layout_next_column(s);
      break;
    case VS_COLUMNS_LO:
      s.kv = s.lo + 1;
      s.state = VS_COLUMNS_NEXT;
      break;
    case VS_COLUMNS_NEXT:
      s.state = DONE;
      break;
    default:
      break;
  }
}

// The fallback prediction's per-round cache: for the column line K of a column search not begun yet,
// the model pairs at (K, K), the anchor's predicted pairs and margin from the common line (ap, am), and
// guide_pairs' factor and diagonal term at ks = K. K = -1: empty.
struct LayoutFallback {
  int K;
  double fKK, ap, am, factor, diagK;
};

// guide_predict for the nodes guide_predict_thresholds leaves to it (the floor; a column search not
// begun yet), from the cache where the node's column line is cached.
__device__ __forceinline__ int compact_predict_fallback(const LayoutNode& t, const GuidedRound* r, LayoutFallback& fb) {
  const SearchGoal& goal = r->goal;
  const Guide g{r->guide, r->guide + (goal.n + 1), r->guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
  const GuideLines& L = r->lines;
  double p, m;
  if (t.state == VS_FLOOR) {
    guide_on_line(guide_pairs(g, t.kv, t.ks), GuidePoint{0.0, 0.0, 0, 0}, GuidePoint{0.0, 0.0, 0, 0}, p, m);
  } else {
    const int K = t.ks;
    if (K != fb.K) {
      const int k = min(max(K, 0), g.n);
      fb.K = K;
      fb.factor = 1.0 - g.width[k] / ((double)g.H * g.n);
      fb.diagK = g.diag[k];
      fb.fKK = guide_pairs(g, K, K);
      if (L.cLo.valid && L.cLo.k == K) {
        fb.ap = L.cLo.e;
        fb.am = 0.0;
      } else {
        guide_on_line(fb.fKK, L.cLo, L.cHi, fb.ap, fb.am);
      }
    }
    const double f = g.col[min(max(t.kv, 0), g.n)] * fb.factor + fb.diagK;  // guide_pairs(g, t.kv, K)
    const double d = f - fb.fKK;
    p = fb.ap + d;
    m = fb.am + GUIDE_EPS * guide_abs(d);
  }
  return p + m <= goal.target ? -1 : p - m > goal.target ? 1 : 0;
}

// guide_predict_thresholds of a node, the column line and thresholds given.
__device__ __forceinline__ int compact_predict(const LayoutNode& t, int n, int vLine, const GuideThresholds& th, const GuidedRound* r,
                                               LayoutFallback& fb) {
  if (t.state == VS_COLUMNS_LO) return -1;
  if (t.state != VS_FLOOR) {
    const int k = min(max(t.kv, 0), n);
    if (t.kv == t.ks && !guide_in_columns(t.state)) return k < th.commonBelowEnd ? -1 : k >= th.commonAboveStart ? 1 : 0;
    if (t.ks == vLine) return k < th.columnBelowEnd ? -1 : k >= th.columnAboveStart ? 1 : 0;
  }
  return compact_predict_fallback(t, r, fb);
}

// guide_push_children with node c's prediction given (held in a register, not re-read).
__device__ __forceinline__ void compact_push_children(GuidedRound* r, int& candidates, int c, float chance, int pred) {
  const float sure = pred == 0 ? 0.5f : GUIDE_SURE;
  r->candidate[candidates] = c << 1;
  r->candidateChance[candidates++] = chance * (pred == 1 ? 1.0f - sure : sure);
  r->candidate[candidates] = (c << 1) | 1;
  r->candidateChance[candidates++] = chance * (pred == -1 ? 1.0f - sure : sure);
}

// The lean layout's tree (guide_layout<true, Laps, true>: the same nodes, order, links, predictions
// and candidates) for a Vertical-Slash search with thresholds; tree and live are the kernel's own
// arrays (r->tree, r->live), passed so that the accesses address shared memory directly. Only the six
// LayoutNode fields of a tree slot are written. Returns the nodes laid out.
template <class Laps>
__device__ __forceinline__ int compact_layout(GuidedRound* r, SearchState* tree, int* live, Laps& laps) {
  const int P = r->P;
  guide_lines_round(r->lines, *r->st);
  const int n = r->goal.n, minV = r->goal.minV, minS = r->goal.minS, vLine = r->lines.vLine;
  const GuideThresholds th = r->thresholds;
  LayoutFallback fb{-1, 0.0, 0.0, 0.0, 0.0, 0.0};
  LayoutNode cur = layout_node_of(*r->st);
  int curAt = 0;
  layout_store(tree[0], cur);
  live[0] = 1;
  r->lowChild[0] = r->highChild[0] = GUIDE_NONE;
  laps.advance(live[0]);
  int pred = compact_predict(cur, n, vLine, th, r, fb);
  r->predicted[0] = pred;
  laps.predict(pred);
  int candidates = 0;
  compact_push_children(r, candidates, 0, 1.0f, pred);
  int count = 1;
  while (count < P && candidates > 0) {
    int best = 0;
    float bestChance = r->candidateChance[0];
    for (int i = 1; i < candidates; ++i) {
      const float x = r->candidateChance[i];
      if (x > bestChance) { best = i; bestChance = x; }
    }
    const int parent = r->candidate[best] >> 1, high = r->candidate[best] & 1;
    --candidates;
    r->candidate[best] = r->candidate[candidates];
    r->candidateChance[best] = r->candidateChance[candidates];
    laps.scan(parent);
    LayoutNode t = parent == curAt ? cur : layout_node_of(tree[parent]);
    layout_advance(t, n, minV, minS, high != 0);
    int& slot = high ? r->highChild[parent] : r->lowChild[parent];
    if (t.state == DONE) {
      slot = GUIDE_ENDED;
      laps.advance(t.state);
      continue;
    }
    layout_store(tree[count], t);
    slot = count;
    live[count] = 1;
    r->lowChild[count] = r->highChild[count] = GUIDE_NONE;
    laps.advance(t.kv);
    pred = compact_predict(t, n, vLine, th, r, fb);
    r->predicted[count] = pred;
    laps.predict(pred);
    compact_push_children(r, candidates, count, bestChance, pred);
    cur = t;
    curAt = count++;
  }
  for (int c = count; c < P; ++c) live[c] = 0;
  return count;
}
// ---- end of the compact layout ----

// ---- end of the guided tree ----

// ---- Round timing (session 8, a diagnostic: the entries that take it exist in VS_SEARCH_TIMING builds only) ----
// A batched round's phases in SM clock cycles (clock64), recorded by block 0's thread 0 except the
// *_MAX fields, each the longest block's (atomicMax): where a round's time goes, guided or not.
// timing [TIMING_HEADER + TIMING_ROUNDS x TIMING_FIELDS] u64, zeroed before the launch.
constexpr int TIMING_HEADER = 8;   // [0] / [1] block 0's globaltimer (ns) at start / end, [2] / [3] its clock64, [4] rounds
constexpr int TIMING_FIELDS = 16;
constexpr int TIMING_ROUNDS = 32;  // later rounds are not recorded
enum TimingField : int {
  TF_STEP1,                        // block 0: round start to past step (1)'s barrier (layout, thresholds' searches)
  TF_LAYOUT,                       // thread 0's layout alone
  TF_SCAN, TF_ADVANCE, TF_PREDICT, // the guided layout's parts: candidate pushes and scans, state copies and
                                   // search_advance, predictions (summed over its nodes)
  TF_COUNTS,                       // block 0: steps (2) and (3), counts and their dedupe
  TF_SELECT_MAX,                   // step (4): the longest block's selections
  TF_BARRIER1,                     // block 0: its selections' end to past the first grid barrier
  TF_WALK_MAX,                     // step (5): the longest block's walks
  TF_BARRIER2,                     // block 0: its walks' end to past the second grid barrier
  TF_FOLLOW,                       // thread 0's step (6)
  TF_TAIL,                         // block 0: past step (5) (or step (3) when nothing walks) to the round's end
  TF_ROUND,                        // block 0: the whole round
  TF_NODES,                        // nodes laid out (a count, not cycles)
  TF_WALKS,                        // probes walked (a count)
};
#if defined(VS_SEARCH_TIMING)
// guide_layout's Laps when timed: each part's cycles summed, the clock read once its value is
// computed (its consumer, a shared store before the call, waits for it). Timing builds only (unused,
// it would draw nvcc's unreferenced-function warnings).
struct ClockLaps {
  unsigned long long scanCycles = 0, advanceCycles = 0, predictCycles = 0;
  long long t0 = clock64();
  __device__ __forceinline__ void lap(unsigned long long& acc, int dep) {
    asm volatile("" ::"r"(dep) : "memory");
    const long long t = clock64();
    acc += (unsigned long long)(t - t0);
    t0 = t;
  }
  __device__ __forceinline__ void scan(int dep) { lap(scanCycles, dep); }
  __device__ __forceinline__ void advance(int dep) { lap(advanceCycles, dep); }
  __device__ __forceinline__ void predict(int dep) { lap(predictCycles, dep); }
};
#endif

__device__ __forceinline__ unsigned long long vs_globaltimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The phase clock lives in shared memory, read and written by each block's thread 0 only: in
// registers it stayed live across the walks' calls and spilled.
// field = the cycles since the phase clock t0 (block 0 only; round: null past TIMING_ROUNDS); t0 restarts.
__device__ __forceinline__ void vs_timing_stamp(unsigned long long* round, int field, long long* t0) {
  if (threadIdx.x != 0) return;
  const long long t = clock64();
  if (round != nullptr && blockIdx.x == 0) round[field] = (unsigned long long)(t - *t0);
  *t0 = t;
}

// field = max over blocks of the cycles since the phase clock t0 (each block's thread 0); t0 restarts.
__device__ __forceinline__ void vs_timing_max(unsigned long long* round, int field, long long* t0) {
  if (threadIdx.x != 0) return;
  const long long t = clock64();
  if (round != nullptr) atomicMax(round + field, (unsigned long long)(t - *t0));
  *t0 = t;
}
// ---- end of the round timing ----

}  // namespace

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// Cooperative grid (at most the resident blocks), THREADS threads. ranks [2H, n] from vs_rank_rows;
// curves [2H, n] (mode 1, else unused); selV / selS [H, n] scratch; counts [2H] = -1, selected [2H]
// = -1, totals [3] = 0, changed [3] = 0, barrier = 0 on entry. target = (1 - s)·H·causal
// pairs as double halves. result: write_result.
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search(
    const int* ranks, const double* curves, int* selV, int* selS, int* counts, int* selected,
    unsigned long long* totals, u32* changed, u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi,
    int targetLo, int minBudget, int forcedColumns, int forcedDiagonals) {
  __shared__ TopKShared sh;
  __shared__ int rowCount;
  __shared__ int stage[STAGE_INTS];
  Search s{ranks, curves, selV, selS, counts, selected, totals, changed, barrier, stage, n, H, numBlocks, 0u, 0, 0.0};
  const SearchGoal goal = search_goal(targetHi, targetLo, n, H, mode, minBudget, forcedColumns, forcedDiagonals);
  SearchState st = search_start(goal);
  while (st.state != DONE) {
    const double p = probe(s, [&](int row) { return search_count(st, goal, curves, row); }, sh, rowCount);
    search_advance(st, goal, p);
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) write_result(result, st);
}
#endif

// Cooperative grid (at most the resident blocks), THREADS threads; levels in [1, MAX_LEVELS], P =
// 2^levels - 1 with P·2H <= MAX_BATCH_COUNTS. ranks [2H, n] from vs_rank_rows; curves [2H, n] (mode
// 1, else unused); selV / selS [P, H, n] scratch (one selection slot per probe of a round), runs
// [P, H, n] scratch (vs_mark_runs of each slot's offsets: the walks go by runs); selected
// [P, 2H] = -1, totals [3, MAX_BATCH] = 0, barrier = 0 on entry. target and result [0..4] as
// vs_count_search's; result[5]: the rounds run.
// A round: (1) thread 0 of every block lays out the decision tree in heap order (node c's children:
// 2c + 1 after an outcome at or below the target, 2c + 2 above it; a node whose search is over
// probes nothing); (2) every live node's counts; (3) per set of equal counts one node walks, unless
// the last round answered those counts; (4) their selections, a barrier; (5) their pairs, a barrier;
// (6) thread 0 moves the search on along the real outcomes, as far as the tree reaches. Every block
// computes the same tree, counts and totals, so all agree on every branch.
// LANES (vs_count_search_batched_lanes): step (5)'s units are THREADS / lanes consecutive 64-row
// blocks of one (node, head), each block walked by `lanes` consecutive threads (vs_block_pairs_lane).
// GUIDED (vs_count_search_batched*_guided): step (1) lays out the guided tree instead (guide_layout,
// `guide` = vs_guide_scan's [3, n + 1] cumulative gains), step (6) follows its child links, and the
// exact pairs met on the way calibrate the next round's predictions (guide_lines_update).
// COARSE: the walks' column bitmap in its two-level form where the one-level one does not fit.
// RANKBITS (with LANES, BITS): the walks' column bitmaps are read off the ranks
// (staged_block_pairs_ranked), and step (4) skips the compaction of every column row whose walk will
// stage a bitmap.
template <bool LANES, bool BITS, bool GUIDED = false, bool COARSE = false, bool RANKBITS = false, bool THRESHOLDS = false,
          bool TIMING = false, bool HANDOFF = false, bool LEAN = false, bool ORDER = false, bool COMPACT = false>
__device__ __forceinline__ void count_search_batched(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide = nullptr,
    unsigned long long* timing = nullptr, int* answerCounts = nullptr, const int* order = nullptr) {
  __shared__ TopKShared sh;
  __shared__ int stage[STAGE_INTS];
  __shared__ SearchState st;               // where the search stands
  __shared__ SearchState tree[MAX_BATCH];  // this round's nodes
  __shared__ int live[MAX_BATCH], source[MAX_BATCH], cachedLive[MAX_BATCH];
  __shared__ int counts[MAX_BATCH_COUNTS], cachedCounts[MAX_BATCH_COUNTS];  // [P, 2H]
  __shared__ double total[MAX_BATCH], cachedTotal[MAX_BATCH];
  __shared__ int walks;
  __shared__ GuidedRound guided[1];  // GUIDED only (unreferenced, so not allocated, in the other kernels)
  const SearchGoal goal = search_goal(targetHi, targetLo, n, H, mode, minBudget, forcedColumns, forcedDiagonals);
  const int perUnit = LANES ? THREADS / lanes : THREADS;  // 64-row blocks per walk unit
  const int P = (1 << levels) - 1, rows = 2 * H, chunks = (numBlocks + perUnit - 1) / perUnit;
  u32 generation = 0;
  int walkRounds = 0, rounds = 0;
  if constexpr (TIMING) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
      timing[0] = vs_globaltimer();
      timing[2] = (unsigned long long)clock64();
    }
  }
  if (threadIdx.x == 0) {
    st = search_start(goal);
    if constexpr (GUIDED) {
      guided->lines = guide_lines_start();
      guided->goal = goal;
      guided->guide = guide;
      guided->st = &st;
      guided->tree = tree;
      guided->live = live;
      guided->total = total;
      guided->P = P;
    }
  }
  for (int c = threadIdx.x; c < MAX_BATCH; c += THREADS) cachedLive[c] = 0;
  __syncthreads();

  while (st.state != DONE) {
    ++rounds;
    // TIMING: this round's record (null past TIMING_ROUNDS), its start, and the phase clock t.
    unsigned long long* timed = TIMING && rounds <= TIMING_ROUNDS ? timing + TIMING_HEADER + (size_t)(rounds - 1) * TIMING_FIELDS : nullptr;
    __shared__ long long phaseClock[2];  // TIMING: thread 0's phase clock and the round's start
    if constexpr (TIMING) {
      if (threadIdx.x == 0) phaseClock[0] = phaseClock[1] = clock64();
    }
    // (1) Every probe the next `levels` levels can make: a child assumes an outcome below (-1) or
    // above every target; the real outcome always takes one of the two branches.
    if constexpr (GUIDED && THRESHOLDS) {
      // Four warps find the round's line thresholds; then thread 0 lays out without model loads.
      if (threadIdx.x < 4 * 32) guide_thresholds_warp(st, guided->lines, goal, guide, threadIdx.x >> 5, threadIdx.x & 31, guided->thresholds);
      __syncthreads();
      if constexpr (LEAN) {
        // The lean layout (states advanced in registers); timed in VS_SEARCH_TIMING builds.
        if (threadIdx.x == 0) {
#if defined(VS_SEARCH_TIMING)
          if constexpr (TIMING) {
            // The whole layout only: the parts' clocks (ClockLaps) spilled here at 128 registers.
            const long long l0 = clock64();
            NoLaps none;
            int nodes;
            if constexpr (COMPACT) nodes = compact_layout(guided, tree, live, none);
            else nodes = guide_layout<true, NoLaps, true>(guided, none);
            if (timed != nullptr && blockIdx.x == 0) {
              timed[TF_LAYOUT] = (unsigned long long)(clock64() - l0);
              timed[TF_NODES] = nodes;
            }
          } else
#endif
          {
            NoLaps none;
            if constexpr (COMPACT) compact_layout(guided, tree, live, none);
            else guide_layout<true, NoLaps, true>(guided, none);
          }
        }
      } else if (threadIdx.x == 0) {
        guide_layout<true>(guided);
      }
#if defined(VS_SEARCH_TIMING)
    } else if constexpr (GUIDED && TIMING) {
      if (threadIdx.x == 0) {
        const long long l0 = clock64();
        ClockLaps laps;
        const int nodes = guide_layout<false>(guided, laps);
        if (timed != nullptr && blockIdx.x == 0) {
          timed[TF_LAYOUT] = (unsigned long long)(clock64() - l0);
          timed[TF_SCAN] = laps.scanCycles;
          timed[TF_ADVANCE] = laps.advanceCycles;
          timed[TF_PREDICT] = laps.predictCycles;
          timed[TF_NODES] = nodes;
        }
      }
#endif
    } else if constexpr (GUIDED) {
      if (threadIdx.x == 0) guide_layout(guided);
    } else if (threadIdx.x == 0) {
      long long l0 = 0;
      if constexpr (TIMING) l0 = clock64();
      tree[0] = st;
      live[0] = 1;
      for (int c = 1; c < P; ++c) {
        const int parent = (c - 1) >> 1;
        live[c] = 0;
        if (!live[parent]) continue;
        tree[c] = tree[parent];  // moved on in shared memory (a register copy would spill)
        search_advance(tree[c], goal, (c & 1) ? -1.0 : ABOVE_ANY_TARGET);
        live[c] = tree[c].state != DONE ? 1 : 0;
      }
      if constexpr (TIMING) {
        if (timed != nullptr && blockIdx.x == 0) {
          int nodes = 0;
          for (int c = 0; c < P; ++c) nodes += live[c];
          timed[TF_LAYOUT] = (unsigned long long)(clock64() - l0);
          timed[TF_NODES] = nodes;
        }
      }
    }
    __syncthreads();
    if constexpr (TIMING) vs_timing_stamp(timed, TF_STEP1, phaseClock);
    // (2) Their counts, every row (the clamp to n as in probe()).
    for (int t = threadIdx.x; t < P * rows; t += THREADS) {
      const int c = t / rows;
      counts[t] = live[c] ? min(search_count(tree[c], goal, curves, t - c * rows), n) : -1;
    }
    // With thresholds the layout left the model pairs (the follow's calibration) unset: the upper
    // half's threads load them beside the counts.
    if constexpr (GUIDED && THRESHOLDS) guide_models(guided, (threadIdx.x + THREADS / 2) % THREADS, THREADS);
    __syncthreads();
    // (3) Equal counts give equal pairs: the first node of each set walks, unless the last round knew them.
    for (int c = threadIdx.x; c < P; c += THREADS) {
      int src = live[c] ? WALK : DEAD;
      for (int j = 0; j < P && src == WALK; ++j) {
        if (cachedLive[j] && same_counts(counts + c * rows, cachedCounts + j * rows, rows)) src = CACHED - j;
      }
      for (int d = 0; d < c && src == WALK; ++d) {
        if (live[d] && same_counts(counts + c * rows, counts + d * rows, rows)) src = d;
      }
      source[c] = src;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int w = 0;
      for (int c = 0; c < P; ++c) w += source[c] == WALK ? 1 : 0;
      walks = w;
      if constexpr (TIMING) {
        if (timed != nullptr && blockIdx.x == 0) timed[TF_WALKS] = w;
      }
    }
    __syncthreads();
    if constexpr (TIMING) vs_timing_stamp(timed, TF_COUNTS, phaseClock);

    if (walks > 0) {
      // (4) The walking nodes' selections, slot c for node c (a slot holding the count already is kept).
      for (int u = blockIdx.x; u < P * rows; u += gridDim.x) {
        const int c = u / rows, row = u - c * rows;
        if (source[c] != WALK) continue;
        const int k = counts[u];
        if constexpr (RANKBITS) {
          // A column row whose walk stages a bitmap reads the ranks, not the list: no compaction.
          if (row < H && vs_column_bitmap_stages(n, counts[c * rows + H + row], COARSE)) continue;
        }
        if (k != selected[u]) {
          const bool columns = row < H;
          const size_t at = ((size_t)c * H + (columns ? row : row - H)) * n;
          int* out = (columns ? selV : selS) + at;
          if constexpr (ORDER) {
            // Few items against n: from the rank order through a bitmap in the (idle) walk stage.
            if (4 * k <= n && ((n + 31) >> 5) <= STAGE_INTS) select_ordered(order + (size_t)row * n, n, k, out, reinterpret_cast<u32*>(stage), sh);
            else select_ranked(ranks + (size_t)row * n, n, k, out, sh);
          } else {
            select_ranked(ranks + (size_t)row * n, n, k, out, sh);
          }
          __syncthreads();  // every thread has compared with selected[u], and the list is written
          if (!columns) vs_mark_runs(out, k, runs + at, sh);
          if (threadIdx.x == 0) selected[u] = k;
        }
        __syncthreads();
      }
      if constexpr (TIMING) vs_timing_max(timed, TF_SELECT_MAX, phaseClock);
      grid_barrier<BATCHED_TRAP_POLLS>(barrier, generation);
      if constexpr (TIMING) vs_timing_stamp(timed, TF_BARRIER1, phaseClock);
      unsigned long long* slot = totals + (size_t)(walkRounds % 3) * MAX_BATCH;
      // The previous walking round's totals (two rounds ahead's slot) were last read before the barrier above.
      if (blockIdx.x == 0) {
        for (int c = threadIdx.x; c < MAX_BATCH; c += THREADS) totals[(size_t)((walkRounds + 2) % 3) * MAX_BATCH + c] = 0ull;
      }
      // (5) Their exact pairs: units of perUnit consecutive 64-row blocks of one (node, head).
      for (int u = blockIdx.x; u < P * H * chunks; u += gridDim.x) {
        const int c = u / (H * chunks), h = (u / chunks) % H;
        const int m = LANES ? (u % chunks) * perUnit + threadIdx.x / lanes : (u % chunks) * THREADS + threadIdx.x;
        if (source[c] != WALK) continue;
        const int kv = counts[c * rows + h], ks = counts[c * rows + H + h];
        const size_t at = ((size_t)c * H + h) * n;
        if constexpr (LANES && BITS && RANKBITS) {
          add_pairs(&slot[c], staged_block_pairs_ranked<COARSE>(selV + at, kv, ranks + (size_t)h * n, selS + at, runs + at, ks, m, n, numBlocks,
                                                                stage, threadIdx.x % lanes, lanes, &sh));
        } else if constexpr (LANES) {
          add_pairs(&slot[c], staged_block_pairs<true, BITS, COARSE>(selV + at, kv, selS + at, runs + at, ks, m, n, numBlocks, stage,
                                                             threadIdx.x % lanes, lanes, &sh));
        } else {
          add_pairs(&slot[c], staged_block_pairs(selV + at, kv, selS + at, runs + at, ks, m, n, numBlocks, stage));
        }
      }
      if constexpr (TIMING) vs_timing_max(timed, TF_WALK_MAX, phaseClock);
      grid_barrier<BATCHED_TRAP_POLLS>(barrier, generation);
      if constexpr (TIMING) vs_timing_stamp(timed, TF_BARRIER2, phaseClock);
      for (int c = threadIdx.x; c < P; c += THREADS) {
        if (source[c] == WALK) total[c] = (double)*(volatile unsigned long long*)&slot[c];
      }
      ++walkRounds;
    }
    __syncthreads();
    for (int c = threadIdx.x; c < P; c += THREADS) {
      const int src = source[c];
      if (src >= 0) total[c] = total[src];
      else if (src <= CACHED) total[c] = cachedTotal[CACHED - src];
    }
    __syncthreads();

    // (6) The real outcomes, down the tree as far as it reaches.
    long long followStart = 0;
    if constexpr (TIMING) followStart = clock64();
    if constexpr (GUIDED && LEAN) {
      if (threadIdx.x == 0) guide_follow_lean(guided);
    } else if constexpr (GUIDED) {
      if (threadIdx.x == 0) guide_follow(guided);
    } else if (threadIdx.x == 0) {
      int c = 0;
      for (;;) {
        search_advance(st, goal, total[c]);
        if (st.state == DONE) break;
        const int low = 2 * c + 1, high = 2 * c + 2;
        if (low < P && live[low] && same_probe(tree[low], st, goal.mode)) c = low;
        else if (high < P && live[high] && same_probe(tree[high], st, goal.mode)) c = high;
        else break;
      }
    }
    if constexpr (TIMING) {
      if (threadIdx.x == 0 && timed != nullptr && blockIdx.x == 0) timed[TF_FOLLOW] = (unsigned long long)(clock64() - followStart);
    }
    // This round's answers serve the next round's equal counts.
    for (int t = threadIdx.x; t < P * rows; t += THREADS) cachedCounts[t] = counts[t];
    for (int c = threadIdx.x; c < P; c += THREADS) {
      cachedLive[c] = live[c];
      cachedTotal[c] = total[c];
    }
    __syncthreads();
    if constexpr (TIMING) {
      vs_timing_stamp(timed, TF_TAIL, phaseClock);
      if (timed != nullptr && blockIdx.x == 0 && threadIdx.x == 0) timed[TF_ROUND] = (unsigned long long)(phaseClock[0] - phaseClock[1]);
    }
  }
  if constexpr (HANDOFF) {
    // The answer's counts [2H] for the index builder, and the first slot whose column rows (result[6])
    // and whose offset rows (result[7]) still hold its selection, or -1 (Vertical-Slash only). The last
    // round's selections were published by its grid barriers; live / source are free now.
    if (blockIdx.x == 0) {
      const int kv = min((int)st.first, n), ks = min((int)st.second, n);
      for (int c = threadIdx.x; c < P; c += THREADS) {
        bool v = mode == 0, s = mode == 0;
        for (int h = 0; h < H; ++h) {
          v = v && selected[c * rows + h] == kv;
          s = s && selected[c * rows + H + h] == ks;
        }
        live[c] = v ? 1 : 0;
        source[c] = s ? 1 : 0;
      }
      for (int t = threadIdx.x; t < rows; t += THREADS) answerCounts[t] = t < H ? kv : ks;
      __syncthreads();
      if (threadIdx.x == 0) {
        int cv = -1, cs = -1;
        for (int c = P - 1; c >= 0; --c) {
          if (live[c]) cv = c;
          if (source[c]) cs = c;
        }
        result[6] = cv;
        result[7] = cs;
      }
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    write_result(result, st);
    result[5] = rounds;
    if constexpr (TIMING) {
      timing[1] = vs_globaltimer();
      timing[3] = (unsigned long long)clock64();
      timing[4] = rounds;
    }
  }
}

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search_batched(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels) {
  count_search_batched<false, false>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                     targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, 1);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched with each 64-row block's walk shared by `lanes` threads (a power of two in
// [1, 32]; session 6, opt-in): the last blocks' walks, the longest, are the rounds' critical path
// when the kept diagonals are spread out (a run and a range per kept offset). The same pairs.
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search_batched_lanes(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes) {
  count_search_batched<true, false>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                    targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_DEFAULTS)
// vs_count_search_batched_lanes whose walks count the kept columns from a bitmap staged per unit
// (staged_block_pairs with BITS: two loads a range instead of two gallops; for n up to about 127K,
// beyond which the column list is staged as before). The same pairs.
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search_batched_lanes_bits(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes) {
  count_search_batched<true, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                   targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched with the guided tree (session 7, opt-in): guide [3, n + 1] from
// vs_guide_scan. The same probes answered along the same real path, so the same result, in fewer
// rounds. Two blocks per multiprocessor (64 registers with the layout inlined, no spills).
extern "C" __global__ void __launch_bounds__(THREADS, 2) vs_count_search_batched_guided(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, const double* guide) {
  count_search_batched<false, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                           targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, 1, guide);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched_lanes_bits with the guided tree (session 7, opt-in; with the coarse
// bitmap where the one-level one does not fit, as vs_count_search_batched_lanes_bits_coarse). One block per
// multiprocessor (116 registers with the layout inlined; at 64, as two need, it spilled). The
// organism's round (15 probes x 8 rows = 120 units) still fits the 132 blocks; Llama-8B's (7 x 64) queues on them.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide) {
  count_search_batched<true, true, true, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                               targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes, guide);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched_lanes_bits_guided whose layout predicts from per-round line thresholds
// (guide_thresholds_warp, guide_predict_thresholds; session 8, opt-in: guideThresholds): no model
// loads in the layout's chain. The same probes along the same real path, so the same result.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_thresholds(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide) {
  count_search_batched<true, true, true, true, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H,
                                                            numBlocks, mode, targetHi, targetLo, minBudget, forcedColumns,
                                                            forcedDiagonals, levels, lanes, guide);
}
#endif

#if defined(VS_SEARCH_TIMING) && VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_TIMED)
// The two default kernels with each round's phases recorded (TimingField; session 8, a diagnostic
// for VerticalSlashCountSearch's `timeRounds`): timing [TIMING_HEADER + TIMING_ROUNDS x TIMING_FIELDS]
// u64, zeroed before the launch. The same probes and answers as the untimed entries; the stamps add a
// few cycles a phase. Built only with VS_SEARCH_TIMING, so the default module is unchanged.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_timed(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, unsigned long long* timing) {
  count_search_batched<true, true, true, true, false, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n,
                                                                   H, numBlocks, mode, targetHi, targetLo, minBudget, forcedColumns,
                                                                   forcedDiagonals, levels, lanes, guide, timing);
}
#endif

#if defined(VS_SEARCH_TIMING) && VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_TIMED)
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search_batched_lanes_bits_timed(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, unsigned long long* timing) {
  count_search_batched<true, true, false, false, false, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n,
                                                                     H, numBlocks, mode, targetHi, targetLo, minBudget, forcedColumns,
                                                                     forcedDiagonals, levels, lanes, nullptr, timing);
}
#endif

#if defined(VS_SEARCH_TIMING) && VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_TIMED_LEAN)
// vs_count_search_batched_lanes_bits_guided_lean (thresholds + the lean layout and follow), timed.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_lean_timed(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, unsigned long long* timing) {
  count_search_batched<true, true, true, true, false, true, true, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier,
                                                                               result, n, H, numBlocks, mode, targetHi, targetLo, minBudget,
                                                                               forcedColumns, forcedDiagonals, levels, lanes, guide, timing);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_DEFAULTS)
// vs_count_search_batched_lanes_bits whose walks stage the column bitmap's two-level form
// (vs_columns_below_coarse) where the one-level one does not fit (n past 131,040: 128K prompts),
// instead of the list (session 7, opt-in: coarseColumnBitmap). The same pairs.
extern "C" __global__ void __launch_bounds__(THREADS, 2) vs_count_search_batched_lanes_bits_coarse(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes) {
  count_search_batched<true, true, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks, mode,
                                                targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched_lanes_bits_coarse whose walks read their column bitmaps off the ranks and
// whose rounds compact no column row that a walk stages as a bitmap (session 7, opt-in:
// bitmapFromRanks). The same pairs.
extern "C" __global__ void __launch_bounds__(THREADS, 2) vs_count_search_batched_lanes_bits_ranked(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes) {
  count_search_batched<true, true, false, true, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks,
                                                      mode, targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// vs_count_search_batched_lanes_bits_guided with the column bitmaps read off the ranks (as
// vs_count_search_batched_lanes_bits_ranked; session 7, opt-in: guidedProbes + bitmapFromRanks).
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_ranked(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide) {
  count_search_batched<true, true, true, true, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result, n, H, numBlocks,
                                                     mode, targetHi, targetLo, minBudget, forcedColumns, forcedDiagonals, levels, lanes, guide);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (ceil(n / GUIDE_TILE), 2H), GUIDE_THREADS threads, after the ranking: each item's gain for the
// guided tree's model (Guide), written at its rank: weighted [2H, n] (a column c: n - c; an offset o:
// its band's width x (n - o)), width [2H, n] (offsets: the band's width; columns: 0). An offset's
// band [o - 32, o + 32) loses what the bands of its nearest better-ranked neighbours on each side
// cover (neighbours 64 or more away cover none of it). n < 2^26 keeps the products in 32 bits.
extern "C" __global__ void __launch_bounds__(GUIDE_THREADS) vs_guide_gains(const int* __restrict__ ranks, u32* __restrict__ weighted,
                                                                          u32* __restrict__ width, int n, int H) {
  __shared__ int tile[GUIDE_TILE + 2 * GUIDE_REACH];
  const int row = blockIdx.y, first = blockIdx.x * GUIDE_TILE;
  const int* rank = ranks + (size_t)row * n;
  for (int j = threadIdx.x; j < GUIDE_TILE + 2 * GUIDE_REACH; j += GUIDE_THREADS) {
    const int i = first - GUIDE_REACH + j;
    tile[j] = i >= 0 && i < n ? rank[i] : 0x7fffffff;
  }
  __syncthreads();
  const bool columns = row < H;
  for (int t = threadIdx.x; t < GUIDE_TILE && first + t < n; t += GUIDE_THREADS) {
    const int i = first + t, r = tile[GUIDE_REACH + t];
    u32 w = 0, gain = (u32)(n - i);
    if (!columns) {
      int lo = max(i - GUIDE_HALF, 0), hi = min(i + GUIDE_HALF, n);
      for (int d = 1; d < GUIDE_REACH; ++d) {
        if (tile[GUIDE_REACH + t - d] < r) {
          lo = max(lo, i - d + GUIDE_HALF);
          break;
        }
      }
      for (int d = 1; d < GUIDE_REACH; ++d) {
        if (tile[GUIDE_REACH + t + d] < r) {
          hi = min(hi, i + d - GUIDE_HALF);
          break;
        }
      }
      w = (u32)max(hi - lo, 0);
      gain *= w;
    }
    weighted[(size_t)row * n + r] = gain;
    width[(size_t)row * n + r] = w;
  }
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (3), GUIDE_SCAN_THREADS threads, after vs_guide_gains: guide [3, n + 1] (Guide's col, diag,
// width): block 0 sums weighted's column rows over the heads at each rank, block 1 its offset rows,
// block 2 width's offset rows, each an exclusive prefix over the ranks ([0] = 0, [k] = the first k).
extern "C" __global__ void __launch_bounds__(GUIDE_SCAN_THREADS) vs_guide_scan(const u32* __restrict__ weighted,
                                                                              const u32* __restrict__ width, double* __restrict__ guide,
                                                                              int n, int H) {
  __shared__ double warpSums[GUIDE_SCAN_THREADS / 32];
  const int which = blockIdx.x;
  const u32* src = (which == 2 ? width : weighted) + (size_t)(which == 0 ? 0 : H) * n;
  double* out = guide + (size_t)which * (n + 1);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) out[0] = 0.0;
  double carry = 0.0;
  for (int base = 0; base < n; base += GUIDE_SCAN_THREADS * GUIDE_SCAN_ITEMS) {
    const int firstRank = base + threadIdx.x * GUIDE_SCAN_ITEMS;
    double v[GUIDE_SCAN_ITEMS];
    double mine = 0.0;
#pragma unroll
    for (int j = 0; j < GUIDE_SCAN_ITEMS; ++j) {
      const int r = firstRank + j;
      double x = 0.0;
      if (r < n) {
        for (int h = 0; h < H; ++h) x += (double)src[(size_t)h * n + r];
      }
      mine += x;
      v[j] = mine;
    }
    double incl = mine;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += y;
    }
    if (lane == 31) warpSums[warp] = incl;
    __syncthreads();
    double before = 0.0, blockTotal = 0.0;
    for (int w = 0; w < GUIDE_SCAN_THREADS / 32; ++w) {
      if (w < warp) before += warpSums[w];
      blockTotal += warpSums[w];
    }
    __syncthreads();  // warpSums is rewritten by the next step
    const double start = carry + before + incl - mine;
#pragma unroll
    for (int j = 0; j < GUIDE_SCAN_ITEMS; ++j) {
      const int r = firstRank + j;
      if (r < n) out[r + 1] = start + v[j];
    }
    carry += blockTotal;
  }
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (2H), THREADS threads: vs_select's selection (vertical-slash-index.cu) read off vs_rank_rows'
// ranks instead of a radix select per head: row r keeps the items ranked below min(counts[r], n), in
// ascending index order (a compaction; the ranks are a permutation, so exactly that many). The index
// builder's hand-off path (VerticalSlashIndexBuilder.build with `ranked`): one launch over every row
// of the layer, the ranks the count search already sorted. counts [2H] (columns, then diagonals);
// selV [H, strideV], selS [H, strideS] with strides >= the clamped counts.
extern "C" __global__ void __launch_bounds__(THREADS) vs_select_ranked(const int* __restrict__ ranks, const int* __restrict__ counts,
                                                                       int* __restrict__ selV, int strideV, int* __restrict__ selS,
                                                                       int strideS, int n, int H) {
  __shared__ TopKShared sh;
  const int row = blockIdx.x;
  const bool columns = row < H;
  const int k = min(counts[row], n);
  int* out = columns ? selV + (size_t)row * strideV : selS + (size_t)(row - H) * strideS;
  select_ranked(ranks + (size_t)row * n, n, k, out, sh);
}
#endif

// The ranking's sort key of item i of a score row (ascending = rank order; the index breaks ties):
// forced items 0, then the scores descending (-0 = +0, NaN last), as vs_rank_rows and vs_select order them.
__device__ __forceinline__ u32 vs_rank_key(const float* scores, int i, int forced) {
  return i < forced ? 0u : ~topk_order_key(scores[i]);
}

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (ceil(n / RANK_CHUNK), 2H), CHUNK_THREADS threads. Sorts chunk c of score row r (items
// [c·RANK_CHUNK, min(n, (c + 1)·RANK_CHUNK)), rows as vs_rank_rows') by (key, index) in shared memory
// (4 stable LSD radix passes) and writes its keys and indices in that order to sortedKeys /
// sortedIdx [2H, n] at the chunk's place.
extern "C" __global__ void __launch_bounds__(CHUNK_THREADS, 1) vs_rank_chunks(
    const float* __restrict__ vertical, const float* __restrict__ slash, u32* __restrict__ sortedKeys, int* __restrict__ sortedIdx,
    int n, int H, int forcedColumns, int forcedDiagonals) {
  __shared__ RadixShared<CHUNK_THREADS> sh;
  __shared__ u32 keysShared[2][RANK_CHUNK];
  __shared__ int idxShared[2][RANK_CHUNK];
  u32 *ka = keysShared[0], *kb = keysShared[1];
  int *ia = idxShared[0], *ib = idxShared[1];
  const int row = blockIdx.y, first = blockIdx.x * RANK_CHUNK, len = min(RANK_CHUNK, n - first);
  const bool columns = row < H;
  const float* scores = columns ? vertical + (size_t)row * n : slash + (size_t)(row - H) * n;
  const int forced = columns ? forcedColumns : forcedDiagonals;
  radix_pass<CHUNK_THREADS, CHUNK_ITEMS, true>(
      [&](int i) { return vs_rank_key(scores, first + i, forced); }, [&](int i) { return first + i; }, kb, ib, len, 0, sh);
  radix_pass<CHUNK_THREADS, CHUNK_ITEMS, true>([&](int i) { return kb[i]; }, [&](int i) { return ib[i]; }, ka, ia, len, 8, sh);
  radix_pass<CHUNK_THREADS, CHUNK_ITEMS, true>([&](int i) { return ka[i]; }, [&](int i) { return ia[i]; }, kb, ib, len, 16, sh);
  radix_pass<CHUNK_THREADS, CHUNK_ITEMS, true>([&](int i) { return kb[i]; }, [&](int i) { return ib[i]; }, ka, ia, len, 24, sh);
  const size_t at = (size_t)row * n + first;
  for (int j = threadIdx.x; j < len; j += CHUNK_THREADS) {
    sortedKeys[at + j] = ka[j];
    sortedIdx[at + j] = ia[j];
  }
}
#endif

// First j in sorted[0, len) with sorted[j] > key (upper) or >= key (!upper).
__device__ __forceinline__ int vs_chunk_bound(const u32* sorted, int len, u32 key, bool upper) {
  int lo = 0, hi = len;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (upper ? sorted[mid] <= key : sorted[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (ceil(n / RANK_CHUNK), 2H), CHUNK_THREADS threads, after vs_rank_chunks. The rank of item j of
// chunk c's sorted order = j + the items of the other chunks before it: in an earlier chunk every key
// <= its key (equal keys there have lower indices), in a later one every key < its key. ranks [2H, n]
// out, as vs_rank_rows writes them.
extern "C" __global__ void __launch_bounds__(CHUNK_THREADS) vs_rank_merge(
    const u32* __restrict__ sortedKeys, const int* __restrict__ sortedIdx, int* __restrict__ ranks, int n) {
  __shared__ u32 other[RANK_CHUNK];
  const int row = blockIdx.y, c = blockIdx.x, chunks = gridDim.x;
  const int first = c * RANK_CHUNK, len = min(RANK_CHUNK, n - first);
  const u32* rowKeys = sortedKeys + (size_t)row * n;
  u32 key[CHUNK_ITEMS];
  int rank[CHUNK_ITEMS];
#pragma unroll
  for (int t = 0; t < CHUNK_ITEMS; ++t) {
    const int j = threadIdx.x + t * CHUNK_THREADS;
    key[t] = j < len ? rowKeys[first + j] : 0u;
    rank[t] = j;
  }
  for (int d = 0; d < chunks; ++d) {
    if (d == c) continue;
    const int dFirst = d * RANK_CHUNK, dLen = min(RANK_CHUNK, n - dFirst);
    __syncthreads();  // the last chunk's searches are done with `other`
    for (int j = threadIdx.x; j < dLen; j += CHUNK_THREADS) other[j] = rowKeys[dFirst + j];
    __syncthreads();
#pragma unroll
    for (int t = 0; t < CHUNK_ITEMS; ++t) rank[t] += vs_chunk_bound(other, dLen, key[t], d < c);
  }
#pragma unroll
  for (int t = 0; t < CHUNK_ITEMS; ++t) {
    const int j = threadIdx.x + t * CHUNK_THREADS;
    if (j < len) ranks[(size_t)row * n + sortedIdx[(size_t)row * n + first + j]] = rank[t];
  }
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (2H), RANK_THREADS threads. Each row's rank order once per layer, as vs_select ranks: the
// forced items first (by index), then the scores descending (-0 = +0), NaN last, ties to the lower
// index (a stable sort of these keys with the indices as payload). ranks [2H, n] out, rank[i] of item
// i; keysA / keysB / valsA [2H, n] scratch (ranks may be keysB: it is written after the last read).
extern "C" __global__ void __launch_bounds__(RANK_THREADS, 1) vs_rank_rows(
    const float* __restrict__ vertical, const float* __restrict__ slash, u32* keysA, u32* keysB, int* valsA, int* valsB,
    int* ranks, int n, int H, int forcedColumns, int forcedDiagonals) {
  __shared__ RadixShared<RANK_THREADS> sh;
  const int row = blockIdx.x;
  const bool columns = row < H;
  const float* scores = (columns ? vertical + (size_t)row * n : slash + (size_t)(row - H) * n);
  const int forced = columns ? forcedColumns : forcedDiagonals;
  const size_t at = (size_t)row * n;
  u32 *ka = keysA + at, *kb = keysB + at;
  int *va = valsA + at, *vb = valsB + at;
  radix_pass<RANK_THREADS, RANK_ITEMS, true>(
      [&](int i) { return i < forced ? 0u : ~topk_order_key(scores[i]); }, [](int i) { return i; }, kb, vb, n, 0, sh);
  radix_pass<RANK_THREADS, RANK_ITEMS, true>([&](int i) { return kb[i]; }, [&](int i) { return vb[i]; }, ka, va, n, 8, sh);
  radix_pass<RANK_THREADS, RANK_ITEMS, true>([&](int i) { return ka[i]; }, [&](int i) { return va[i]; }, kb, vb, n, 16, sh);
  radix_pass<RANK_THREADS, RANK_ITEMS, true>([&](int i) { return kb[i]; }, [&](int i) { return vb[i]; }, ka, va, n, 24, sh);
  int* rank = ranks + at;
  for (int j = threadIdx.x; j < n; j += RANK_THREADS) rank[va[j]] = j;
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_HAND_OFF)
// (Placed last: an entry inserted earlier renumbers the later entries' PTX labels.)
// vs_count_search_batched_lanes_bits_guided that hands its answer to the index builder (session 8,
// opt-in: CountSearchOptions.selectionHandOff): answerCounts [2H] = the answer's counts (columns, then
// diagonals, clamped to n, as the builder clamps them), result[6] / result[7] = the first selection
// slot whose column / offset rows still hold the answer's selection (selV / selS + slot·H·n, rows n
// apart), or -1. The builder then needs neither count memsets nor a selection launch. The same search.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_handoff(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, int* answerCounts) {
  count_search_batched<true, true, true, true, false, false, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier, result,
                                                                          n, H, numBlocks, mode, targetHi, targetLo, minBudget, forcedColumns,
                                                                          forcedDiagonals, levels, lanes, guide, nullptr, answerCounts);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_OTHER)
// The lean guided rounds (session 8, opt-in: CountSearchOptions.leanLayout): vs_count_search_batched_lanes_bits_guided_thresholds
// whose layout advances each node's state in registers and stores it once (guide_layout REGS) and whose follow
// moves the search's state in registers (guide_follow_lean). The same tree, the same probes and answers.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_lean(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide) {
  count_search_batched<true, true, true, true, false, true, false, false, true>(ranks, curves, selV, selS, runs, selected, totals, barrier,
                                                                                result, n, H, numBlocks, mode, targetHi, targetLo, minBudget,
                                                                                forcedColumns, forcedDiagonals, levels, lanes, guide);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_HAND_OFF)
// The lean guided rounds with the selection hand-off (as vs_count_search_batched_lanes_bits_guided_handoff).
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_lean_handoff(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, int* answerCounts) {
  count_search_batched<true, true, true, true, false, true, false, true, true>(ranks, curves, selV, selS, runs, selected, totals, barrier,
                                                                               result, n, H, numBlocks, mode, targetHi, targetLo, minBudget,
                                                                               forcedColumns, forcedDiagonals, levels, lanes, guide, nullptr,
                                                                               answerCounts);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_DEFAULTS)
// The lean guided rounds whose small selections come from the rank order (session 8, opt-in:
// CountSearchOptions.orderedSelect): a probe keeping k <= n / 4 items of a row sets their bits from
// order [2H, n] (vs_rank_order) and compacts ceil(n / 32) words, instead of passing over all n ranks
// (select_ordered). The same selections, probes and answers.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_lean_order(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, const int* order) {
  count_search_batched<true, true, true, true, false, true, false, false, true, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                     barrier, result, n, H, numBlocks, mode, targetHi, targetLo,
                                                                                     minBudget, forcedColumns, forcedDiagonals, levels, lanes, guide,
                                                                                     nullptr, nullptr, order);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_DEFAULTS)
// ... with the selection hand-off.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_lean_order_handoff(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, int* answerCounts, const int* order) {
  count_search_batched<true, true, true, true, false, true, false, true, true, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                    barrier, result, n, H, numBlocks, mode, targetHi, targetLo,
                                                                                    minBudget, forcedColumns, forcedDiagonals, levels, lanes, guide,
                                                                                    nullptr, answerCounts, order);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_COMPACT)
// The lean ordered rounds with the compact layout (session 10, opt-in: CountSearchOptions.compactLayout):
// the same trees, so the same probes, rounds and answers (entry group COMPACT).
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_compact_order(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, const int* order) {
  count_search_batched<true, true, true, true, false, true, false, false, true, true, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                           barrier, result, n, H, numBlocks, mode, targetHi,
                                                                                           targetLo, minBudget, forcedColumns, forcedDiagonals,
                                                                                           levels, lanes, guide, nullptr, nullptr, order);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_COMPACT)
// ... without the ordered selections (as vs_count_search_batched_lanes_bits_guided_lean).
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_compact(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide) {
  count_search_batched<true, true, true, true, false, true, false, false, true, false, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                            barrier, result, n, H, numBlocks, mode, targetHi,
                                                                                            targetLo, minBudget, forcedColumns, forcedDiagonals,
                                                                                            levels, lanes, guide);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_COMPACT)
// ... ordered, with the selection hand-off.
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_compact_order_handoff(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, int* answerCounts, const int* order) {
  count_search_batched<true, true, true, true, false, true, false, true, true, true, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                          barrier, result, n, H, numBlocks, mode, targetHi,
                                                                                          targetLo, minBudget, forcedColumns, forcedDiagonals,
                                                                                          levels, lanes, guide, nullptr, answerCounts, order);
}
#endif

#if defined(VS_SEARCH_TIMING) && VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_TIMED_LEAN)
// vs_count_search_batched_lanes_bits_guided_lean_timed with the compact layout (the round timing's
// layout field times it whole).
extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_count_search_batched_lanes_bits_guided_compact_timed(
    const int* ranks, const double* curves, int* selV, int* selS, int* runs, int* selected, unsigned long long* totals,
    u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi, int targetLo, int minBudget,
    int forcedColumns, int forcedDiagonals, int levels, int lanes, const double* guide, unsigned long long* timing) {
  count_search_batched<true, true, true, true, false, true, true, false, true, false, true>(ranks, curves, selV, selS, runs, selected, totals,
                                                                                           barrier, result, n, H, numBlocks, mode, targetHi,
                                                                                           targetLo, minBudget, forcedColumns, forcedDiagonals,
                                                                                           levels, lanes, guide, timing);
}
#endif

#if VS_SEARCH_COMPILES(VS_SEARCH_ENTRIES_RANK)
// grid (ceil(n / 256), rows), 256 threads: order [rows, n] = the inverse of each row's ranks (order[r]
// = the item of rank r), for orderedSelect.
extern "C" __global__ void __launch_bounds__(256) vs_rank_order(const int* __restrict__ ranks, int* __restrict__ order, int n) {
  const int row = blockIdx.y, i = blockIdx.x * 256 + threadIdx.x;
  if (i < n) order[(size_t)row * n + ranks[(size_t)row * n + i]] = i;
}
#endif
