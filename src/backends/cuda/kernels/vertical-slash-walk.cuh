// The Vertical-Slash pattern's per-block walk, shared by vertical-slash-index.cu (the index and its
// probes) and vertical-slash-search.cu (the count searches on the device). The host twin is
// src/methods/vertical-slash-pattern.ts (VerticalSlashBuilder). Include common.cuh first.
#pragma once

constexpr int VS_BLOCK = 64;  // query rows per pattern block, keys per range step

// First index i in sorted[0 .. count) with sorted[i] >= x.
__device__ __forceinline__ int vs_lower_bound(const int* sorted, int count, int x) {
  int lo = 0, hi = count;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// First index j >= from in sorted[0 .. count) with sorted[j] >= x, given that every entry before
// `from` is below x: galloping from `from`, so a walk that moves forward costs the log of each step.
__device__ __forceinline__ int vs_gallop(const int* sorted, int count, int from, int x) {
  if (from >= count || sorted[from] >= x) return from;
  int lo = from, step = 1;  // sorted[lo] < x
  while (lo + step < count && sorted[lo + step] < x) {
    lo += step;
    step <<= 1;
  }
  int hi = min(lo + step, count);  // the answer lies in (lo, hi]
  ++lo;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Pairs (r, key) with r in [r0, r1), key in [a, b), key <= r (methods' causalRectPairs).
__device__ __forceinline__ long long vs_causal_rect_pairs(long long r0, long long r1, long long a, long long b) {
  long long pairs = 0;
  const long long lo = max(r0, a), hi = min(r1, b);
  if (hi > lo) pairs += ((hi - lo) * (lo + hi - 1)) / 2 + (hi - lo) * (1 - a);
  const long long lo2 = max(r0, b);
  if (r1 > lo2) pairs += (r1 - lo2) * (b - a);
  return pairs;
}

// The original's three-way rule for one kept offset whose range would end at e (the current range
// [a, b), a < 0 before the first): start the first range, emit the current one and start anew when e
// lies more than 64 past its end, or extend it by 64 when e lies within 64 past its end.
template <class Emit>
__device__ __forceinline__ void vs_merge_offset(int e, int& a, int& b, Emit& emit) {
  if (a < 0) {
    a = e - VS_BLOCK;
    b = e;
  } else if (e > b + VS_BLOCK) {
    emit(a, b);
    a = e - VS_BLOCK;
    b = e;
  } else if (e > b) {
    b += VS_BLOCK;
  }
}

// The original's merge of the kept diagonals (S [0, ks) ascending offsets) that reach a 64-row
// query block ending at `end`: offsets visited from the largest below end, e = max(end - o, 64); a
// range is extended by 64 when e lies within 64 past its end, else a new one [e - 64, e) starts.
// emit(a, b) gets each finished range, in ascending key order. An offset whose e lies inside the
// current range changes nothing, so every such run is skipped with one binary search: a block costs
// O(ranges + extensions) steps instead of one per kept offset (all n offsets at full coverage).
template <class Emit>
__device__ __forceinline__ void vs_walk_ranges(const int* S, int ks, int end, Emit emit) {
  int a = -1, b = -1;
  int i = vs_lower_bound(S, ks, end) - 1;
  while (i >= 0) {
    vs_merge_offset(max(end - S[i], VS_BLOCK), a, b, emit);
    --i;
    // b >= 64, so e <= b exactly when S[i] >= end - b: a contiguous run below i.
    if (i >= 0 && S[i] >= end - b) i = vs_lower_bound(S, i + 1, end - b) - 1;
  }
  if (a >= 0) emit(a, b);
}

// vs_walk_ranges' ranges, one step per run of the kept offsets instead of one per 64-key extension.
// runStart[i]: the first index of the run holding i, a run being consecutive offsets at most 64
// apart (vs_mark_runs). Walking down a run, each e = max(end - S[t], 64) lies within 64 of the one
// before it, so no range restarts there and the range end b only climbs, by 64 each time an e passes
// it: to the first b + 64·j at or past the run's last e. Only the first offset of each run (after a
// gap wider than 64) takes vs_walk_ranges' three-way rule. The same ranges, in the same order.
template <class Emit>
__device__ __forceinline__ void vs_walk_runs(const int* S, const int* runStart, int ks, int end, Emit emit) {
  int a = -1, b = -1;
  int i = vs_lower_bound(S, ks, end) - 1;
  while (i >= 0) {
    vs_merge_offset(max(end - S[i], VS_BLOCK), a, b, emit);
    const int first = runStart[i];
    const int last = max(end - S[first], VS_BLOCK);
    if (last > b) b += VS_BLOCK * ((last - b + VS_BLOCK - 1) / VS_BLOCK);
    i = first - 1;
  }
  if (a >= 0) emit(a, b);
}

// Exact attended pairs of one 64-row block m whose diagonal ranges walk(emit) gives (ascending): the
// ranges (causal inside) and the kept columns (V [0, kv) ascending) left of and between them, every
// row of the block.
template <class Walk>
__device__ __forceinline__ long long vs_block_pairs_of(const int* V, int kv, int m, int n, Walk walk) {
  const int start = m * VS_BLOCK, rowEnd = min(start + VS_BLOCK, n);
  long long pairs = 0;
  int next = 0, cols = 0;  // next: the first kept column right of the ranges so far
  walk([&](int a, int b) {
    pairs += vs_causal_rect_pairs(start, rowEnd, a, b);
    const int left = vs_gallop(V, kv, next, a);
    cols += left - next;
    next = vs_gallop(V, kv, left, b);
  });
  return pairs + (long long)cols * (rowEnd - start);
}

// The two walks as function objects for vs_block_pairs_of. Not generic lambdas (`[&](auto emit)`):
// NVRTC takes a generic lambda's call operator for a host function and refuses it ("host functions
// are not allowed in JIT mode"), although nvcc accepts it.
struct VsRangesWalk {
  const int* S;
  int ks, end;
  template <class Emit>
  __device__ __forceinline__ void operator()(Emit emit) const { vs_walk_ranges(S, ks, end, emit); }
};
struct VsRunsWalk {
  const int* S;
  const int* runStart;
  int ks, end;
  template <class Emit>
  __device__ __forceinline__ void operator()(Emit emit) const { vs_walk_runs(S, runStart, ks, end, emit); }
};

// Exact attended pairs of one (head, 64-row block m), the kept offsets S [0, ks) ascending.
__device__ __forceinline__ long long vs_block_pairs(const int* V, int kv, const int* S, int ks, int m, int n) {
  return vs_block_pairs_of(V, kv, m, n, VsRangesWalk{S, ks, (m + 1) * VS_BLOCK});
}

// vs_block_pairs walking by runs (vs_walk_runs).
__device__ __forceinline__ long long vs_block_pairs_by_runs(const int* V, int kv, const int* S, const int* runStart, int ks, int m,
                                                           int n) {
  return vs_block_pairs_of(V, kv, m, n, VsRunsWalk{S, runStart, ks, (m + 1) * VS_BLOCK});
}
