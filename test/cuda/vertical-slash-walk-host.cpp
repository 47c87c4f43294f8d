// Host harness for the batched count search's walk by runs (vertical-slash-walk.cuh vs_walk_runs)
// and its run marks (vertical-slash-search.cu vs_mark_runs over top-k.cuh's block_exclusive_scan with BlockScanMax), built by
// test/cuda/vertical-slash-walk-host.test.ts with g++. The walk header is included as it is; the two
// mark functions are pasted in by the test from the .cu (MARK_FUNCTIONS_FILE), and run on an emulated
// block: THREADS std::threads, __syncthreads a block-wide barrier, __shfl_up_sync a per-warp exchange
// through barriers, so their chunking (THREADS x SELECT_ITEMS offsets a step, the carry between
// steps) is the kernel's. Checks, over generated offset rows:
//   marks:  the kernel's run starts == the definition (t = 0 or S[t] - S[t-1] > 64 starts a run);
//   walks:  for every 64-row block, vs_walk_runs' ranges == vs_walk_ranges' ranges, and
//           vs_block_pairs_by_runs == vs_block_pairs (with a kept-column list).
// Prints one line: "rows R blocks B markDiffs X rangeDiffs Y pairDiffs Z" (then the first differences).
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

using std::max;
using std::min;
#define __device__
#define __forceinline__ inline
typedef unsigned u32;

namespace {
constexpr int THREADS = 512;
constexpr int SELECT_ITEMS = 8;

struct ThreadIndex {
  int x;
};
thread_local ThreadIndex threadIdx;
std::barrier<>* blockBarrier;
std::vector<std::barrier<>*> warpBarriers;
int shuffleSlot[THREADS];

void __syncthreads() { blockBarrier->arrive_and_wait(); }

// CUDA's __shfl_up_sync for a full warp: lane l gets lane l - off's value, lanes below off keep theirs.
int __shfl_up_sync(unsigned, int v, int off) {
  const int t = threadIdx.x, lane = t & 31;
  std::barrier<>* warp = warpBarriers[t >> 5];
  shuffleSlot[t] = v;
  warp->arrive_and_wait();
  const int got = lane >= off ? shuffleSlot[t - off] : v;
  warp->arrive_and_wait();  // before the next exchange overwrites the slots
  return got;
}

struct TopKShared {
  int warpSums[32];
};
}  // namespace

#include "vertical-slash-walk.cuh"

namespace {
#include MARK_FUNCTIONS_FILE

struct Row {
  int n;
  std::vector<int> S;  // kept offsets, ascending, distinct, in [0, n)
  std::vector<int> V;  // kept columns, ascending, distinct, in [0, n)
};

// FlexPrefill-like rows (the forced diagonals 0..63 plus up to `extra` chosen ones, drawn by one of
// several placements) and edge cases (every offset kept, rows shorter than a block).
std::vector<Row> makeRows(unsigned seed) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto cube = [&](int n) { const double u = uniform(0, 1 << 20) / double(1 << 20); return min(n - 1, (int)(n * u * u * u)); };
  std::vector<Row> rows;
  const int sizes[] = {16384, 16384, 16384, 4096, 1000, 20011, 130};
  for (int n : sizes) {
    for (int kind = 0; kind < 9; ++kind) {
      for (int extra : {0, 448, 960, 5000}) {
        std::set<int> s;
        for (int o = 0; o < min(64, n); ++o) s.insert(o);  // forced diagonals
        int clusterAt = uniform(0, n - 1), gapAt = uniform(0, 200);
        for (int j = 0; j < 4 * extra && (int)s.size() < min(n, 64 + extra); ++j) {
          int o;
          switch (kind) {
            case 0: o = uniform(0, n - 1); break;                                       // random
            case 1: o = clusterAt = (clusterAt + uniform(1, 80)) % n; break;             // clusters, gaps 1..80
            case 2: o = n - 1 - uniform(0, min(n - 1, 1024)); break;                     // the largest offsets
            case 3: o = (uniform(0, n - 1) / 64) * 64 + (uniform(0, 1) ? 0 : 63); break; // block edges
            case 4: o = gapAt = (gapAt + (uniform(0, 1) ? 64 : 65)) % n; break;          // gaps of exactly 64 / 65
            case 5: o = cube(n); break;                                                  // dense near 0
            case 6: o = n - 1 - cube(n); break;                                          // dense near n
            case 7: o = 64 * uniform(0, (n - 1) / 64) + 63 - uniform(0, 2); break;       // just below block starts
            default: o = uniform(0, n - 1); break;
          }
          s.insert(std::clamp(o, 0, n - 1));
        }
        if (kind == 8 && extra == 5000) {  // every offset kept
          for (int o = 0; o < n; ++o) s.insert(o);
        }
        Row r;
        r.n = n;
        r.S.assign(s.begin(), s.end());
        std::set<int> v;
        for (int j = 0; j < min(4, n); ++j) v.insert(j);
        const int vExtra = min(n, 508 + uniform(0, 600));
        for (int j = 0; j < vExtra; ++j) v.insert(uniform(0, n - 1));
        r.V.assign(v.begin(), v.end());
        rows.push_back(std::move(r));
      }
    }
  }
  return rows;
}

// The definition vs_walk_runs assumes.
std::vector<int> referenceRunStarts(const std::vector<int>& S) {
  std::vector<int> run(S.size());
  for (size_t t = 0; t < S.size(); ++t) run[t] = (t == 0 || S[t] - S[t - 1] > VS_BLOCK) ? (int)t : run[t - 1];
  return run;
}

// The kernel's marks: every emulated thread runs vs_mark_runs over every row in turn.
std::vector<std::vector<int>> kernelRunStarts(const std::vector<Row>& rows) {
  std::vector<std::vector<int>> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i].assign(rows[i].S.size(), -7);
  static TopKShared sh;
  std::barrier<> block(THREADS);
  blockBarrier = &block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  warpBarriers.clear();
  for (int w = 0; w < THREADS / 32; ++w) {
    warps.push_back(std::make_unique<std::barrier<>>(32));
    warpBarriers.push_back(warps.back().get());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      threadIdx.x = t;
      for (size_t i = 0; i < rows.size(); ++i) vs_mark_runs(rows[i].S.data(), (int)rows[i].S.size(), out[i].data(), sh);
    });
  }
  for (auto& th : threads) th.join();
  return out;
}

typedef std::vector<std::pair<int, int>> Ranges;

struct Collect {
  Ranges* to;
  void operator()(int a, int b) const { to->push_back({a, b}); }
};
}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? (unsigned)std::atoi(argv[1]) : 1u;
  const std::vector<Row> rows = makeRows(seed);
  const std::vector<std::vector<int>> marks = kernelRunStarts(rows);
  long long blocks = 0, markDiffs = 0, rangeDiffs = 0, pairDiffs = 0;
  int shown = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const std::vector<int> want = referenceRunStarts(r.S);
    for (size_t t = 0; t < want.size(); ++t) {
      if (marks[i][t] != want[t]) {
        ++markDiffs;
        if (shown++ < 10) std::printf("row %zu (n %d, k %zu): runStart[%zu] = %d, want %d\n", i, r.n, r.S.size(), t, marks[i][t], want[t]);
      }
    }
    const int ks = (int)r.S.size(), kv = (int)r.V.size();
    const int numBlocks = (r.n + VS_BLOCK - 1) / VS_BLOCK;
    for (int m = 0; m < numBlocks; ++m) {
      ++blocks;
      const int end = (m + 1) * VS_BLOCK;
      Ranges byRanges, byRuns;
      vs_walk_ranges(r.S.data(), ks, end, Collect{&byRanges});
      vs_walk_runs(r.S.data(), marks[i].data(), ks, end, Collect{&byRuns});
      if (byRanges != byRuns) {
        ++rangeDiffs;
        if (shown++ < 10) std::printf("row %zu (n %d, k %d) block %d: %zu ranges by ranges, %zu by runs\n", i, r.n, ks, m, byRanges.size(), byRuns.size());
      }
      const long long p0 = vs_block_pairs(r.V.data(), kv, r.S.data(), ks, m, r.n);
      const long long p1 = vs_block_pairs_by_runs(r.V.data(), kv, r.S.data(), marks[i].data(), ks, m, r.n);
      if (p0 != p1) {
        ++pairDiffs;
        if (shown++ < 10) std::printf("row %zu (n %d, k %d) block %d: pairs %lld by ranges, %lld by runs\n", i, r.n, ks, m, p0, p1);
      }
    }
  }
  std::printf("rows %zu blocks %lld markDiffs %lld rangeDiffs %lld pairDiffs %lld\n", rows.size(), blocks, markDiffs, rangeDiffs, pairDiffs);
  return 0;
}
