// Where a Vertical-Slash index keeps a query block's key ranges (shared by vertical-slash-index.cu,
// which writes them, and vertical-slash-prefill.cu, which reads them; the host twin is
// verticalSlashRangeOffset in vertical-slash-layout.ts). Block m of a head owns min(C, m + 2) int2
// slots: disjoint, non-touching ranges at least 64 wide inside [0, 64(m + 2)) number at most m + 2,
// and each comes from at least one of the C kept diagonals. Include common.cuh first.
#pragma once

// Slot offset of block m inside its head: the sum of min(C, m' + 2) over m' < m.
__device__ __forceinline__ long long vs_range_offset(long long m, long long C) {
  const long long t = min(m, max(C - 1, 0ll));
  return (t * t + 3 * t) / 2 + (m - t) * C;
}
