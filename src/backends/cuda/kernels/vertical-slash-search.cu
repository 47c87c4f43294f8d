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
// the ranks below its count. A probe = the selection of every row whose count changed, a barrier,
// the exact pairs of every (head, 64-row block) (vertical-slash-walk.cuh, the head's lists staged in
// shared memory) summed into one 64-bit total, a barrier; a probe whose counts equal the last one's
// reuses its total (the same counts give the same pairs). Totals are integers below 2^53, so the float64 comparisons with the target are the host's, bit for bit.
#include "common.cuh"
#include "top-k.cuh"
#include "vertical-slash-walk.cuh"
#include "flexprefill-sizes.cuh"
#include "radix-sort.cuh"

namespace {
constexpr int THREADS = 512;
constexpr int RANK_THREADS = 1024;
constexpr int RANK_ITEMS = 4;    // keys and indices per thread in one sort tile
constexpr int SELECT_ITEMS = 8;  // consecutive ranks per thread in one compaction step
constexpr int STAGE_INTS = 8192; // a head's kept columns and diagonals, staged for the walk when they fit

__device__ __forceinline__ u32 load_acquire(const u32* p) {
  u32 v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Grid-wide barrier over a counter that only grows: barrier g is passed once it reaches g·gridDim.x.
// The fences around it make each block's writes before it visible to every block after it.
__device__ __forceinline__ void grid_barrier(u32* counter, u32& generation) {
  __syncthreads();
  ++generation;
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    const u32 goal = generation * gridDim.x;
    while (load_acquire(counter) < goal) __nanosleep(32);
    __threadfence();
  }
  __syncthreads();
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
      // The top k are the items of rank < k (vs_select's set), listed in ascending index order.
      const bool columns = row < H;
      const int* rank = s.ranks + (size_t)row * n;
      int* out = (columns ? s.selV : s.selS) + (size_t)(columns ? row : row - H) * n;
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
    // Work units of THREADS consecutive 64-row blocks of one head, the head's lists staged in shared
    // memory when they fit (the walk's loads are a dependent chain).
    const int chunks = (s.numBlocks + THREADS - 1) / THREADS;
    for (int u = blockIdx.x; u < H * chunks; u += gridDim.x) {
      const int h = u / chunks, m = (u - h * chunks) * THREADS + threadIdx.x;
      const int kv = s.counts[h], ks = s.counts[H + h];
      const int* V = s.selV + (size_t)h * n;
      const int* S = s.selS + (size_t)h * n;
      const bool staged = kv + ks <= STAGE_INTS;
      if (staged) {
        for (int j = threadIdx.x; j < kv; j += THREADS) s.stage[j] = V[j];
        for (int j = threadIdx.x; j < ks; j += THREADS) s.stage[kv + j] = S[j];
        V = s.stage;
        S = s.stage + kv;
      }
      __syncthreads();
      if (m < s.numBlocks) mine += vs_block_pairs(V, kv, S, ks, m, n);
      __syncthreads();  // before the next unit overwrites the stage
    }
    unsigned long long v = (unsigned long long)mine;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(total, v);
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
}  // namespace

// Cooperative grid (at most the resident blocks), THREADS threads. ranks [2H, n] from vs_rank_rows;
// curves [2H, n] (mode 1, else unused); selV / selS [H, n] scratch; counts [2H] = -1, selected [2H]
// = -1, totals [3] = 0, changed [3] = 0, barrier = 0 on entry. target = (1 - s)·H·causal
// pairs as double halves. result (float64): [0] the column count (mode 0) or alpha (mode 1), [1] the
// diagonal count (mode 0), [2] 0, or 1 when the floor meets the target, 2 when it exceeds it, [3]
// probes run, [4] the floor's pairs.
extern "C" __global__ void __launch_bounds__(THREADS) vs_count_search(
    const int* ranks, const double* curves, int* selV, int* selS, int* counts, int* selected,
    unsigned long long* totals, u32* changed, u32* barrier, double* result, int n, int H, int numBlocks, int mode, int targetHi,
    int targetLo, int minBudget, int forcedColumns, int forcedDiagonals) {
  __shared__ TopKShared sh;
  __shared__ int rowCount;
  __shared__ int stage[STAGE_INTS];
  Search s{ranks, curves, selV, selS, counts, selected, totals, changed, barrier, stage, n, H, numBlocks, 0u, 0, 0.0};
  const double target = __hiloint2double(targetHi, targetLo);
  const int minV = min(forcedColumns, n), minS = min(forcedDiagonals, n);
  double first = 0.0, second = 0.0, floor = 0.0;
  int status = 0;
  // Vertical-Slash: the probe's counts and the bisection bounds (lo, hi; columns: up to colHi at colKs).
  int kv = minV, ks = minS, lo = 0, hi = 0, colHi = 0;
  double below = 0.0;
  // FlexPrefill: the probe's alpha and thresholdNearestTarget's state.
  double alpha = 0.0, aLo = 0.0, aHi = 1.0, loPairs = 0.0, hiPairs = 0.0;
  int halvings = 0;
  int state = mode == 0 ? VS_FLOOR : FP_FLOOR;

  // chooseVerticalSlashCounts' closestColumns(vLo, vHi, ks) from its first probe on.
  auto startColumns = [&](int vLo, int vHi, int cks) {
    lo = vLo;
    hi = vHi;
    colHi = vHi;
    ks = cks;
    if (lo < hi) {
      kv = (lo + hi + 1) >> 1;
      state = VS_COLUMNS;
    } else if (lo < colHi) {
      kv = lo;
      state = VS_COLUMNS_LO;
    } else {
      first = lo;
      second = ks;
      state = DONE;
    }
  };
  auto nextHalving = [&]() {
    if (halvings < 30 && hiPairs > target) {
      alpha = __dmul_rn(__dadd_rn(aLo, aHi), 0.5);
      ++halvings;
      state = FP_HALVING;
    } else {
      first = __dsub_rn(hiPairs, target) < __dsub_rn(target, loPairs) ? aHi : aLo;
      state = DONE;
    }
  };

  while (state != DONE) {
    const double p = probe(s, [&](int row) {
      if (mode == 0) return row < H ? kv : ks;
      return fp_size(curves + (size_t)row * n, n, alpha, minBudget, row < H ? forcedColumns : forcedDiagonals);
    }, sh, rowCount);
    switch (state) {
      case VS_FLOOR:
        floor = p;
        if (p >= target) {
          first = minV;
          second = minS;
          status = p > target ? 2 : 1;
          state = DONE;
        } else {
          kv = ks = minS;
          state = VS_SMALLEST;
        }
        break;
      case VS_SMALLEST:
        if (p > target) {
          startColumns(minV, minS, minS);
          break;
        }
        lo = minS;
        hi = n;
        // fall through: continue the common bisection (lo < hi unless minS = n)
        if (lo < hi) {
          kv = ks = (lo + hi + 1) >> 1;
          state = VS_COMMON;
        } else {
          first = second = n;
          state = DONE;
        }
        break;
      case VS_COMMON:
        if (p <= target) lo = kv;
        else hi = kv - 1;
        if (lo < hi) {
          kv = ks = (lo + hi + 1) >> 1;
        } else if (lo >= n) {
          first = second = n;
          state = DONE;
        } else {
          startColumns(lo, n, lo);
        }
        break;
      case VS_COLUMNS:
        if (p <= target) lo = kv;
        else hi = kv - 1;
        if (lo < hi) {
          kv = (lo + hi + 1) >> 1;
        } else if (lo < colHi) {
          kv = lo;
          state = VS_COLUMNS_LO;
        } else {
          first = lo;
          second = ks;
          state = DONE;
        }
        break;
      case VS_COLUMNS_LO:
        below = __dsub_rn(target, p);
        kv = lo + 1;
        state = VS_COLUMNS_NEXT;
        break;
      case VS_COLUMNS_NEXT:
        first = __dsub_rn(p, target) < below ? lo + 1 : lo;
        second = ks;
        state = DONE;
        break;
      case FP_FLOOR:
        floor = loPairs = p;
        if (p >= target) {
          status = p > target ? 2 : 1;
          state = DONE;
        } else {
          alpha = 1.0;
          state = FP_TOP;
        }
        break;
      case FP_TOP:
        hiPairs = p;
        nextHalving();
        break;
      case FP_HALVING:
        if (p <= target) {
          aLo = alpha;
          loPairs = p;
        } else {
          aHi = alpha;
          hiPairs = p;
        }
        nextHalving();
        break;
    }
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    result[0] = first;
    result[1] = second;
    result[2] = status;
    result[3] = s.probes;
    result[4] = floor;
  }
}

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
