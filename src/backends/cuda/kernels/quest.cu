// Quest on the device (src/methods/quest.ts is the reference):
//   quest_update_bounds: element-wise min and max of the keys of pages [firstPage, firstPage + grid.x)
//                        over rows [page·P, min(rowsEnd, page·P + P)): a decode step refreshes only the
//                        page that gained its row, the first call covers the whole prompt.
//   quest_page_scores:   per unit (a KV head's group with share_pages, else one query head) and page
//                        before the current one, sum over the unit's query heads and d of
//                        max(q_d·min_d, q_d·max_d).
//   quest_select_pages:  per unit, the top k pages (ties: lower page first) written in ascending order
//                        as the segment list segment-decode.cu reads (each page one segment of P rows).
//   quest_select_step:   one decode step's selection in one launch (v4): the bounds of the page the
//                        new row joined, the page scores and, in the last block of each unit to finish
//                        its scores, the top k (top-k.cuh's staged select) and the list. The three
//                        kernels above stay for the first step (a whole prompt's bounds) and rows of
//                        more pages than shared memory holds.
//   quest_select_step_at: the same step with the position read on the device and the budget from a
//                        per-position table, for decode steps replayed from a captured CUDA graph.
//
// Layouts:
//   k          : [Hkv, kvStride, D] bf16           q : [H, D] bf16
//   pageMin/Max: [Hkv, pageStride, D] bf16 (min and max of bf16 values are bf16 values: exact)
//   scores     : [units, scoreStride] fp32
//   segs       : int32 [units, segStride]: count, list rows, uniform length (P), unused, then
//                (first row, first logical row) pairs
// Unit u reads query heads [u·heads, (u + 1)·heads) and KV head u·heads / g.
#include "common.cuh"
#include "top-k.cuh"

namespace {
constexpr int SELECT_THREADS = 1024;
constexpr int SCORE_THREADS = 256;
constexpr int MAX_UNIT_HEADS = 8;
constexpr int STEP_THREADS = 512;
constexpr int STEP_PAGES_PER_BLOCK = 128;
// Pages of one block's chunk that one lane loads before using any (D = 128: 32 pages per pass of the
// block, 4 passes; D = 64: 2).
constexpr int STEP_MAX_PASSES = STEP_PAGES_PER_BLOCK / (STEP_THREADS / 16);
}  // namespace

// Min and max of one KV head's rows [page·P, min(rowsEnd, page·P + P)) in dim d, stored as bf16.
__device__ __forceinline__ void quest_refresh_page(const bf16_t* __restrict__ k, bf16_t* pageMin, bf16_t* pageMax, int D, int kvStride,
                                                   int pageStride, int pageSize, int page, int hk, int rowsEnd, int d) {
  const int r0 = page * pageSize;
  const int r1 = min(rowsEnd, r0 + pageSize);
  const bf16_t* col = k + (size_t)hk * kvStride * D + d;
  float mn = bf16_to_f32(col[(size_t)r0 * D]), mx = mn;
  for (int r = r0 + 1; r < r1; ++r) {
    const float x = bf16_to_f32(col[(size_t)r * D]);
    mn = fminf(mn, x);
    mx = fmaxf(mx, x);
  }
  const size_t at = ((size_t)hk * pageStride + page) * D + d;
  pageMin[at] = f32_to_bf16(mn);
  pageMax[at] = f32_to_bf16(mx);
}

// One lane's part of a page score: 8 dims of the page's min and max (16-byte words) against the
// same 8 dims of each query head h0 .. h0 + unitHeads - 1 (16-byte loads that hit L1 after the first
// page), summed heads first, then dims in order. Both score kernels use it, so they give equal scores.
__device__ __forceinline__ float quest_lane_score(uint4 rawMin, uint4 rawMax, const bf16_t* __restrict__ q, int h0, int unitHeads, int D, int sub) {
  const u32 wMin[4] = {rawMin.x, rawMin.y, rawMin.z, rawMin.w}, wMax[4] = {rawMax.x, rawMax.y, rawMax.z, rawMax.w};
  float mn[8], mx[8];
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    mn[2 * e] = __uint_as_float(wMin[e] << 16);
    mn[2 * e + 1] = __uint_as_float(wMin[e] & 0xffff0000u);
    mx[2 * e] = __uint_as_float(wMax[e] << 16);
    mx[2 * e + 1] = __uint_as_float(wMax[e] & 0xffff0000u);
  }
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < MAX_UNIT_HEADS; ++j) {
    if (j < unitHeads) {
      const uint4 rawQ = __ldg(reinterpret_cast<const uint4*>(q + (size_t)(h0 + j) * D + sub * 8));
      const u32 wq[4] = {rawQ.x, rawQ.y, rawQ.z, rawQ.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float q0 = __uint_as_float(wq[e] << 16), q1 = __uint_as_float(wq[e] & 0xffff0000u);
        s += fmaxf(q0 * mn[2 * e], q0 * mx[2 * e]);
        s += fmaxf(q1 * mn[2 * e + 1], q1 * mx[2 * e + 1]);
      }
    }
  }
  return s;
}

// grid (pages to refresh, Hkv), block (D).
extern "C" __global__ void quest_update_bounds(const bf16_t* __restrict__ k, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax,
                                               int D, int kvStride, int pageStride, int pageSize, int firstPage, int rowsEnd) {
  quest_refresh_page(k, pageMin, pageMax, D, kvStride, pageStride, pageSize, firstPage + blockIdx.x, blockIdx.y, rowsEnd, threadIdx.x);
}

// grid (ceil(pages / (SCORE_THREADS / (D/8))), units), block (SCORE_THREADS): D/8 lanes per page, each
// reading 8 dims of min and of max as 16-byte loads, so every page of the grid is in flight at once
// (v1 gave each warp a run of pages with 2-byte loads and waited for each page in turn).
extern "C" __global__ void __launch_bounds__(SCORE_THREADS) quest_page_scores(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ pageMin, const bf16_t* __restrict__ pageMax, float* __restrict__ scores,
    int D, int g, int unitHeads, int pageStride, int pages, int scoreStride) {
  const int unit = blockIdx.y;
  const int h0 = unit * unitHeads;
  const int hk = h0 / g;
  const int lanes = D / 8;
  const int page = blockIdx.x * (SCORE_THREADS / lanes) + threadIdx.x / lanes;
  const int sub = threadIdx.x % lanes;
  float s = 0.f;
  if (page < pages) {
    const size_t at = ((size_t)hk * pageStride + page) * D + sub * 8;
    s = quest_lane_score(*reinterpret_cast<const uint4*>(pageMin + at), *reinterpret_cast<const uint4*>(pageMax + at), q, h0, unitHeads, D, sub);
  }
  // Sum over the page's lanes (xor offsets below `lanes` stay inside the page's group).
  for (int off = lanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (sub == 0 && page < pages) scores[(size_t)unit * scoreStride + page] = s;
}

// Writes a unit's list header: take pages of pageSize rows each.
__device__ __forceinline__ void quest_list_header(int* list, int take, int pageSize) {
  list[0] = take;
  list[1] = take * pageSize;
  list[2] = pageSize;
  list[3] = 0;
}

// grid (units), block (SELECT_THREADS), dynamic shared memory pages · 4 bytes unless mode is
// SELECT_FROM_GLOBAL. k >= pages takes every page (then scores are not read). Modes:
//   SELECT_FROM_GLOBAL  the 8-bit radix select (topk_cut) reading the scores from global memory in
//                       every pass (rows longer than shared memory holds);
//   SELECT_RADIX8       the same select over keys staged in shared memory (v3: the row's keys are
//                       computed once and every radix pass reads them there);
//   SELECT_REFINED      top-k.cuh's staged select (shared prefix skipped, 11-bit digits, exact
//                       ranking of a small last bin, conflict-free ordered emit): quest_select_step's
//                       selection on its own, for tests and the per-part timing.
namespace {
constexpr int SELECT_FROM_GLOBAL = 0;
constexpr int SELECT_RADIX8 = 1;
constexpr int SELECT_REFINED = 2;
}  // namespace

extern "C" __global__ void __launch_bounds__(SELECT_THREADS) quest_select_pages(
    const float* __restrict__ scores, int scoreStride, int pages, int k, int pageSize, int* __restrict__ segs, int segStride, int mode) {
  __shared__ TopKShared sh;
  __shared__ TopKStagedShared staged;
  extern __shared__ u32 stagedKeys[];
  const int unit = blockIdx.x;
  const float* row = scores + (size_t)unit * scoreStride;
  int* list = segs + (size_t)unit * segStride;
  const int take = min(k, pages);
  auto writePage = [&](int page, int rank) {
    list[4 + 2 * rank] = page * pageSize;
    list[5 + 2 * rank] = rank * pageSize;
  };
  if (take >= pages) {
    for (int page = threadIdx.x; page < pages; page += SELECT_THREADS) writePage(page, page);
  } else if (take > 0 && mode == SELECT_REFINED) {
    for (int i = threadIdx.x; i < pages; i += SELECT_THREADS) stagedKeys[i] = topk_order_key(row[i]);
    __syncthreads();
    const TopKStagedCut cut = topk_select_staged<SELECT_THREADS>(stagedKeys, pages, take, staged);
    topk_emit_staged<SELECT_THREADS>(stagedKeys, pages, cut, writePage, staged);
  } else if (take > 0 && mode == SELECT_RADIX8) {
    for (int i = threadIdx.x; i < pages; i += SELECT_THREADS) stagedKeys[i] = topk_order_key(row[i]);
    __syncthreads();
    auto keyOf = [&](int i) { return stagedKeys[i]; };
    const TopKCut cut = topk_cut<SELECT_THREADS>(pages, take, keyOf, sh);
    topk_emit<SELECT_THREADS>(pages, cut, keyOf, writePage, sh);
  } else if (take > 0 && mode == SELECT_FROM_GLOBAL) {
    auto keyOf = [&](int i) { return topk_order_key(row[i]); };
    const TopKCut cut = topk_cut<SELECT_THREADS>(pages, take, keyOf, sh);
    topk_emit<SELECT_THREADS>(pages, cut, keyOf, writePage, sh);
  }
  if (threadIdx.x == 0) quest_list_header(list, take, pageSize);
}

// One decode step's selection (v4): quest_select_step and quest_select_step_at run it with the step's
// numbers from the host or from device memory. grid (chunks, units), block (STEP_THREADS), dynamic
// shared memory pages · 4 bytes (the last block's staged keys); arrivals: [units] u32, zero between
// steps (the last block of a unit puts it back), so graph replays need no reset node.
//   1. Block x = 0 of the first unit of each KV head folds rows [refreshPage·P, rowsEnd) into the
//      bounds of page refreshPage (refreshPage < 0: none). Callers pass refreshPage >= pages only:
//      the page is not scored in this step, so no block reads what is being written.
//   2. 0 < take < pages: block x scores pages [x·128, x·128 + 128) of its unit (none when the grid
//      has more chunks than the step's pages need), D/8 lanes per page, every lane's bound loads
//      issued before the first is used; the block then counts itself in arrivals[unit] and the last
//      block of the unit selects from the row (read from L2) and writes the list. Otherwise (take <= 0
//      or take >= pages) block 0 writes the list unscored and the other blocks only return.
__device__ __forceinline__ void quest_step(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    float* __restrict__ scores, u32* __restrict__ arrivals, int* __restrict__ segs,
    int D, int g, int unitHeads, int kvStride, int pageStride, int pages, int scoreStride, int segStride, int take, int pageSize,
    int refreshPage, int rowsEnd, TopKStagedShared& sh, int& isLast, u32* stagedKeys) {
  const int unit = blockIdx.y;
  const int h0 = unit * unitHeads;
  const int hk = h0 / g;
  const int tid = threadIdx.x;
  int* list = segs + (size_t)unit * segStride;
  auto writePage = [&](int page, int rank) {
    list[4 + 2 * rank] = page * pageSize;
    list[5 + 2 * rank] = rank * pageSize;
  };
  if (blockIdx.x == 0 && refreshPage >= 0 && h0 % g == 0 && tid < D) {
    quest_refresh_page(k, pageMin, pageMax, D, kvStride, pageStride, pageSize, refreshPage, hk, rowsEnd, tid);
  }
  if (take <= 0 || take >= pages) {
    if (blockIdx.x == 0) {
      if (take > 0) {
        for (int page = tid; page < pages; page += STEP_THREADS) writePage(page, page);
      }
      if (tid == 0) quest_list_header(list, max(0, min(take, pages)), pageSize);
    }
    return;
  }

  const int lanes = D / 8;
  const int pagesPerPass = STEP_THREADS / lanes;
  const int passes = STEP_PAGES_PER_BLOCK / pagesPerPass;
  const int sub = tid % lanes;
  const int firstPage = blockIdx.x * STEP_PAGES_PER_BLOCK + tid / lanes;
  const bf16_t* minBase = pageMin + (size_t)hk * pageStride * D + sub * 8;
  const bf16_t* maxBase = pageMax + (size_t)hk * pageStride * D + sub * 8;
  uint4 rawMin[STEP_MAX_PASSES], rawMax[STEP_MAX_PASSES];
#pragma unroll
  for (int p = 0; p < STEP_MAX_PASSES; ++p) {
    const int page = firstPage + p * pagesPerPass;
    if (p < passes && page < pages) {
      rawMin[p] = *reinterpret_cast<const uint4*>(minBase + (size_t)page * D);
      rawMax[p] = *reinterpret_cast<const uint4*>(maxBase + (size_t)page * D);
    }
  }
  float* row = scores + (size_t)unit * scoreStride;
#pragma unroll
  for (int p = 0; p < STEP_MAX_PASSES; ++p) {
    const int page = firstPage + p * pagesPerPass;
    if (p < passes) {  // uniform across the block: the shuffles below need every lane
      float s = page < pages ? quest_lane_score(rawMin[p], rawMax[p], q, h0, unitHeads, D, sub) : 0.f;
      for (int off = lanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
      if (sub == 0 && page < pages) row[page] = s;
    }
  }
  // Every block's scores are visible before its arrival counts (threadFenceReduction's pattern).
  __threadfence();
  __syncthreads();
  if (tid == 0) isLast = atomicAdd(&arrivals[unit], 1u) == gridDim.x - 1 ? 1 : 0;
  __syncthreads();
  if (!isLast) return;
  __threadfence();
  if (tid == 0) arrivals[unit] = 0u;
  // The row was written by other blocks: read it through L2 (__ldcg), not a possibly stale L1.
  for (int i = tid; i < pages; i += STEP_THREADS) stagedKeys[i] = topk_order_key(__ldcg(row + i));
  __syncthreads();
  const TopKStagedCut cut = topk_select_staged<STEP_THREADS>(stagedKeys, pages, take, sh);
  topk_emit_staged<STEP_THREADS>(stagedKeys, pages, cut, writePage, sh);
  if (tid == 0) quest_list_header(list, take, pageSize);
}

// The step with its numbers from the host (eager decode): grid.x = ceil(pages / 128) when scoring, else 1.
extern "C" __global__ void __launch_bounds__(STEP_THREADS, 2) quest_select_step(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    float* __restrict__ scores, u32* __restrict__ arrivals, int* __restrict__ segs,
    int D, int g, int unitHeads, int kvStride, int pageStride, int pages, int scoreStride, int segStride, int take, int pageSize,
    int refreshPage, int rowsEnd) {
  __shared__ TopKStagedShared sh;
  __shared__ int isLast;
  extern __shared__ u32 stagedKeys[];
  quest_step(q, pageMin, pageMax, k, scores, arrivals, segs, D, g, unitHeads, kvStride, pageStride, pages, scoreStride, segStride, take,
             pageSize, refreshPage, rowsEnd, sh, isLast, stagedKeys);
}

// The step of a decode replayed from a captured CUDA graph (issue 9): p = *position (the new row, in
// the cache already), the pages before the current one scored, the budget budgets[p] (the host's
// questPagesFor, tabled per position), the current page refreshed up to row p. The grid and dynamic
// shared memory are fixed at capture for the most pages of the replayed range.
extern "C" __global__ void __launch_bounds__(STEP_THREADS, 2) quest_select_step_at(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    float* __restrict__ scores, u32* __restrict__ arrivals, int* __restrict__ segs, const int* __restrict__ position,
    const int* __restrict__ budgets, int D, int g, int unitHeads, int kvStride, int pageStride, int scoreStride, int segStride, int pageSize) {
  __shared__ TopKStagedShared sh;
  __shared__ int isLast;
  extern __shared__ u32 stagedKeys[];
  const int p = *position;
  const int pages = p / pageSize;
  const int take = max(0, min(budgets[p], pages));
  quest_step(q, pageMin, pageMax, k, scores, arrivals, segs, D, g, unitHeads, kvStride, pageStride, pages, scoreStride, segStride, take,
             pageSize, pages, p + 1, sh, isLast, stagedKeys);
}
