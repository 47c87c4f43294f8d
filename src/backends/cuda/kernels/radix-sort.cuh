// One block sorts one row: stable LSD radix passes over 32-bit keys (8 bits per pass, ascending),
// optionally carrying an int payload, for FlexPrefill's coverage curves (flexprefill-coverage.cu)
// and the Vertical-Slash rankings (vertical-slash-search.cu). Rows live in global memory; a pass
// reads its source twice (digit histogram, then the tiles) and scatters into its destination.
// Include common.cuh and top-k.cuh first.
#pragma once

template <int THREADS>
struct __align__(16) RadixShared {
  u32 warpHist[THREADS / 32][256];  // per warp and digit: its count, then its first output slot
  u32 binBase[256];                 // next output slot per digit (running over the tiles)
  TopKShared scan;
};

// One stable pass over digit (key >> shift) & 255 of n elements: keyOf(i) / valOf(i) read element i
// of the source; dstKeys / dstVals (when PAYLOAD) get them in ascending digit order. Inside a tile of
// THREADS·ITEMS elements warp w owns a contiguous run of 32·ITEMS, visited as ITEMS rows of 32, so
// (tile, warp, row, lane) is the input order and equal digits keep it. All threads call it together.
template <int THREADS, int ITEMS, bool PAYLOAD, class KeyOf, class ValOf>
__device__ __forceinline__ void radix_pass(KeyOf keyOf, ValOf valOf, u32* dstKeys, int* dstVals, int n, int shift, RadixShared<THREADS>& sh) {
  constexpr int TILE = THREADS * ITEMS;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const unsigned full = 0xffffffffu;
  // Digit histogram; lanes with the same digit add once (scores of one magnitude share high bytes).
  if (tid < 256) sh.binBase[tid] = 0u;
  __syncthreads();
  for (int base = 0; base < n; base += THREADS) {
    const int i = base + tid;
    const int d = i < n ? (int)((keyOf(i) >> shift) & 255u) : -1;
    const unsigned peers = __match_any_sync(full, d);
    if (d >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.binBase[d], (u32)__popc(peers));
  }
  __syncthreads();
  int total;
  const int count = tid < 256 ? (int)sh.binBase[tid] : 0;
  const int before = topk_block_exclusive_scan<THREADS>(count, sh.scan, total);
  if (tid < 256) sh.binBase[tid] = (u32)before;
  __syncthreads();

  const unsigned below = (1u << lane) - 1u;
  u32* hist = sh.warpHist[warp];
  for (int tile = 0; tile < n; tile += TILE) {
    const int first = tile + warp * 32 * ITEMS;
    u32 keys[ITEMS];
    int vals[ITEMS];
    int digits[ITEMS];
    for (int b = lane; b < 256; b += 32) hist[b] = 0u;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int i = first + j * 32 + lane;
      keys[j] = i < n ? keyOf(i) : 0u;
      if (PAYLOAD) vals[j] = i < n ? valOf(i) : 0;
      digits[j] = i < n ? (int)((keys[j] >> shift) & 255u) : -1;
      const unsigned peers = __match_any_sync(full, digits[j]);
      if (digits[j] >= 0 && lane == __ffs(peers) - 1) hist[digits[j]] += (u32)__popc(peers);
      __syncwarp();
    }
    __syncthreads();
    // Per digit: the warps' first slots in warp order, after the tiles before this one.
    if (tid < 256) {
      u32 run = sh.binBase[tid];
      for (int w = 0; w < THREADS / 32; ++w) {
        const u32 c = sh.warpHist[w][tid];
        sh.warpHist[w][tid] = run;
        run += c;
      }
      sh.binBase[tid] = run;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int d = digits[j];
      const unsigned peers = __match_any_sync(full, d);
      const u32 slot = d >= 0 ? hist[d] + (u32)__popc(peers & below) : 0u;
      __syncwarp();
      if (d >= 0) {
        if (lane == __ffs(peers) - 1) hist[d] += (u32)__popc(peers);
        dstKeys[slot] = keys[j];
        if (PAYLOAD) dstVals[slot] = vals[j];
      }
      __syncwarp();
    }
  }
  __syncthreads();
}
