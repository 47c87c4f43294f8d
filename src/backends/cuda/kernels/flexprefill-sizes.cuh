// FlexPrefill's per-head size for one alpha from a coverage curve (src/methods/flexprefill.ts:
// coverCount and FlexPrefillPrefill.sizesFor), shared by flexprefill-coverage.cu and
// vertical-slash-search.cu. Include common.cuh first.
#pragma once

// curve [n]: prefix sums of the row's scores sorted descending. The CPU's binary search for the number
// of prefix sums <= alpha (the same probes, so a curve that is not monotone, e.g. after a NaN, gives
// the same answer), plus one, clamped to n; all n when alpha >= 1. Then
// max(min(forced, n), min(n, max(minBudget, cover))).
__device__ __forceinline__ int fp_size(const double* curve, int n, double alpha, int minBudget, int forced) {
  int cover = n;
  if (!(alpha >= 1.0)) {
    int lo = 0, hi = n;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (curve[mid] <= alpha) lo = mid + 1;
      else hi = mid;
    }
    cover = min(n, lo + 1);
  }
  return max(min(forced, n), min(n, max(minBudget, cover)));
}
