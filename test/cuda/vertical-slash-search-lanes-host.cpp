// Host harness for the count search's walk shared by several lanes (vertical-slash-search.cu
// vs_block_pairs_lane, vs_certain_restart and vs_columns_below, cut from the .cu by
// test/cuda/vertical-slash-search-lanes-host.test.ts and pasted in through LANE_FUNCTIONS_FILE),
// built with g++ around the walk header as it is (vertical-slash-walk.cuh). For every generated row
// (kept offsets S and columns V), every 64-row block and every lane count: the sum of the lanes'
// pairs equals vs_block_pairs (the walk by ranges, one thread), with the columns counted by gallops
// over V and from V's bitmap with per-word counts (built here as the kernel's staging defines them:
// bit v of word v / 32, before[w] = set bits in words < w, before[words] = kv) and from its two-level
// form (vs_columns_below_coarse: before4[g] = set bits in words < 4g, before4[groups] = kv). Prints one line:
//   "rows R blocks B checks C pairDiffs D splitBlocks S"
// (splitBlocks: blocks whose walk more than one lane shared, so the split was exercised), then the
// first differences.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <vector>

using std::max;
using std::min;
#define __device__
#define __forceinline__ inline
#define __noinline__
typedef unsigned u32;
inline int __popc(u32 x) { return __builtin_popcount(x); }

#include "vertical-slash-walk.cuh"

namespace {
#include LANE_FUNCTIONS_FILE

struct Row {
  int n;
  std::vector<int> S;  // kept offsets, ascending, distinct, in [0, n), 0 included
  std::vector<int> V;  // kept columns, ascending, distinct
};

// Offset rows whose gaps straddle the split rule's 128 (and the runs' 64), near block edges too, so
// that pieces start just below, at and above the clamp to e = 64: sparse random rows (Vertical-Slash
// at high sparsity: a range per kept offset), clustered rows, gaps of exactly 127 / 128 / 129, the
// largest offsets, every offset, rows shorter than a block.
std::vector<Row> makeRows(unsigned seed) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Row> rows;
  const int sizes[] = {16384, 4096, 1000, 20011, 130, 50};
  for (int n : sizes) {
    for (int kind = 0; kind < 8; ++kind) {
      for (int extra : {0, 20, 90, 700, 4000}) {
        std::set<int> s;
        const int forced = kind == 7 ? 1 : min(64, n);  // kind 7: offset 0 alone forced
        for (int o = 0; o < forced; ++o) s.insert(o);
        int at = uniform(0, n - 1);
        for (int j = 0; j < 4 * extra && (int)s.size() < min(n, forced + extra); ++j) {
          int o;
          switch (kind) {
            case 0: o = uniform(0, n - 1); break;                                      // random
            case 1: o = at = (at + uniform(1, 200)) % n; break;                         // clusters, gaps 1..200
            case 2: o = at = (at + (uniform(0, 1) ? 1 : 127 + uniform(0, 2))) % n; break;  // pairs, gaps 127 / 128 / 129
            case 3: o = n - 1 - uniform(0, min(n - 1, 1500)); break;                    // the largest offsets
            case 4: o = (uniform(0, n - 1) / 64) * 64 + (uniform(0, 1) ? 0 : 63); break; // block edges
            case 5: o = at = (at + (uniform(0, 1) ? 64 : 65)) % n; break;               // gaps 64 / 65
            case 6: o = 64 * uniform(0, (n - 1) / 64) + uniform(0, 2) * 64 - uniform(0, 1); break;
            default: o = uniform(0, n - 1); break;
          }
          s.insert(std::clamp(o, 0, n - 1));
        }
        if (kind == 6 && extra == 4000) {
          for (int o = 0; o < n; ++o) s.insert(o);  // every offset
        }
        Row r;
        r.n = n;
        r.S.assign(s.begin(), s.end());
        std::set<int> v;
        for (int j = 0; j < min(4, n); ++j) v.insert(j);
        const int vExtra = uniform(0, 2) == 0 ? uniform(0, 100) : min(n, uniform(0, 3000));
        for (int j = 0; j < vExtra; ++j) v.insert(uniform(0, n - 1));
        r.V.assign(v.begin(), v.end());
        rows.push_back(std::move(r));
      }
    }
  }
  return rows;
}

struct ColumnBitmap {
  std::vector<u32> bits;
  std::vector<int> before;
  std::vector<int> before4;  // the two-level form's counts: set bits before word 4g, [groups] = kv
};

ColumnBitmap columnBitmap(const std::vector<int>& V, int n) {
  const int words = (n + 31) / 32;
  ColumnBitmap b{std::vector<u32>(words, 0u), std::vector<int>(words + 1, 0)};
  for (int v : V) b.bits[v >> 5] |= 1u << (v & 31);
  for (int w = 0; w < words; ++w) b.before[w + 1] = b.before[w] + __builtin_popcount(b.bits[w]);
  const int groups = (words + 3) / 4;
  b.before4.assign(groups + 1, 0);
  for (int g = 0; g <= groups; ++g) b.before4[g] = b.before[min(4 * g, words)];
  return b;
}

std::vector<int> runStarts(const std::vector<int>& S) {
  std::vector<int> run(S.size());
  for (size_t t = 0; t < S.size(); ++t) run[t] = (t == 0 || S[t] - S[t - 1] > VS_BLOCK) ? (int)t : run[t - 1];
  return run;
}
}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? (unsigned)std::atoi(argv[1]) : 1u;
  const std::vector<Row> rows = makeRows(seed);
  const int laneCounts[] = {1, 2, 3, 4, 8, 16, 32};
  long long blocks = 0, checks = 0, pairDiffs = 0, splitBlocks = 0;
  int shown = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const std::vector<int> run = runStarts(r.S);
    const ColumnBitmap cb = columnBitmap(r.V, r.n);
    const int ks = (int)r.S.size(), kv = (int)r.V.size();
    const int numBlocks = (r.n + VS_BLOCK - 1) / VS_BLOCK;
    for (int m = 0; m < numBlocks; ++m) {
      ++blocks;
      const long long want = vs_block_pairs(r.V.data(), kv, r.S.data(), ks, m, r.n);
      bool split = false;
      for (int lanes : laneCounts) {
        checks += 3;
        long long got = 0, gotBits = 0, gotCoarse = 0;
        int working = 0;
        for (int lane = 0; lane < lanes; ++lane) {
          const long long p = vs_block_pairs_lane<false>(r.V.data(), kv, nullptr, nullptr, r.S.data(), run.data(), ks, m, r.n, lane, lanes);
          got += p;
          working += p != 0 ? 1 : 0;
          gotBits += vs_block_pairs_lane<true>(r.V.data(), kv, cb.bits.data(), cb.before.data(), r.S.data(), run.data(), ks, m, r.n, lane, lanes);
          gotCoarse += vs_block_pairs_lane<2>(r.V.data(), kv, cb.bits.data(), cb.before4.data(), r.S.data(), run.data(), ks, m, r.n, lane, lanes);
        }
        split = split || working > 1;
        if (got != want || gotBits != want || gotCoarse != want) {
          pairDiffs += (got != want) + (gotBits != want) + (gotCoarse != want);
          if (shown++ < 10) {
            std::printf("row %zu (n %d, ks %d, kv %d) block %d lanes %d: pairs %lld (bitmap %lld, two-level %lld), by ranges %lld\n", i, r.n, ks, kv, m, lanes, got,
                        gotBits, gotCoarse, want);
          }
        }
      }
      splitBlocks += split ? 1 : 0;
    }
  }
  std::printf("rows %zu blocks %lld checks %lld pairDiffs %lld splitBlocks %lld\n", rows.size(), blocks, checks, pairDiffs, splitBlocks);
  return 0;
}
