// Host harness for the count search's guided tree (vertical-slash-search.cu, from "Where a search
// stands" to the end of the guided tree: the search's state machine, guide_layout and guide_follow,
// cut by test/cuda/vertical-slash-search-guided-host.test.ts and pasted in through
// GUIDED_REGION_FILE), built with g++. Each generated search (Vertical-Slash's counts over a pair
// function of (kv, ks), monotone or not; FlexPrefill's alpha over a pair function of alpha) runs
// one probe at a time (search_advance, as vs_count_search) and round by round on the guided tree
// with P = 1, 3, 7, 15 and 31 slots, its model from an exact, a noisy and a wrong guide; every run
// must end in the same result (counts or alpha, floor verdict and pairs, probes). Prints one line:
//   "searches S runs R mismatches M probes P rounds15 exact E noisy N wrong W"
// (rounds15: the rounds the Vertical-Slash searches took at P = 15 with each guide; probes: their
// probes, so probes / 4 is about what the heap tree's 15 slots take), then the first mismatches.
// With a second argument "thresholds" the rounds take the guideThresholds path (line thresholds
// found by the emulated warps, the layout comparing counts with them), and one more line counts
// the laid-out nodes whose prediction differs from guide_predict's:
//   "thresholds common C disagree D column C2 disagree D2 searched S wrong W" (S: column-line
// thresholds, at n <= 1000, compared with a scan of every count; W of them differed)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using std::max;
using std::min;
#define __device__
#define __forceinline__ inline
#define __noinline__
typedef unsigned u32;
inline double __hiloint2double(int hi, int lo) {
  const uint64_t bits = ((uint64_t)(u32)hi << 32) | (u32)lo;
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
inline long long __double_as_longlong(double d) {
  long long x;
  std::memcpy(&x, &d, 8);
  return x;
}
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }

#include "flexprefill-sizes.cuh"

namespace {
#include GUIDED_CONSTANTS_FILE
#include GUIDED_REGION_FILE

// A layer's exact pairs as a function of the counts: columns and diagonals with decaying gains (the
// first, forced ones heavy), columns counting less as the diagonals cover more, plus (when
// `bumpy`) a deterministic wobble that can make it non-monotone. Integers, as exact pairs are.
struct PairModel {
  int n, H;
  bool bumpy;
  std::vector<double> diag, col, cover;  // [n + 1] cumulative: diagonal pairs, column pairs, covered share
  double operator()(int kv, int ks) const {
    kv = min(max(kv, 0), n);
    ks = min(max(ks, 0), n);
    double p = diag[ks] + col[kv] * (1.0 - cover[ks]);
    if (bumpy) p += (double)(((unsigned)(kv * 2654435761u) ^ (unsigned)(ks * 40503u)) % 97u) * (double)H * 3.0;
    return std::floor(p);
  }
};

PairModel makeModel(std::mt19937& rng, int n, int H, bool bumpy) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  PairModel m{n, H, bumpy, std::vector<double>(n + 1, 0.0), std::vector<double>(n + 1, 0.0), std::vector<double>(n + 1, 0.0)};
  const double decay = 0.5 + 4.0 * u(rng);
  double covered = 0.0;
  for (int k = 0; k < n; ++k) {
    const double weight = (k < 64 ? 3.0 : 1.0) * std::exp(-decay * k / n) * (0.5 + u(rng));
    const double band = k < 64 ? 1.0 : 20.0 + 60.0 * u(rng);
    m.diag[k + 1] = m.diag[k] + H * weight * band * (n - std::min(k, n - 1)) * 0.5;
    m.col[k + 1] = m.col[k] + H * (n - std::floor(u(rng) * n)) * (k < 4 ? 2.0 : 1.0);
    covered = std::min(0.95, covered + band / n);
    m.cover[k + 1] = covered;
  }
  return m;
}

// The guide's three [n + 1] arrays (col, diag, width) for a model: `quality` 0 exact (the model
// itself: width chosen so that guide_pairs reproduces col x (1 - cover)), 1 each gain off by up to
// 30 %, 2 wrong (reversed gains: the biggest counts predicted cheapest).
std::vector<double> makeGuide(std::mt19937& rng, const PairModel& m, int quality) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int n = m.n;
  std::vector<double> g(3 * (size_t)(n + 1), 0.0);
  double* col = g.data();
  double* diag = col + (n + 1);
  double* width = diag + (n + 1);
  for (int k = 0; k < n; ++k) {
    const int j = quality == 2 ? n - 1 - k : k;
    const double off = quality == 1 ? 0.7 + 0.6 * u(rng) : 1.0;
    col[k + 1] = col[k] + (m.col[j + 1] - m.col[j]) * off;
    diag[k + 1] = diag[k] + (m.diag[j + 1] - m.diag[j]) * off;
    width[k + 1] = m.cover[quality == 2 ? n - k : k + 1] * (double)m.H * n;
  }
  return g;
}

struct Outcome {
  double first, second, status, probes, floor;
  bool operator==(const Outcome& o) const {
    return __double_as_longlong(first) == __double_as_longlong(o.first) && second == o.second && status == o.status &&
           probes == o.probes && floor == o.floor;
  }
};

Outcome outcomeOf(const SearchState& s) {
  double r[5];
  write_result(r, s);
  return Outcome{r[0], r[1], r[2], r[3], r[4]};
}

template <class Pairs>
Outcome oneProbeAtATime(const SearchGoal& goal, Pairs pairs) {
  SearchState st = search_start(goal);
  while (st.state != DONE) search_advance(st, goal, pairs(st));
  return outcomeOf(st);
}

// With thresholds (argv[2] = "thresholds"): how many laid-out nodes' predictions were checked
// against guide_predict's, and how many disagreed, on the common line and on the column line.
struct ThresholdCheck {
  long common = 0, commonDisagree = 0, column = 0, columnDisagree = 0;
  long searched = 0, searchWrong = 0;  // column-line thresholds against a scan of every count (n <= 1000)
  long leanRounds = 0, leanLayoutDiffs = 0, leanFollowDiffs = 0;  // "lean": rounds compared, trees / follows that differed
  long compactRounds = 0, compactDiffs = 0, compactFallbacks = 0;  // "compact": Vertical-Slash rounds compared, trees that differed,
                                                                   // nodes predicted through the fallback
};

// Whether the compact layout's tree equals the lean one's: node count, live flags, the six LayoutNode fields
// of live nodes (the rest of a compact slot is not written), child links and predictions.
bool sameCompactTree(int count, const SearchState* a, const int* liveA, const int* lowA, const int* highA, const int* predA, int countB,
                     const SearchState* b, const int* liveB, const int* lowB, const int* highB, const int* predB, int P) {
  if (count != countB) return false;
  for (int c = 0; c < P; ++c) {
    if (liveA[c] != liveB[c]) return false;
    if (!liveA[c]) continue;
    const SearchState& x = a[c];
    const SearchState& y = b[c];
    if (x.state != y.state || x.kv != y.kv || x.ks != y.ks || x.lo != y.lo || x.hi != y.hi || x.colHi != y.colHi) return false;
    if (lowA[c] != lowB[c] || highA[c] != highB[c] || predA[c] != predB[c]) return false;
  }
  return true;
}

// Whether two laid-out trees are the same: node count, live nodes' states (the fields a probe and its
// advance read), child links and predictions.
bool sameTree(int count, const SearchState* a, const int* liveA, const int* lowA, const int* highA, const int* predA,
              int countB, const SearchState* b, const int* liveB, const int* lowB, const int* highB, const int* predB, int P) {
  if (count != countB) return false;
  for (int c = 0; c < P; ++c) {
    if (liveA[c] != liveB[c]) return false;
    if (!liveA[c]) continue;
    const SearchState& x = a[c];
    const SearchState& y = b[c];
    if (x.state != y.state || x.kv != y.kv || x.ks != y.ks || x.lo != y.lo || x.hi != y.hi || x.colHi != y.colHi || x.probes != y.probes ||
        x.status != y.status || x.below != y.below || x.first != y.first || x.second != y.second || x.floor != y.floor) return false;
    if (lowA[c] != lowB[c] || highA[c] != highB[c] || predA[c] != predB[c]) return false;
  }
  return true;
}

bool samePoint(const GuidePoint& a, const GuidePoint& b) { return a.f == b.f && a.e == b.e && a.k == b.k && a.valid == b.valid; }
bool sameLines(const GuideLines& a, const GuideLines& b) {
  return samePoint(a.cLo, b.cLo) && samePoint(a.cHi, b.cHi) && samePoint(a.vLo, b.vLo) && samePoint(a.vHi, b.vHi) && a.vLine == b.vLine;
}

bool sameState(const SearchState& x, const SearchState& y) {
  return x.state == y.state && x.kv == y.kv && x.ks == y.ks && x.lo == y.lo && x.hi == y.hi && x.colHi == y.colHi && x.probes == y.probes &&
         x.status == y.status && x.below == y.below && x.first == y.first && x.second == y.second && x.floor == y.floor;
}

// The kernel's guided rounds on one thread: lay out, answer every laid-out node, follow. With
// `thresholds` the kernel's vs_count_search_batched_lanes_bits_guided_thresholds path: the four
// threshold searches (each emulating its warp), the layout from them, the model pairs after it.
template <class Pairs>
Outcome guidedRounds(const SearchGoal& goal, const double* guide, int P, Pairs pairs, int& rounds, bool thresholds = false,
                     ThresholdCheck* check = nullptr, bool lean = false, bool compact = false) {
  GuidedRound r;
  r.thresholds = GuideThresholds{0, 0, 0, 0};
  SearchState st = search_start(goal), tree[MAX_BATCH];
  int live[MAX_BATCH];
  double total[MAX_BATCH];
  r.lines = guide_lines_start();
  r.goal = goal;
  r.guide = guide;
  r.st = &st;
  r.tree = tree;
  r.live = live;
  r.total = total;
  r.P = P;
  rounds = 0;
  while (st.state != DONE) {
    ++rounds;
    int count;
    if (thresholds) {
      for (int which = 0; which < 4; ++which) guide_thresholds_warp(st, r.lines, goal, guide, which, 0, r.thresholds);
      count = guide_layout<true>(&r);
      if (lean && check) {
        // The lean layout (REGS) from the same start must lay out the same tree.
        SearchState plainTree[MAX_BATCH];
        int plainLive[MAX_BATCH], plainLow[MAX_BATCH], plainHigh[MAX_BATCH], plainPred[MAX_BATCH];
        std::memcpy(plainTree, tree, sizeof tree);
        std::memcpy(plainLive, live, sizeof live);
        std::memcpy(plainLow, r.lowChild, sizeof plainLow);
        std::memcpy(plainHigh, r.highChild, sizeof plainHigh);
        std::memcpy(plainPred, r.predicted, sizeof plainPred);
        for (int c = 0; c < P; ++c) { r.lowChild[c] = r.highChild[c] = -7; r.predicted[c] = 7; live[c] = 7; }
        NoLaps none;
        const int leanCount = guide_layout<true, NoLaps, true>(&r, none);
        ++check->leanRounds;
        if (!sameTree(count, plainTree, plainLive, plainLow, plainHigh, plainPred, leanCount, tree, live, r.lowChild, r.highChild, r.predicted, P)) {
          ++check->leanLayoutDiffs;
        }
        if (compact && goal.mode == 0) {
          // The compact layout (Vertical-Slash only) from the same start, into poisoned slots, must lay out the lean tree.
          for (int c = 0; c < P; ++c) {
            r.lowChild[c] = r.highChild[c] = -7;
            r.predicted[c] = 7;
            live[c] = 7;
            tree[c].state = tree[c].kv = tree[c].ks = tree[c].lo = tree[c].hi = tree[c].colHi = -99;
          }
          const GuideLines before = r.lines;
          const int compactCount = compact_layout(&r, tree, live, none);
          ++check->compactRounds;
          if (!sameCompactTree(leanCount, plainTree, plainLive, plainLow, plainHigh, plainPred, compactCount, tree, live, r.lowChild,
                               r.highChild, r.predicted, P) || !sameLines(before, r.lines)) {
            ++check->compactDiffs;
          }
          for (int c = 0; c < compactCount; ++c) {
            const SearchState& t = plainTree[c];
            const bool onCommon = t.kv == t.ks && !guide_in_columns(t.state), onColumn = t.ks == r.lines.vLine;
            check->compactFallbacks += t.state == VS_FLOOR || (t.state != VS_COLUMNS_LO && !onCommon && !onColumn);
          }
        }
        // The round goes on with the plain layout's tree (a wrong lean tree is counted, not followed).
        std::memcpy(tree, plainTree, sizeof tree);
        std::memcpy(live, plainLive, sizeof live);
        std::memcpy(r.lowChild, plainLow, sizeof plainLow);
        std::memcpy(r.highChild, plainHigh, sizeof plainHigh);
        std::memcpy(r.predicted, plainPred, sizeof plainPred);
      }
      guide_models(&r, 0, 1);
      if (check && goal.mode == 0) {
        const Guide g{guide, guide + (goal.n + 1), guide + 2 * (size_t)(goal.n + 1), goal.n, goal.H};
        if (goal.n <= 1000 && r.lines.vLine >= 0) {
          for (int which = 2; which < 4; ++which) {
            int first = 0;
            while (first <= goal.n && !guide_threshold_test(which, first, g, r.lines, goal.target)) ++first;
            ++check->searched;
            check->searchWrong += first != (which == 2 ? r.thresholds.columnBelowEnd : r.thresholds.columnAboveStart);
          }
        }
        for (int c = 0; c < count; ++c) {
          const SearchState& t = tree[c];
          if (t.state == VS_FLOOR || t.state == VS_COLUMNS_LO) continue;
          double f;
          const bool disagree = guide_predict(t, goal, g, r.lines, f) != r.predicted[c];
          if (t.kv == t.ks && !guide_in_columns(t.state)) {
            ++check->common;
            check->commonDisagree += disagree;
          } else if (t.ks == r.lines.vLine) {
            ++check->column;
            check->columnDisagree += disagree;
          }
        }
      }
    } else {
      count = guide_layout(&r);
    }
    for (int c = 0; c < P; ++c) {
      if (live[c] != (c < count ? 1 : 0)) std::abort();  // the layout's own contract
      total[c] = live[c] ? pairs(tree[c]) : -12345.0;
    }
    if (lean && check) {
      // The lean follow from the same state and lines must end where the plain one does.
      const SearchState start = st;
      const GuideLines lines = r.lines;
      guide_follow_lean(&r);
      const SearchState leanEnd = st;
      const GuideLines leanLines = r.lines;
      st = start;
      r.lines = lines;
      guide_follow(&r);
      if (!sameState(st, leanEnd) || !sameLines(leanLines, r.lines)) ++check->leanFollowDiffs;
    } else {
      guide_follow(&r);
    }
    if (rounds > 200) std::abort();
  }
  return outcomeOf(st);
}
}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? (unsigned)std::atoi(argv[1]) : 1u;
  // "lean": the thresholds path, each round's layout and follow also run lean (REGS) and compared; "compact":
  // also each Vertical-Slash round's compact layout against the lean one.
  const bool compact = argc > 2 && std::strcmp(argv[2], "compact") == 0;
  const bool lean = compact || (argc > 2 && std::strcmp(argv[2], "lean") == 0);
  const bool thresholds = lean || (argc > 2 && std::strcmp(argv[2], "thresholds") == 0);
  ThresholdCheck check;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  long searches = 0, runs = 0, mismatches = 0, probes15 = 0, rounds15[3] = {0, 0, 0};
  const int sizes[] = {50, 130, 1000, 4096, 16384, 20011};
  const double sparsities[] = {0.0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999};
  const int slots[] = {1, 3, 7, 15, 31};
  for (int n : sizes) {
    for (int H : {1, 4, 32}) {
      for (int bumpy = 0; bumpy < 2; ++bumpy) {
        const PairModel model = makeModel(rng, n, H, bumpy != 0);
        std::vector<double> guides[3];
        for (int q = 0; q < 3; ++q) guides[q] = makeGuide(rng, model, q);
        const double dense = (double)H * n * (n + 1) / 2.0;
        for (double s : sparsities) {
          for (int mode = 0; mode < 2; ++mode) {
            const double targetValue = (1.0 - s) * dense;
            uint64_t bits;
            std::memcpy(&bits, &targetValue, 8);
            const SearchGoal goal = search_goal((int)(bits >> 32), (int)(bits & 0xffffffffu), n, H, mode, 1 + (int)(u(rng) * 64), 4, 64);
            // FlexPrefill: pairs grow with alpha (steps, so many alphas tie), from a floor.
            const double floorShare = 0.002 + 0.05 * u(rng), power = 0.3 + 2.0 * u(rng);
            auto pairs = [&](const SearchState& t) {
              if (mode == 0) return model(t.kv, t.ks);
              const double a = t.alpha >= 1.0 ? 1.0 : t.alpha;
              return std::floor(dense * (floorShare + (1.0 - floorShare) * std::pow(std::floor(a * 4096.0) / 4096.0, power)));
            };
            const Outcome want = oneProbeAtATime(goal, pairs);
            ++searches;
            for (int q = 0; q < 3; ++q) {
              for (int P : slots) {
                int rounds = 0;
                const Outcome got = guidedRounds(goal, guides[q].data(), P, pairs, rounds, thresholds, &check, lean, compact);
                ++runs;
                if (mode == 0 && P == 15) rounds15[q] += rounds;
                if (!(got == want)) {
                  if (++mismatches <= 5) {
                    std::printf("mismatch n=%d H=%d bumpy=%d s=%g mode=%d guide=%d P=%d: got (%.17g, %g, %g, %g, %g) want (%.17g, %g, %g, %g, %g)\n", n, H,
                                bumpy, s, mode, q, P, got.first, got.second, got.status, got.probes, got.floor, want.first, want.second,
                                want.status, want.probes, want.floor);
                  }
                }
              }
            }
            if (mode == 0) probes15 += (long)want.probes;
          }
        }
      }
    }
  }
  std::printf("searches %ld runs %ld mismatches %ld probes %ld rounds15 exact %ld noisy %ld wrong %ld\n", searches, runs, mismatches, probes15,
              rounds15[0], rounds15[1], rounds15[2]);
  if (thresholds) {
    std::printf("thresholds common %ld disagree %ld column %ld disagree %ld searched %ld wrong %ld\n", check.common, check.commonDisagree,
                check.column, check.columnDisagree, check.searched, check.searchWrong);
  }
  if (lean) {
    std::printf("lean rounds %ld layoutDiffs %ld followDiffs %ld\n", check.leanRounds, check.leanLayoutDiffs, check.leanFollowDiffs);
  }
  if (compact) {
    std::printf("compact rounds %ld diffs %ld fallbacks %ld\n", check.compactRounds, check.compactDiffs, check.compactFallbacks);
  }
  return 0;
}
