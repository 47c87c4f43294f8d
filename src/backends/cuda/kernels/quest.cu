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

// Entry groups (session 10): a compile with -DQUEST_ENTRIES=<group> defines only that group's entries, so a
// QuestKernels compiles what its options can launch (quest.ts, QUEST_ENTRY_GROUPS: the method's default at one
// unit size is the base group and one step pair) instead of all ~57 (63 s on a fresh H100). Without the define
// (or 0) every entry is compiled: the compile checks and the host tests' text read the whole file. Each entry's
// code is the same in every compile that defines it; only which entries exist changes.
#ifndef QUEST_ENTRIES
#define QUEST_ENTRIES 0
#endif
#define QUEST_COMPILES(GROUP) (QUEST_ENTRIES == 0 || QUEST_ENTRIES == (GROUP))
#if QUEST_ENTRIES != 0
// A group leaves some of the file's constants unread (warning 177); the whole file reads them all.
#pragma nv_diag_suppress 177
#endif
#define QUEST_ENTRIES_BASE 1     // v3's three kernels and v4's graph step: the method below 4,096 pages, every fallback
#define QUEST_ENTRIES_V4 2       // quest_select_step (v4's eager step, option fusedStep)
#define QUEST_ENTRIES_SELECTS 3  // the multi-block selects alone (selectPagesMultiBlock: tests, per-part timing)
#define QUEST_ENTRIES_WINDOW 4   // v6 (option windowStep)
#define QUEST_ENTRIES_STAMPED 5  // the phase-stamped 4-head steps (bench/quest-phases.ts)
// One group per multi-block step entry pair (quest.ts, QUEST_GRID_STEP_ENTRIES), by the pair's name there.
#define QUEST_ENTRIES_V5 10
#define QUEST_ENTRIES_V7 11
#define QUEST_ENTRIES_V8 12
#define QUEST_ENTRIES_V8H4 13
#define QUEST_ENTRIES_V9 14
#define QUEST_ENTRIES_V10 15
#define QUEST_ENTRIES_V8H1 16
#define QUEST_ENTRIES_V8H2 17
#define QUEST_ENTRIES_V10H4 18
#define QUEST_ENTRIES_V10H1 19
#define QUEST_ENTRIES_V10H2 20
#define QUEST_ENTRIES_V10H8 21
#define QUEST_ENTRIES_V10HP 22
#define QUEST_ENTRIES_V10H1B 23
#define QUEST_ENTRIES_V10H4B 24
#define QUEST_ENTRIES_V10H2B 25
#define QUEST_ENTRIES_V10H8B 26
#define QUEST_ENTRIES_V10H7 27
#define QUEST_ENTRIES_V10H7B 28
#define QUEST_ENTRIES_V10H4BF 29
#define QUEST_ENTRIES_V10H4BR 30
#define QUEST_ENTRIES_V10H4BP 31

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

// quest_refresh_page with the page's rows requested 16 at a time before any is folded (session 9, option
// prefetchedRefresh). nvcc turns quest_refresh_page's loop into a first load, a remainder loop of up to 3 rows and
// groups of 4, each waiting for its loads: about 7 dependent round trips for a 16-row page, paid by the refreshing
// block's first 4 warps before they score, which the unit's first barrier then waits for. Here one round trip per 16
// rows. The fold is quest_refresh_page's (the first row, then fminf / fmaxf in row order): the same bounds bit for bit.
__device__ __forceinline__ void quest_refresh_page_prefetched(const bf16_t* __restrict__ k, bf16_t* pageMin, bf16_t* pageMax, int D,
                                                              int kvStride, int pageStride, int pageSize, int page, int hk, int rowsEnd, int d) {
  constexpr int ROWS_IN_FLIGHT = 16;
  const int r0 = page * pageSize;
  const int r1 = min(rowsEnd, r0 + pageSize);
  const bf16_t* col = k + (size_t)hk * kvStride * D + d;
  float mn = 0.f, mx = 0.f;
  for (int base = r0; base < r1; base += ROWS_IN_FLIGHT) {
    // Rows past the page's end read its last row again (unconditional loads: no branch between a load and its
    // use, so all 16 are in flight before the first is folded); the fold skips them.
    float x[ROWS_IN_FLIGHT];
#pragma unroll
    for (int i = 0; i < ROWS_IN_FLIGHT; ++i) x[i] = bf16_to_f32(col[(size_t)min(base + i, r1 - 1) * D]);
    if (base == r0) mn = mx = x[0];
#pragma unroll
    for (int i = 0; i < ROWS_IN_FLIGHT; ++i) {
      if (base + i < r1 && (i > 0 || base != r0)) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
      }
    }
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
#if QUEST_COMPILES(QUEST_ENTRIES_BASE)
extern "C" __global__ void quest_update_bounds(const bf16_t* __restrict__ k, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax,
                                               int D, int kvStride, int pageStride, int pageSize, int firstPage, int rowsEnd) {
  quest_refresh_page(k, pageMin, pageMax, D, kvStride, pageStride, pageSize, firstPage + blockIdx.x, blockIdx.y, rowsEnd, threadIdx.x);
}
#endif

// grid (ceil(pages / (SCORE_THREADS / (D/8))), units), block (SCORE_THREADS): D/8 lanes per page, each
// reading 8 dims of min and of max as 16-byte loads, so every page of the grid is in flight at once
// (v1 gave each warp a run of pages with 2-byte loads and waited for each page in turn).
#if QUEST_COMPILES(QUEST_ENTRIES_BASE)
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
#endif

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

#if QUEST_COMPILES(QUEST_ENTRIES_BASE)
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
#endif

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
#if QUEST_COMPILES(QUEST_ENTRIES_V4)
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
#endif

// The step of a decode replayed from a captured CUDA graph (issue 9): p = *position (the new row, in
// the cache already), the pages before the current one scored, the budget budgets[p] (the host's
// questPagesFor, tabled per position), the current page refreshed up to row p. The grid and dynamic
// shared memory are fixed at capture for the most pages of the replayed range.
#if QUEST_COMPILES(QUEST_ENTRIES_BASE)
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
#endif

// ---------------------------------------------------------------------------------------------------
// v5, the multi-block step (session 5): quest_grid_step, quest_grid_step_at and, for tests and the
// per-part timing, quest_grid_select over given score rows. Where v3 and v4 walk every page of a
// unit in one block (their select costs ~1.5 us per 1024 pages per unit, docs/perf.md), here G
// blocks per unit each own a contiguous chunk of ~pages / G pages and cooperate through per-unit
// barriers (every block of the grid is resident: the launcher keeps G · units within one wave):
//   A. each block scores its chunk at HBM rate (as v4: every lane's bound loads of four passes in
//      flight before the first is used; the same fp32 scores as v3), keeps the order keys in shared
//      memory and adds its AND and OR of them to the unit's;                           barrier 1
//   B. radix passes of up to 11 bits over the bits where the unit's keys differ (top-k.cuh's staged
//      select, spread out): each block histograms its chunk and adds it to the unit's global
//      histogram; after the barrier every block reads the whole histogram and finds the same bin
//      (until the k-th key's bin is taken whole, holds <= 256 keys or is one key value);   barrier 2..
//   C. each block publishes how many of its keys lie above the bin and in it, and (bin of <= 256
//      keys) appends the bin's keys to the unit's candidate list;                     final barrier
//   D. each block ranks the candidates exactly by (key desc, page asc), finds its first list slot
//      from the earlier blocks' counts, and writes its taken pages in ascending order.
// The barriers count up within a launch (barrier b passes at b · G arrivals); the block that
// arrives last clears what the phase before it finished reading (AND/OR, a pass's histogram), and
// the last block to leave clears the counters, so the scratch is zero again after every launch
// (graph replays need no reset node). Scratch per unit: QUEST_GRID_UNIT_WORDS u32, zero before the
// first launch.
namespace {
constexpr int GRID_THREADS = 512;
constexpr int GRID_MAX_BLOCKS = 32;                      // blocks per unit (QUEST_GRID_MAX_BLOCKS in quest.ts)
constexpr int GRID_RANK_LIMIT = TOPK_RANK_LIMIT;        // the candidate list's room
constexpr int GRID_PASSES = 3;                           // 32 bits in digits of <= 11 bits
constexpr int GRID_HIST_BINS = 1 << TOPK_RADIX_BITS;
// Word offsets in a unit's scratch.
constexpr int GS_BARRIER = 0, GS_EXITS = 1, GS_NOT_AND = 2, GS_OR = 3, GS_CANDIDATES = 4;
// v9's guess: the unit's key range (NOT AND, OR) at its previous select, and whether one was stored.
constexpr int GS_GUESS_NOT_AND = 5, GS_GUESS_OR = 6, GS_GUESS_SET = 7;
constexpr int GS_ABOVE = 8;                              // [GRID_MAX_BLOCKS] keys above the bin, per block
constexpr int GS_IN_BIN = GS_ABOVE + GRID_MAX_BLOCKS;    // [GRID_MAX_BLOCKS] keys in the bin, per block
constexpr int GS_CAND_KEY = GS_IN_BIN + GRID_MAX_BLOCKS; // [GRID_RANK_LIMIT]
constexpr int GS_CAND_IDX = GS_CAND_KEY + GRID_RANK_LIMIT;
constexpr int GS_HIST = GS_CAND_IDX + GRID_RANK_LIMIT;   // [GRID_HIST_SLOTS][GRID_HIST_BINS]
// v9 may histogram a missed guess before v5's (up to) three passes: one slot more.
constexpr int GRID_HIST_SLOTS = GRID_PASSES + 1;
// v10's sync words, apart from v5's so that both may share a scratch: its barrier counter and candidate
// counter never go back to 0; each launch starts from the values the previous one left (GS_E_*_BASE).
constexpr int GS_EPOCH = GS_HIST + GRID_HIST_SLOTS * GRID_HIST_BINS;
constexpr int GS_E_BARRIER = GS_EPOCH, GS_E_BASE = GS_EPOCH + 1, GS_E_CAND = GS_EPOCH + 2, GS_E_CAND_BASE = GS_EPOCH + 3;
constexpr int GS_EPOCH_WORDS = 4;
}  // namespace
constexpr int QUEST_GRID_UNIT_WORDS = GS_EPOCH + GS_EPOCH_WORDS;

__device__ __forceinline__ u32 quest_load_acquire(const u32* p) {
  u32 v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Barrier b (1-based) of the G blocks of one unit. The fences make every block's writes before it
// visible to every block after it (the cooperative-groups pattern: the block's stores are ordered
// before thread 0's cumulative fence by __syncthreads). Returns whether this block arrived last.
// A wait of 2^22 polls (~2 s at an L2 round trip each; a barrier takes ~1 us) means a block of the
// unit never started: the kernel traps, so the host gets a launch error instead of a hang.
__device__ __forceinline__ bool quest_unit_barrier(u32* counter, int b, int G, int& lastShared) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const u32 goal = (u32)b * (u32)G;
    const u32 arrived = atomicAdd(counter, 1u) + 1u;
    lastShared = arrived == goal ? 1 : 0;
    for (u32 polls = 0; quest_load_acquire(counter) < goal; ++polls) {
      if (polls == (1u << 22)) asm volatile("trap;");
      __nanosleep(32);
    }
    __threadfence();
  }
  __syncthreads();
  return lastShared != 0;
}

// v10's barrier: as quest_unit_barrier, the counter never reset; it passes once the counter reaches `goal`
// (the launch's base + b · G), compared modulo 2^32.
__device__ __forceinline__ bool quest_unit_barrier_epoch(u32* counter, u32 goal, int& lastShared) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const u32 arrived = atomicAdd(counter, 1u) + 1u;
    lastShared = arrived == goal ? 1 : 0;
    for (u32 polls = 0; (int)(quest_load_acquire(counter) - goal) < 0; ++polls) {
      if (polls == (1u << 22)) asm volatile("trap;");
      __nanosleep(32);
    }
    __threadfence();
  }
  __syncthreads();
  return lastShared != 0;
}

// Clears what the phase before barrier `passes + 2` read: the AND/OR words (before any pass), else
// the histogram of pass `passes - 1` (its first `bins` words). Called by the last block to arrive.
__device__ __forceinline__ void quest_grid_clear_dead(u32* unitScratch, int passes, int bins) {
  if (passes == 0) {
    if (threadIdx.x == 0) {
      unitScratch[GS_NOT_AND] = 0u;
      unitScratch[GS_OR] = 0u;
    }
  } else {
    u32* hist = unitScratch + GS_HIST + (passes - 1) * GRID_HIST_BINS;
    for (int b = threadIdx.x; b < bins; b += GRID_THREADS) hist[b] = 0u;
  }
}

// Phase A from the page bounds: keys[0, hi - lo) = order keys of the scores of pages [lo, hi) of the
// unit; a and o collect the AND and OR of the keys this thread wrote.
__device__ __forceinline__ void quest_grid_score_chunk(const bf16_t* __restrict__ q, const bf16_t* __restrict__ pageMin, const bf16_t* __restrict__ pageMax,
                                                       int D, int unitHeads, int h0, int hk, int pageStride, int lo, int hi, u32* keys, u32& a, u32& o) {
  const int tid = threadIdx.x;
  const int lanes = D / 8;
  const int pagesPerPass = GRID_THREADS / lanes;
  const int sub = tid % lanes;
  const bf16_t* minBase = pageMin + (size_t)hk * pageStride * D + sub * 8;
  const bf16_t* maxBase = pageMax + (size_t)hk * pageStride * D + sub * 8;
  for (int base = lo; base < hi; base += STEP_MAX_PASSES * pagesPerPass) {  // uniform across the block
    uint4 rawMin[STEP_MAX_PASSES], rawMax[STEP_MAX_PASSES];
#pragma unroll
    for (int p = 0; p < STEP_MAX_PASSES; ++p) {
      const int page = base + p * pagesPerPass + tid / lanes;
      if (page < hi) {
        rawMin[p] = *reinterpret_cast<const uint4*>(minBase + (size_t)page * D);
        rawMax[p] = *reinterpret_cast<const uint4*>(maxBase + (size_t)page * D);
      }
    }
#pragma unroll
    for (int p = 0; p < STEP_MAX_PASSES; ++p) {
      const int page = base + p * pagesPerPass + tid / lanes;
      float s = page < hi ? quest_lane_score(rawMin[p], rawMax[p], q, h0, unitHeads, D, sub) : 0.f;
      for (int off = lanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
      if (sub == 0 && page < hi) {
        const u32 key = topk_order_key(s);
        keys[page - lo] = key;
        a &= key;
        o |= key;
      }
    }
  }
}

// A batch's four page sums over each page's `lanes` lanes (D / 8: 16 or 8) as one reduce-scatter (session 8,
// option batchedPageSums): v7 sums each slot's page with its own xor tree (offsets lanes/2 .. 1: 4 shuffles and
// adds per slot at D = 128) and then every lane issues the slot's key store predicated off for all but one. Here
// at offset lanes/2 a lane keeps two slots' sums and sends the other two, at lanes/4 keeps one and sends one, and
// the remaining offsets sum that one: 5 shuffles and adds per batch instead of 16, one key store per lane instead
// of 4 issued. The pairs summed are v7's at every level, each lane adding its own value first as v7's `s += x`,
// and an fp32 add is commutative: every page sum has v7's bits. Returns the slot whose sum this lane holds
// (lanes with sub & (lanes / 4 - 1) == 0 hold one page each).
__device__ __forceinline__ int quest_scatter_page_sums(const float (&part)[STEP_MAX_PASSES], int sub, int lanes, float& sum) {
  static_assert(STEP_MAX_PASSES == 4, "the reduce-scatter halves four slots twice");
  const unsigned full = 0xffffffffu;
  const int half = lanes / 2, quarter = lanes / 4;
  const bool upper = (sub & half) != 0;  // keeps slots 2 and 3
  const float keep0 = upper ? part[2] : part[0], keep1 = upper ? part[3] : part[1];
  const float send0 = upper ? part[0] : part[2], send1 = upper ? part[1] : part[3];
  const float t0 = keep0 + __shfl_xor_sync(full, send0, half);
  const float t1 = keep1 + __shfl_xor_sync(full, send1, half);
  const bool odd = (sub & quarter) != 0;  // keeps the odd slot of its pair
  float s = (odd ? t1 : t0) + __shfl_xor_sync(full, odd ? t0 : t1, quarter);
  for (int off = quarter / 2; off > 0; off >>= 1) s += __shfl_xor_sync(full, s, off);
  sum = s;
  return (upper ? 2 : 0) + (odd ? 1 : 0);
}

// Phase A as quest_grid_score_chunk, with the loads rolled (v7, session 6): each lane's STEP_MAX_PASSES
// load slots are refilled with the next batch's page as soon as the slot's page is scored, so the
// block keeps one batch of bounds in flight while it scores (quest_grid_score_chunk requests batch
// b + 1 only after scoring all of batch b, and the HBM idles meanwhile: from 64K the score phase read
// the bounds at ~1.9 TB/s). Same pages and shuffle order as quest_grid_score_chunk. The scorer gives
// this lane's part of a page's score from its bounds (score(rawMin, rawMax, sub): v7 QuestPlainScorer,
// v8 QuestLightScorer), after start(sub), which runs while the first batch's loads are in flight; so v7
// and v8 share the slots, the refill and the key. BATCHED_SUMS: the batch's page sums as one reduce-scatter
// after its four slots are scored (quest_scatter_page_sums), the same keys. PREFETCH_AHEAD (session 9, option
// rollingPrefetch): each refill also asks L2 for the slot's page two batches on (prefetch.global.L2, no register), so a
// block has about two batches of bounds in flight instead of one; the same loads into the slots, the same keys.
template <typename Scorer, bool BATCHED_SUMS = false, bool PREFETCH_AHEAD = false>
__device__ __forceinline__ void quest_grid_score_chunk_rolled_by(const bf16_t* __restrict__ pageMin, const bf16_t* __restrict__ pageMax,
                                                                 int D, int hk, int pageStride, int lo, int hi, u32* keys, u32& a, u32& o,
                                                                 Scorer& scorer) {
  const int tid = threadIdx.x;
  const int lanes = D / 8;
  const int pagesPerPass = GRID_THREADS / lanes;
  const int batch = STEP_MAX_PASSES * pagesPerPass;
  const int sub = tid % lanes;
  const bf16_t* minBase = pageMin + (size_t)hk * pageStride * D + sub * 8;
  const bf16_t* maxBase = pageMax + (size_t)hk * pageStride * D + sub * 8;
  uint4 rawMin[STEP_MAX_PASSES], rawMax[STEP_MAX_PASSES];
#pragma unroll
  for (int p = 0; p < STEP_MAX_PASSES; ++p) {
    const int page = lo + p * pagesPerPass + tid / lanes;
    if (page < hi) {
      rawMin[p] = *reinterpret_cast<const uint4*>(minBase + (size_t)page * D);
      rawMax[p] = *reinterpret_cast<const uint4*>(maxBase + (size_t)page * D);
    }
  }
  scorer.start(sub);
  for (int base = lo; base < hi; base += batch) {  // uniform across the block
    if constexpr (BATCHED_SUMS) {
      float part[STEP_MAX_PASSES];
#pragma unroll
      for (int p = 0; p < STEP_MAX_PASSES; ++p) {
        const int page = base + p * pagesPerPass + tid / lanes;
        part[p] = page < hi ? scorer.score(rawMin[p], rawMax[p], sub) : 0.f;
        const int next = page + batch;
        if (next < hi) {
          rawMin[p] = *reinterpret_cast<const uint4*>(minBase + (size_t)next * D);
          rawMax[p] = *reinterpret_cast<const uint4*>(maxBase + (size_t)next * D);
        }
        if constexpr (PREFETCH_AHEAD) {
          if (next + batch < hi) {
            asm volatile("prefetch.global.L2 [%0];" ::"l"(minBase + (size_t)(next + batch) * D));
            asm volatile("prefetch.global.L2 [%0];" ::"l"(maxBase + (size_t)(next + batch) * D));
          }
        }
      }
      float s;
      const int p = quest_scatter_page_sums(part, sub, lanes, s);
      const int page = base + p * pagesPerPass + tid / lanes;
      if ((sub & (lanes / 4 - 1)) == 0 && page < hi) {
        const u32 key = topk_order_key(s);
        keys[page - lo] = key;
        a &= key;
        o |= key;
      }
    } else {
#pragma unroll
      for (int p = 0; p < STEP_MAX_PASSES; ++p) {
        const int page = base + p * pagesPerPass + tid / lanes;
        float s = page < hi ? scorer.score(rawMin[p], rawMax[p], sub) : 0.f;
        // The slot is free once scored: ask for its page of the next batch before the shuffles wait.
        const int next = page + batch;
        if (next < hi) {
          rawMin[p] = *reinterpret_cast<const uint4*>(minBase + (size_t)next * D);
          rawMax[p] = *reinterpret_cast<const uint4*>(maxBase + (size_t)next * D);
        }
        for (int off = lanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (sub == 0 && page < hi) {
          const u32 key = topk_order_key(s);
          keys[page - lo] = key;
          a &= key;
          o |= key;
        }
      }
    }
  }
}

// v7's lane score: quest_lane_score, nothing to start.
struct QuestPlainScorer {
  const bf16_t* q;
  int h0, unitHeads, D;
  __device__ __forceinline__ void start(int) {}
  __device__ __forceinline__ float score(uint4 rawMin, uint4 rawMax, int sub) const {
    return quest_lane_score(rawMin, rawMax, q, h0, unitHeads, D, sub);
  }
};

// v7's phase A: the rolled loop with quest_lane_score; the same keys, a and o as quest_grid_score_chunk.
// BATCHED_SUMS: the page sums as one reduce-scatter per batch (session 9; the same sums).
template <bool BATCHED_SUMS = false>
__device__ __forceinline__ void quest_grid_score_chunk_rolled(const bf16_t* __restrict__ q, const bf16_t* __restrict__ pageMin,
                                                              const bf16_t* __restrict__ pageMax, int D, int unitHeads, int h0, int hk,
                                                              int pageStride, int lo, int hi, u32* keys, u32& a, u32& o) {
  QuestPlainScorer scorer{q, h0, unitHeads, D};
  quest_grid_score_chunk_rolled_by<QuestPlainScorer, BATCHED_SUMS>(pageMin, pageMax, D, hk, pageStride, lo, hi, keys, a, o, scorer);
}

// v8 (session 6): one lane's part of a page score as quest_lane_score computes it, with lighter work per
// page. The lane's HEADS x 8 query values are unpacked to fp32 once (qf), and each head's sign masks
// (neg: 0xffff in a bf16 half whose query is negative) pick, for each dim, the bound whose product is
// the larger: q >= 0 -> max, q < 0 -> min, one LOP3 per two dims instead of two products and a max per
// dim. The bf16 x bf16 products are exact in fp32 (16-bit significands) and rounding is monotone, so
// for bounds with min <= max (quest_refresh_page writes them so) the picked product equals
// fmaxf(q·min, q·max) up to the sign of a zero, which leaves the sum unchanged (s starts at +0 and never
// becomes -0 under round-to-nearest). Heads first, then dims in order, no fused multiply-add: v3's
// summation order, so the same fp32 score. Where a picked product is NaN (0·inf, a NaN bound or query,
// or inf - inf in the sum) the caller recomputes the lane with quest_lane_score, whose fmaxf drops a NaN.
// NaN by its bits (exponent all ones, mantissa not zero): no dependence on a math header's isnan.
__device__ __forceinline__ bool quest_is_nan(float x) { return (__float_as_uint(x) & 0x7fffffffu) > 0x7f800000u; }

template <int HEADS>
struct QuestLightQuery {
  float qf[HEADS][8];
  u32 neg[HEADS][4];
};

template <int HEADS>
__device__ __forceinline__ void quest_light_query_load(const bf16_t* __restrict__ q, int h0, int D, int sub, QuestLightQuery<HEADS>& lq) {
#pragma unroll
  for (int j = 0; j < HEADS; ++j) {
    const uint4 rawQ = __ldg(reinterpret_cast<const uint4*>(q + (size_t)(h0 + j) * D + sub * 8));
    const u32 wq[4] = {rawQ.x, rawQ.y, rawQ.z, rawQ.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      lq.qf[j][2 * e] = __uint_as_float(wq[e] << 16);
      lq.qf[j][2 * e + 1] = __uint_as_float(wq[e] & 0xffff0000u);
      lq.neg[j][e] = ((wq[e] >> 15) & 0x00010001u) * 0xffffu;  // each half's sign bit spread over the half
    }
  }
}

// FUSED (session 9, option fusedProducts, measurement only): each product and its add as one fused multiply-add,
// 5 operations per two dims instead of 7. A bf16 x bf16 product has a 16-bit significand, so it is exact in fp32
// whenever it lies in fp32's normal range, and then fma(q, b, s) = fadd(s, fmul(q, b)) bit for bit; they can differ
// only for products below 2^-126 (fmul rounds a subnormal product, then fadd rounds again) or above FLT_MAX (fmul
// gives inf, fma may not). Not exact for such extreme queries or bounds: not a default candidate without a guard.
template <int HEADS, bool FUSED = false>
__device__ __forceinline__ float quest_lane_score_light(uint4 rawMin, uint4 rawMax, const QuestLightQuery<HEADS>& lq) {
  const u32 wMin[4] = {rawMin.x, rawMin.y, rawMin.z, rawMin.w}, wMax[4] = {rawMax.x, rawMax.y, rawMax.z, rawMax.w};
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < HEADS; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const u32 picked = (wMin[e] & lq.neg[j][e]) | (wMax[e] & ~lq.neg[j][e]);
      if constexpr (FUSED) {
        s = __fmaf_rn(lq.qf[j][2 * e], __uint_as_float(picked << 16), s);
        s = __fmaf_rn(lq.qf[j][2 * e + 1], __uint_as_float(picked & 0xffff0000u), s);
      } else {
        s = __fadd_rn(s, __fmul_rn(lq.qf[j][2 * e], __uint_as_float(picked << 16)));
        s = __fadd_rn(s, __fmul_rn(lq.qf[j][2 * e + 1], __uint_as_float(picked & 0xffff0000u)));
      }
    }
  }
  return s;
}

// v8's lane score for units of HEADS query heads: the query unpacked to registers at start (while the
// first batch's bounds are in flight), quest_lane_score_light per page, quest_lane_score where that is NaN.
template <int HEADS, bool FUSED = false>
struct QuestLightScorer {
  const bf16_t* q;
  int h0, D;
  QuestLightQuery<HEADS> lq;
  __device__ __forceinline__ void start(int sub) { quest_light_query_load<HEADS>(q, h0, D, sub, lq); }
  __device__ __forceinline__ float score(uint4 rawMin, uint4 rawMax, int sub) const {
    float s = quest_lane_score_light<HEADS, FUSED>(rawMin, rawMax, lq);
    if (quest_is_nan(s)) s = quest_lane_score(rawMin, rawMax, q, h0, HEADS, D, sub);
    return s;
  }
};

// Phase A as quest_grid_score_chunk_rolled (v7: same pages, slots, refills and shuffle order) with
// quest_lane_score_light for units of HEADS query heads; the same keys, a and o.
template <int HEADS, bool BATCHED_SUMS = false, bool FUSED = false, bool PREFETCH_AHEAD = false>
__device__ __forceinline__ void quest_grid_score_chunk_light(const bf16_t* __restrict__ q, const bf16_t* __restrict__ pageMin,
                                                             const bf16_t* __restrict__ pageMax, int D, int h0, int hk,
                                                             int pageStride, int lo, int hi, u32* keys, u32& a, u32& o) {
  QuestLightScorer<HEADS, FUSED> scorer{q, h0, D, {}};
  quest_grid_score_chunk_rolled_by<QuestLightScorer<HEADS, FUSED>, BATCHED_SUMS, PREFETCH_AHEAD>(pageMin, pageMax, D, hk, pageStride, lo, hi, keys, a,
                                                                                                 o, scorer);
}

// v8's phase A: the light scorer for units of 1, 2 or 4 query heads (their query fits in registers
// beside v7's load slots), v7's rolled scorer for other unit sizes.
__device__ __forceinline__ void quest_grid_score_chunk_light_any(const bf16_t* __restrict__ q, const bf16_t* __restrict__ pageMin,
                                                                 const bf16_t* __restrict__ pageMax, int D, int unitHeads, int h0, int hk,
                                                                 int pageStride, int lo, int hi, u32* keys, u32& a, u32& o) {
  if (unitHeads == 4) {
    quest_grid_score_chunk_light<4>(q, pageMin, pageMax, D, h0, hk, pageStride, lo, hi, keys, a, o);
  } else if (unitHeads == 1) {
    quest_grid_score_chunk_light<1>(q, pageMin, pageMax, D, h0, hk, pageStride, lo, hi, keys, a, o);
  } else if (unitHeads == 2) {
    quest_grid_score_chunk_light<2>(q, pageMin, pageMax, D, h0, hk, pageStride, lo, hi, keys, a, o);
  } else {
    quest_grid_score_chunk_rolled(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
  }
}

// Phase A's exchange: this block's AND (a) and OR (o) of its keys, per thread, added to the unit's words.
__device__ __forceinline__ void quest_grid_publish_and_or(u32 a, u32 o, u32* __restrict__ unitScratch, TopKStagedShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned full = 0xffffffffu;
  a = __reduce_and_sync(full, a);
  o = __reduce_or_sync(full, o);
  if (tid == 0) {
    sh.andBits = 0xffffffffu;
    sh.orBits = 0u;
  }
  __syncthreads();  // also: the keys written in phase A are visible to the whole block from here
  if (lane == 0) {
    atomicAnd(&sh.andBits, a);
    atomicOr(&sh.orBits, o);
  }
  __syncthreads();
  if (tid == 0) {
    atomicOr(unitScratch + GS_NOT_AND, ~sh.andBits);
    atomicOr(unitScratch + GS_OR, sh.orBits);
  }
}

// A radix pass's part before its barrier: this block's histogram of its keys that match prefix under
// mask, by bits [shift, shift + log2(bins)), added to the unit's histogram `hist`.
__device__ __forceinline__ void quest_grid_pass_add(const u32* keys, int n, u32 mask, u32 prefix, int shift, int bins, u32* hist,
                                                    TopKStagedShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned full = 0xffffffffu;
  for (int b = tid; b < bins; b += GRID_THREADS) sh.hist[b] = 0u;
  __syncthreads();
  for (int base = 0; base < n; base += GRID_THREADS) {
    const int i = base + tid;
    int bin = -1;
    if (i < n) {
      const u32 key = keys[i];
      if ((key & mask) == prefix) bin = (int)((key >> shift) & (u32)(bins - 1));
    }
    // Lanes of a warp in one bin add once (similar scores crowd a few bins).
    const unsigned peers = __match_any_sync(full, bin);
    if (bin >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.hist[bin], (u32)__popc(peers));
  }
  __syncthreads();
  for (int b = tid; b < bins; b += GRID_THREADS) {
    const u32 c = sh.hist[b];
    if (c != 0u) atomicAdd(hist + b, c);
  }
}

// A radix pass's part after its barrier: the unit's histogram into sh.hist, then the bin of the
// `remaining`-th key from the top (sh.bin, sh.binCount, sh.remaining).
__device__ __forceinline__ void quest_grid_pass_read(const u32* hist, int bins, int remaining, TopKStagedShared& sh) {
  const int tid = threadIdx.x;
  {
    // Every load of the unit's histogram in flight before the first is stored (one L2 round trip).
    constexpr int PER_THREAD = GRID_HIST_BINS / GRID_THREADS;
    u32 counts[PER_THREAD];
#pragma unroll
    for (int j = 0; j < PER_THREAD; ++j) counts[j] = tid + j * GRID_THREADS < bins ? __ldcg(hist + tid + j * GRID_THREADS) : 0u;
#pragma unroll
    for (int j = 0; j < PER_THREAD; ++j) {
      if (tid + j * GRID_THREADS < bins) sh.hist[tid + j * GRID_THREADS] = counts[j];
    }
  }
  __syncthreads();
  topk_staged_find_bin<GRID_THREADS>(bins, remaining, sh);
}

// Where a step's time goes inside one launch (session 9, bench/quest-phases.ts): thread 0 of each block writes the
// %globaltimer (ns) and clock64 at the ends of the step's phases (QUEST_PHASE_*), and at QUEST_PHASE_BARRIERS the unit
// barriers the block passed, at QUEST_PHASE_GUESS_HELD whether v9's guessed pass held. Only the stamped entry
// (quest_grid_step_stamped4b) passes QuestPhaseStamps; every other entry passes QuestNoStamps, which compiles to nothing.
constexpr int QUEST_PHASE_START = 0, QUEST_PHASE_SCORED = 1, QUEST_PHASE_AT_FIRST_BARRIER = 2, QUEST_PHASE_PAST_FIRST_BARRIER = 3,
              QUEST_PHASE_FIRST_PASS_READ = 4, QUEST_PHASE_AT_FINAL_BARRIER = 5, QUEST_PHASE_PAST_FINAL_BARRIER = 6, QUEST_PHASE_END = 7,
              QUEST_PHASE_BARRIERS = 8, QUEST_PHASE_GUESS_HELD = 9, QUEST_PHASE_ALL_SCORED = 10, QUEST_PHASE_SLOTS = 11;
// QUEST_PHASE_SCORED is thread 0's (its warp's) end of scoring; QUEST_PHASE_ALL_SCORED the block's, after a __syncthreads
// that only the stamped entries run.
struct QuestNoStamps {
  static constexpr bool ACTIVE = false;
  __device__ __forceinline__ void at(int) const {}
  __device__ __forceinline__ void value(int, unsigned long long) const {}
};
struct QuestPhaseStamps {
  static constexpr bool ACTIVE = true;
  unsigned long long* out;  // [units, GRID_MAX_BLOCKS, 2 (globaltimer, clock64), QUEST_PHASE_SLOTS]; blocks past G untouched
  __device__ __forceinline__ unsigned long long* block() const {
    return out + ((size_t)blockIdx.y * GRID_MAX_BLOCKS + blockIdx.x) * 2 * QUEST_PHASE_SLOTS;
  }
  __device__ __forceinline__ void at(int phase) const {
    if (threadIdx.x == 0) {
      unsigned long long ns;
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
      block()[phase] = ns;
      block()[QUEST_PHASE_SLOTS + phase] = (unsigned long long)clock64();
    }
  }
  __device__ __forceinline__ void value(int slot, unsigned long long v) const {
    if (threadIdx.x == 0) block()[slot] = v;
  }
};

// A select's unit barriers and candidate counter: v5's (reset by the last block to leave the launch) or,
// with EPOCH, v10's (never reset: barrier b of a launch passes at base + b · G arrivals, candidate slots
// count from candBase; the launch's last block to arrive at its final barrier stores both ends for the next).
template <bool EPOCH>
struct QuestGridSync {
  u32* scratch;
  int G;
  u32 base, candBase;
  __device__ __forceinline__ bool arrive(int b, int& lastShared) const {
    if (EPOCH) return quest_unit_barrier_epoch(scratch + GS_E_BARRIER, base + (u32)b * (u32)G, lastShared);
    return quest_unit_barrier(scratch + GS_BARRIER, b, G, lastShared);
  }
  __device__ __forceinline__ u32* candidates() const { return scratch + (EPOCH ? GS_E_CAND : GS_CANDIDATES); }
};

// Phases C and D for one block of one unit, once the cut is known: keys matching prefix under mask
// form the k-th key's bin, of binCount keys of which `remaining` are taken; every key above it is
// taken. `barrier` counts the unit barriers passed so far; the last block to arrive at the final one
// calls clearDead() (what the phase before it finished reading). Writes the unit's list.
template <bool EPOCH, class ClearDead, class Stamps = QuestNoStamps>
__device__ __forceinline__ void quest_grid_finish(u32* keys, int lo, int hi, int take, int remaining, int binCount, u32 prefix, u32 mask,
                                                  u32* __restrict__ unitScratch, const QuestGridSync<EPOCH>& sync, int barrier,
                                                  int* __restrict__ list, int pageSize, TopKStagedShared& sh, int& lastShared,
                                                  ClearDead clearDead, Stamps stamps = Stamps{}) {
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned full = 0xffffffffu;
  const int G = gridDim.x;
  const int n = hi - lo;
  // C. The bin is taken whole, or ranked exactly (<= GRID_RANK_LIMIT keys), or one key value of which
  // the lowest-indexed `remaining` are taken.
  const bool whole = binCount == remaining;
  const bool ranked = !whole && binCount <= GRID_RANK_LIMIT;
  if (tid == 0) {
    sh.candidates = 0;  // this block's keys above the bin
    sh.total = 0;       // this block's keys in the bin
  }
  __syncthreads();
  {
    int above = 0, inBin = 0;
    for (int base = 0; base < n; base += GRID_THREADS) {
      const int i = base + tid;
      const u32 key = i < n ? keys[i] : 0u;
      const bool up = i < n && (key & mask) > prefix;
      const bool in = i < n && (key & mask) == prefix;
      above += up ? 1 : 0;
      inBin += in ? 1 : 0;
      if (ranked) {
        const unsigned m = __ballot_sync(full, in);
        int at = 0;
        if (lane == 0 && m != 0u) at = (int)(atomicAdd(sync.candidates(), (u32)__popc(m)) - sync.candBase);
        at = __shfl_sync(full, at, 0);
        if (in) {
          const int slot = at + __popc(m & ((1u << lane) - 1u));
          unitScratch[GS_CAND_KEY + slot] = key;
          unitScratch[GS_CAND_IDX + slot] = (u32)(lo + i);
        }
      }
    }
    above = (int)__reduce_add_sync(full, (unsigned)above);
    inBin = (int)__reduce_add_sync(full, (unsigned)inBin);
    if (lane == 0) {
      atomicAdd(&sh.candidates, above);
      atomicAdd(&sh.total, inBin);
    }
  }
  __syncthreads();
  if (tid == 0) {
    unitScratch[GS_ABOVE + blockIdx.x] = (u32)sh.candidates;
    unitScratch[GS_IN_BIN + blockIdx.x] = (u32)sh.total;
  }
  stamps.at(QUEST_PHASE_AT_FINAL_BARRIER);
  const bool lastAtFinal = sync.arrive(++barrier, lastShared);
  stamps.at(QUEST_PHASE_PAST_FINAL_BARRIER);
  if (lastAtFinal) clearDead();

  // D. This block's first list slot: the pages the blocks before it take. The counts, the candidate
  // count and (a ranked bin) the candidate slots are all requested before any is used: one round trip.
  u32 candKey = 0u, candIdx = 0u;
  const int c = ranked ? (int)(__ldcg(sync.candidates()) - sync.candBase) : 0;
  if (ranked && tid < GRID_RANK_LIMIT) {
    candKey = __ldcg(unitScratch + GS_CAND_KEY + tid);  // slots past the count hold stale words, unused
    candIdx = __ldcg(unitScratch + GS_CAND_IDX + tid);
  }
  if (tid < 32) {
    const int b = tid;
    int above = b < (int)blockIdx.x ? (int)__ldcg(unitScratch + GS_ABOVE + b) : 0;
    int inBin = b < (int)blockIdx.x ? (int)__ldcg(unitScratch + GS_IN_BIN + b) : 0;
    above = (int)__reduce_add_sync(full, (unsigned)above);
    inBin = (int)__reduce_add_sync(full, (unsigned)inBin);
    if (tid == 0) {
      sh.bin = above;
      sh.binCount = inBin;
    }
  }
  __syncthreads();
  int before = sh.bin;
  const int inBinBefore = sh.binCount;
  __syncthreads();  // sh.bin / sh.binCount are not read again; keep the reads ahead of any rewrite
  if (whole) {
    before += inBinBefore;
  } else if (!ranked) {
    // One key value: the blocks before hold inBinBefore of it; this block keeps the first `quota` of its own.
    before += min(inBinBefore, remaining);
    const int quota = max(0, remaining - inBinBefore);
    topk_ordered_pass<GRID_THREADS>(
        n, [&](int i) { return keys[i] == prefix; },
        [&](int i, int rank) {
          if (rank >= quota) keys[i] = 0u;
        },
        sh);
  } else {
    if (tid < c) {
      sh.candKey[tid] = candKey;
      sh.candIdx[tid] = (int)candIdx;
    }
    __syncthreads();
    bool takenBefore = false;
    if (tid < c) {
      const u32 key = sh.candKey[tid];
      const int idx = sh.candIdx[tid];
      const bool taken = topk_candidate_rank(key, idx, c, sh) < remaining;
      if (!taken && idx >= lo && idx < hi) keys[idx - lo] = 0u;
      takenBefore = taken && idx < lo;
    }
    before += __syncthreads_count(takenBefore);
  }
  topk_ordered_pass<GRID_THREADS>(
      n, [&](int i) { const u32 key = keys[i]; return key != 0u && (key & mask) >= prefix; },
      [&](int i, int rank) {
        list[4 + 2 * (before + rank)] = (lo + i) * pageSize;
        list[5 + 2 * (before + rank)] = (before + rank) * pageSize;
      },
      sh);
  if (blockIdx.x == 0 && tid == 0) quest_list_header(list, take, pageSize);
  stamps.value(QUEST_PHASE_BARRIERS, (unsigned long long)barrier);
  if (EPOCH) {
    // The next launch's bases (every block of this one read its own at its start, before any arrival; the
    // candidate counter is final: every block appended before it arrived). No exit atomic, no fence.
    if (lastAtFinal && tid == 0) {
      unitScratch[GS_E_BASE] = sync.base + (u32)barrier * (u32)G;
      if (ranked) unitScratch[GS_E_CAND_BASE] = sync.candBase + (u32)c;
    }
    return;
  }
  // The last block to leave puts the counters back to 0 (every block has passed every barrier and read
  // the candidates by then).
  if (tid == 0) {
    __threadfence();
    if (atomicAdd(unitScratch + GS_EXITS, 1u) == (u32)G - 1u) {
      unitScratch[GS_BARRIER] = 0u;
      unitScratch[GS_EXITS] = 0u;
      unitScratch[GS_CANDIDATES] = 0u;
    }
  }
}

// Phases A (the AND/OR part) to D for one block of one unit: keys[0, hi - lo) hold the order keys of
// pages [lo, hi) (never 0: NaN's key is 1), a and o this thread's AND and OR of them; 0 < take < pages.
// Every block of the unit calls it with the same take and pages. Writes the unit's list.
__device__ void quest_grid_select_chunk(u32* keys, int lo, int hi, int pages, int take, u32 a, u32 o, u32* __restrict__ unitScratch,
                                        int* __restrict__ list, int pageSize, TopKStagedShared& sh, int& lastShared) {
  const int G = gridDim.x;
  const int n = hi - lo;
  const QuestGridSync<false> sync{unitScratch, G, 0u, 0u};
  quest_grid_publish_and_or(a, o, unitScratch, sh);
  int barrier = 0;
  sync.arrive(++barrier, lastShared);
  const u32 andBits = ~__ldcg(unitScratch + GS_NOT_AND), orBits = __ldcg(unitScratch + GS_OR);

  // B. Bits above `top` are common to every key: they form the prefix from the start. Invariant:
  // binCount keys match prefix under mask, remaining of them are still to take (remaining <= binCount),
  // every key above the prefix is taken.
  const u32 diff = andBits ^ orBits;
  int top = diff == 0u ? -1 : 31 - __clz(diff);
  u32 mask = top >= 31 ? 0u : (0xffffffffu << (top + 1));
  u32 prefix = andBits & mask;
  int remaining = take, binCount = pages;
  int passes = 0, lastBins = 0;
  while (top >= 0 && binCount > GRID_RANK_LIMIT && binCount != remaining) {
    const int shift = max(0, top - (TOPK_RADIX_BITS - 1));
    const int bins = 1 << (top - shift + 1);
    u32* hist = unitScratch + GS_HIST + passes * GRID_HIST_BINS;
    quest_grid_pass_add(keys, n, mask, prefix, shift, bins, hist, sh);
    if (sync.arrive(++barrier, lastShared)) quest_grid_clear_dead(unitScratch, passes, lastBins);
    quest_grid_pass_read(hist, bins, remaining, sh);
    prefix |= (u32)sh.bin << shift;
    mask |= (u32)(bins - 1) << shift;
    remaining = sh.remaining;
    binCount = sh.binCount;
    __syncthreads();  // sh.bin etc. are rewritten by the next pass
    top = shift - 1;
    lastBins = bins;
    ++passes;
  }
  quest_grid_finish(keys, lo, hi, take, remaining, binCount, prefix, mask, unitScratch, sync, barrier, list, pageSize, sh, lastShared,
                    [&]() { quest_grid_clear_dead(unitScratch, passes, lastBins); });
}

// Clears what the blocks read after the barrier before the one just passed (called by the last block to
// arrive): the AND/OR words (readAndOr) and the histogram in slot readSlot (>= 0; its first readBins words).
__device__ __forceinline__ void quest_grid_clear_read(u32* unitScratch, bool readAndOr, int readSlot, int readBins) {
  if (readAndOr && threadIdx.x == 0) {
    unitScratch[GS_NOT_AND] = 0u;
    unitScratch[GS_OR] = 0u;
  }
  if (readSlot >= 0) {
    u32* hist = unitScratch + GS_HIST + readSlot * GRID_HIST_BINS;
    for (int b = threadIdx.x; b < readBins; b += GRID_THREADS) hist[b] = 0u;
  }
}

// v9 (QuestKernels option guessedPass, not the default): quest_grid_select_chunk whose first radix pass
// does not wait for this step's AND/OR. It runs on the unit's key range at its previous select (kept
// in GS_GUESS_*), before the first barrier, and this step's AND/OR travels beside it: after that
// barrier each block reads the histogram and the AND/OR in one round trip. The guessed pass counts
// the keys matching the guessed prefix under its mask; it is a valid first pass when every key does,
// i.e. when this step's AND and OR agree with that prefix on the mask's bits (then bits below the
// pass that every key shares join the prefix, as v5's common bits above its first pass). Otherwise it
// is dropped and the select goes on as v5's from this step's AND/OR (the same barriers as v5, plus the
// wasted pass). Without a stored guess (the first select on this scratch) it is v5's select. Either
// way the same cut invariant as v5 (binCount keys match prefix under mask, remaining of them to take,
// every key above taken), so the same phases C-D and lists. Consecutive decode steps of a layer score
// similar rows, so their keys share sign and exponent: the guess usually holds, and the step passes
// two barriers instead of three. Block 0 stores this step's range as the next guess after the first
// barrier, when every block has read the old one. With EPOCH (v10) its barriers and candidate counter
// are v10's (QuestGridSync): no exit atomic.
template <bool EPOCH, class Stamps = QuestNoStamps>
__device__ void quest_grid_select_chunk_guessed(u32* keys, int lo, int hi, int pages, int take, u32 a, u32 o, u32* __restrict__ unitScratch,
                                                int* __restrict__ list, int pageSize, TopKStagedShared& sh, int& lastShared,
                                                Stamps stamps = Stamps{}) {
  const int tid = threadIdx.x;
  const int G = gridDim.x;
  const int n = hi - lo;
  // Requested before the block's AND/OR exchange, which hides part of the round trip.
  const u32 guessSet = __ldcg(unitScratch + GS_GUESS_SET);
  const u32 guessAnd = ~__ldcg(unitScratch + GS_GUESS_NOT_AND), guessOr = __ldcg(unitScratch + GS_GUESS_OR);
  const QuestGridSync<EPOCH> sync{unitScratch, G, EPOCH ? __ldcg(unitScratch + GS_E_BASE) : 0u, EPOCH ? __ldcg(unitScratch + GS_E_CAND_BASE) : 0u};
  quest_grid_publish_and_or(a, o, unitScratch, sh);
  int barrier = 0, slot = 0;
  int remaining = take, binCount = pages;
  u32 andBits, orBits, mask = 0u, prefix = 0u;
  int top = -1;
  bool guessHeld = false;
  int readSlot = -1, readBins = 0;  // the histogram read after the last barrier passed
  const u32 guessDiff = guessAnd ^ guessOr;
  if (guessSet != 0u && guessDiff != 0u) {
    const int gTop = 31 - __clz(guessDiff);
    const u32 gMask = gTop >= 31 ? 0u : (0xffffffffu << (gTop + 1));
    const u32 gPrefix = guessAnd & gMask;
    const int shift = max(0, gTop - (TOPK_RADIX_BITS - 1));
    const int bins = 1 << (gTop - shift + 1);
    u32* hist = unitScratch + GS_HIST;
    quest_grid_pass_add(keys, n, gMask, gPrefix, shift, bins, hist, sh);
    stamps.at(QUEST_PHASE_AT_FIRST_BARRIER);
    sync.arrive(++barrier, lastShared);  // nothing was read before it
    stamps.at(QUEST_PHASE_PAST_FIRST_BARRIER);
    const u32 notAndWord = __ldcg(unitScratch + GS_NOT_AND), orWord = __ldcg(unitScratch + GS_OR);
    quest_grid_pass_read(hist, bins, remaining, sh);
    andBits = ~notAndWord;
    orBits = orWord;
    readSlot = 0;
    readBins = bins;
    slot = 1;
    guessHeld = (((andBits ^ gPrefix) | (orBits ^ gPrefix)) & gMask) == 0u;
    if (guessHeld) {
      prefix = gPrefix | ((u32)sh.bin << shift);
      mask = gMask | ((u32)(bins - 1) << shift);
      remaining = sh.remaining;
      binCount = sh.binCount;
      const u32 below = shift == 0 ? 0u : (0xffffffffu >> (32 - shift));
      const u32 diffBelow = (andBits ^ orBits) & below;
      top = diffBelow == 0u ? -1 : 31 - __clz(diffBelow);
      const u32 common = below & ~(top < 0 ? 0u : (0xffffffffu >> (31 - top)));
      mask |= common;
      prefix |= andBits & common;
    }
    __syncthreads();  // sh.bin etc. are rewritten by the next pass
    stamps.at(QUEST_PHASE_FIRST_PASS_READ);
  } else {
    sync.arrive(++barrier, lastShared);
    andBits = ~__ldcg(unitScratch + GS_NOT_AND);
    orBits = __ldcg(unitScratch + GS_OR);
  }
  if (!guessHeld) {
    // v5's B from this step's AND/OR.
    const u32 diff = andBits ^ orBits;
    top = diff == 0u ? -1 : 31 - __clz(diff);
    mask = top >= 31 ? 0u : (0xffffffffu << (top + 1));
    prefix = andBits & mask;
  }
  stamps.value(QUEST_PHASE_GUESS_HELD, guessHeld ? 1ull : 0ull);
  if (blockIdx.x == 0 && tid == 0) {
    unitScratch[GS_GUESS_NOT_AND] = ~andBits;
    unitScratch[GS_GUESS_OR] = orBits;
    unitScratch[GS_GUESS_SET] = 1u;
  }
  bool readAndOr = true;
  while (top >= 0 && binCount > GRID_RANK_LIMIT && binCount != remaining) {
    const int shift = max(0, top - (TOPK_RADIX_BITS - 1));
    const int bins = 1 << (top - shift + 1);
    u32* hist = unitScratch + GS_HIST + slot * GRID_HIST_BINS;
    quest_grid_pass_add(keys, n, mask, prefix, shift, bins, hist, sh);
    if (sync.arrive(++barrier, lastShared)) quest_grid_clear_read(unitScratch, readAndOr, readSlot, readBins);
    readAndOr = false;
    readSlot = slot;
    readBins = bins;
    quest_grid_pass_read(hist, bins, remaining, sh);
    prefix |= (u32)sh.bin << shift;
    mask |= (u32)(bins - 1) << shift;
    remaining = sh.remaining;
    binCount = sh.binCount;
    __syncthreads();  // sh.bin etc. are rewritten by the next pass
    top = shift - 1;
    ++slot;
  }
  quest_grid_finish(keys, lo, hi, take, remaining, binCount, prefix, mask, unitScratch, sync, barrier, list, pageSize, sh, lastShared,
                    [&]() { quest_grid_clear_read(unitScratch, readAndOr, readSlot, readBins); }, stamps);
}

// This block's chunk of a unit's pages [0, pages) split over gridDim.x blocks.
__device__ __forceinline__ void quest_grid_chunk(int pages, int& lo, int& hi) {
  const int chunk = (pages + gridDim.x - 1) / gridDim.x;
  lo = min(pages, (int)blockIdx.x * chunk);
  hi = min(pages, lo + chunk);
}

// The part of a multi-block step (v5-v8, v6) before any scoring: block 0 of each KV head's first unit
// refreshes page refreshPage (>= pages, or < 0: none) over rows up to rowsEnd; take <= 0 or take >=
// pages: block 0 writes the list unscored (every page, or none) and the step is done (true).
// PREFETCHED_REFRESH: the refresh as quest_refresh_page_prefetched (the same bounds).
template <bool PREFETCHED_REFRESH = false>
__device__ __forceinline__ bool quest_grid_step_unscored(bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax,
                                                         const bf16_t* __restrict__ k, int D, int g, int h0, int hk, int kvStride,
                                                         int pageStride, int pages, int take, int pageSize, int refreshPage, int rowsEnd,
                                                         int* list) {
  const int tid = threadIdx.x;
  if (blockIdx.x == 0 && refreshPage >= 0 && h0 % g == 0 && tid < D) {
    if constexpr (PREFETCHED_REFRESH) {
      quest_refresh_page_prefetched(k, pageMin, pageMax, D, kvStride, pageStride, pageSize, refreshPage, hk, rowsEnd, tid);
    } else {
      quest_refresh_page(k, pageMin, pageMax, D, kvStride, pageStride, pageSize, refreshPage, hk, rowsEnd, tid);
    }
  }
  if (take <= 0 || take >= pages) {
    if (blockIdx.x == 0) {
      if (take > 0) {
        for (int page = tid; page < pages; page += GRID_THREADS) {
          list[4 + 2 * page] = page * pageSize;
          list[5 + 2 * page] = page * pageSize;
        }
      }
      if (tid == 0) quest_list_header(list, max(0, min(take, pages)), pageSize);
    }
    return true;
  }
  return false;
}

// FIXED_HEADS of quest_grid_step_body with LIGHT_SCORES: 0 = v8's run-time dispatch over unit sizes (light
// scorers for 1, 2 and 4 heads, v7's for others); 1, 2 or 4 = the light scorer for units of exactly that many
// heads alone; 7 or 8 = v7's scorer for units of exactly that many heads (their query does not fit in registers
// beside the load slots, so v8 scores them as v7; a constant head count drops the per-head guard, session 9 for
// 7); QUEST_ANY_PLAIN_HEADS = v7's scorer for any unit size (3, 5, 6, 7) with no light scorer compiled in. An
// entry with FIXED_HEADS != 0 carries one scorer only (session 7: the step paid ~4 us for v8's four), and the
// launcher runs it only for its unit size. BATCHED_SUMS (with FIXED_HEADS > 0): the batch's page sums as one
// reduce-scatter (quest_scatter_page_sums).
constexpr int QUEST_ANY_PLAIN_HEADS = -1;

// grid (G, units), block (GRID_THREADS), dynamic shared memory ceil(pages / G) · 4 bytes. As
// quest_step (v4): block 0 of each KV head's first unit refreshes page refreshPage (>= pages, or < 0:
// none) over rows up to rowsEnd; take <= 0 or take >= pages: block 0 writes the list unscored.
template <bool ROLLED_SCORES, bool LIGHT_SCORES = false, bool GUESSED_PASS = false, bool EPOCH = false, int FIXED_HEADS = 0,
          bool BATCHED_SUMS = false, bool FUSED_PRODUCTS = false, bool PREFETCHED_REFRESH = false, bool PREFETCH_AHEAD = false,
          class Stamps = QuestNoStamps>
__device__ __forceinline__ void quest_grid_step_body(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    u32* __restrict__ scratch, int* __restrict__ segs, int D, int g, int unitHeads, int kvStride, int pageStride, int pages, int segStride,
    int take, int pageSize, int refreshPage, int rowsEnd, TopKStagedShared& sh, int& lastShared, u32* keys, Stamps stamps = Stamps{}) {
  static_assert(!BATCHED_SUMS || FIXED_HEADS > 0, "batched page sums come with the scorer of one unit size");
  static_assert(!FUSED_PRODUCTS || FIXED_HEADS == 1 || FIXED_HEADS == 2 || FIXED_HEADS == 4, "fused products come with a light scorer of one unit size");
  static_assert(!PREFETCH_AHEAD || (BATCHED_SUMS && (FIXED_HEADS == 1 || FIXED_HEADS == 2 || FIXED_HEADS == 4)),
                "the rolling prefetch comes with a batched light scorer of one unit size");
  stamps.at(QUEST_PHASE_START);
  const int unit = blockIdx.y;
  const int h0 = unit * unitHeads;
  const int hk = h0 / g;
  int* list = segs + (size_t)unit * segStride;
  if (quest_grid_step_unscored<PREFETCHED_REFRESH>(pageMin, pageMax, k, D, g, h0, hk, kvStride, pageStride, pages, take, pageSize, refreshPage,
                                                   rowsEnd, list)) {
    return;
  }
  int lo, hi;
  quest_grid_chunk(pages, lo, hi);
  u32 a = 0xffffffffu, o = 0u;
  if (LIGHT_SCORES) {
    if constexpr (FIXED_HEADS == 1 || FIXED_HEADS == 2 || FIXED_HEADS == 4) {
      quest_grid_score_chunk_light<FIXED_HEADS, BATCHED_SUMS, FUSED_PRODUCTS, PREFETCH_AHEAD>(q, pageMin, pageMax, D, h0, hk, pageStride, lo, hi,
                                                                                              keys, a, o);
    } else if constexpr (FIXED_HEADS == 7 || FIXED_HEADS == MAX_UNIT_HEADS) {
      quest_grid_score_chunk_rolled<BATCHED_SUMS>(q, pageMin, pageMax, D, FIXED_HEADS, h0, hk, pageStride, lo, hi, keys, a, o);
    } else if constexpr (FIXED_HEADS == QUEST_ANY_PLAIN_HEADS) {
      quest_grid_score_chunk_rolled(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
    } else {
      static_assert(FIXED_HEADS == 0, "FIXED_HEADS: 0, 1, 2, 4, 7, 8 or QUEST_ANY_PLAIN_HEADS");
      quest_grid_score_chunk_light_any(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
    }
  } else if (ROLLED_SCORES) {
    quest_grid_score_chunk_rolled(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
  } else {
    quest_grid_score_chunk(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
  }
  u32* unitScratch = scratch + (size_t)unit * QUEST_GRID_UNIT_WORDS;
  stamps.at(QUEST_PHASE_SCORED);
  if constexpr (Stamps::ACTIVE) {
    __syncthreads();
    stamps.at(QUEST_PHASE_ALL_SCORED);
  }
  if (GUESSED_PASS) {
    quest_grid_select_chunk_guessed<EPOCH>(keys, lo, hi, pages, take, a, o, unitScratch, list, pageSize, sh, lastShared, stamps);
    stamps.at(QUEST_PHASE_END);
  } else {
    quest_grid_select_chunk(keys, lo, hi, pages, take, a, o, unitScratch, list, pageSize, sh, lastShared);
  }
}

// A multi-block step's two entries for one version, quest_grid_step_body<ARGS...>:
//   quest_grid_step<SUFFIX>:    the step with its numbers from the host (eager decode);
//   quest_grid_step_at<SUFFIX>: the step of a decode replayed from a captured CUDA graph, as
//     quest_select_step_at: p = *position, the pages before p's scored, budgets[p] of them kept, p's page
//     refreshed up to row p. G and the dynamic shared memory are fixed at capture for the most pages of
//     the replayed range.
#define QUEST_GRID_STEP_ENTRIES(SUFFIX, ...)                                                                                        \
  extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) quest_grid_step##SUFFIX(                                          \
      const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,     \
      u32* __restrict__ scratch, int* __restrict__ segs, int D, int g, int unitHeads, int kvStride, int pageStride, int pages,     \
      int segStride, int take, int pageSize, int refreshPage, int rowsEnd) {                                                      \
    __shared__ TopKStagedShared sh;                                                                                               \
    __shared__ int lastShared;                                                                                                    \
    extern __shared__ u32 stagedKeys[];                                                                                           \
    quest_grid_step_body<__VA_ARGS__>(q, pageMin, pageMax, k, scratch, segs, D, g, unitHeads, kvStride, pageStride, pages,      \
                                      segStride, take, pageSize, refreshPage, rowsEnd, sh, lastShared, stagedKeys);             \
  }                                                                                                                               \
  extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) quest_grid_step_at##SUFFIX(                                       \
      const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,     \
      u32* __restrict__ scratch, int* __restrict__ segs, const int* __restrict__ position, const int* __restrict__ budgets,        \
      int D, int g, int unitHeads, int kvStride, int pageStride, int segStride, int pageSize) {                                   \
    __shared__ TopKStagedShared sh;                                                                                               \
    __shared__ int lastShared;                                                                                                    \
    extern __shared__ u32 stagedKeys[];                                                                                           \
    const int p = *position;                                                                                                      \
    const int pages = p / pageSize;                                                                                               \
    const int take = max(0, min(budgets[p], pages));                                                                              \
    quest_grid_step_body<__VA_ARGS__>(q, pageMin, pageMax, k, scratch, segs, D, g, unitHeads, kvStride, pageStride, pages,      \
                                      segStride, take, pageSize, pages, p + 1, sh, lastShared, stagedKeys);                     \
  }

// v5: the multi-block step.
#if QUEST_COMPILES(QUEST_ENTRIES_V5)
QUEST_GRID_STEP_ENTRIES(, false)
#endif
// v7 (QuestKernels option rolledScores): the rolled score loads (quest_grid_score_chunk_rolled); same select, same lists.
#if QUEST_COMPILES(QUEST_ENTRIES_V7)
QUEST_GRID_STEP_ENTRIES(_rolled, true)
#endif
// v8 (QuestKernels option lightScores; the default from 4,096 pages where a unit does not have 4 heads): v7 with
// quest_lane_score_light's per-page work (the query in registers, one bound picked per dim by the query's sign);
// same select, same keys and lists.
#if QUEST_COMPILES(QUEST_ENTRIES_V8)
QUEST_GRID_STEP_ENTRIES(_light, true, true)
#endif
// v8 for units of 4 query heads (option specializedHeads): the same code path v8 runs for such units, compiled
// alone (quest_grid_score_chunk_light<4>, no dispatch over unit sizes): ~76 KB of SASS instead of ~140 KB (session 7:
// v8's size cost its step ~4 us after the attention's kernels). The launcher runs it for 4-head units only.
#if QUEST_COMPILES(QUEST_ENTRIES_V8H4)
QUEST_GRID_STEP_ENTRIES(_light4, true, true, false, false, 4)
#endif
// v9 (option guessedPass): v8 whose select starts with a pass on the unit's previous key range
// (quest_grid_select_chunk_guessed); same keys and lists.
#if QUEST_COMPILES(QUEST_ENTRIES_V9)
QUEST_GRID_STEP_ENTRIES(_guess, true, true, true)
#endif
// v10 (option epochBarriers): v9 whose unit barriers and candidate counter are never reset (QuestGridSync<true>), so
// no block waits on an exit atomic; same keys and lists.
#if QUEST_COMPILES(QUEST_ENTRIES_V10)
QUEST_GRID_STEP_ENTRIES(_epoch, true, true, true, true)
#endif
// v8 for units of 1 and 2 query heads (option specializedHeads, session 8): the light scorer for that size alone.
// v8's specialized entries for other unit sizes are v7's (_rolled): v8 scores them with v7's scorer.
#if QUEST_COMPILES(QUEST_ENTRIES_V8H1)
QUEST_GRID_STEP_ENTRIES(_light1, true, true, false, false, 1)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V8H2)
QUEST_GRID_STEP_ENTRIES(_light2, true, true, false, false, 2)
#endif
// v10 for units of 4 query heads (options epochBarriers and specializedHeads; the default from 4,096 pages for
// 4-head units since session 7): v10's select on v8's 4-head entries' scoring (FIXED_HEADS = 4).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H4)
QUEST_GRID_STEP_ENTRIES(_epoch4, true, true, true, true, 4)
#endif
// v10 for units of 1, 2 and 8 query heads and, in _epochp, for any other unit size (options epochBarriers and
// specializedHeads, session 8): v10's select on one scorer each (see FIXED_HEADS above).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H1)
QUEST_GRID_STEP_ENTRIES(_epoch1, true, true, true, true, 1)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H2)
QUEST_GRID_STEP_ENTRIES(_epoch2, true, true, true, true, 2)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H8)
QUEST_GRID_STEP_ENTRIES(_epoch8, true, true, true, true, 8)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10HP)
QUEST_GRID_STEP_ENTRIES(_epochp, true, true, true, true, QUEST_ANY_PLAIN_HEADS)
#endif
// v10's 1- and 4-head entries with the batch's page sums as one reduce-scatter (option batchedPageSums, session 8).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H1B)
QUEST_GRID_STEP_ENTRIES(_epoch1b, true, true, true, true, 1, true)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H4B)
QUEST_GRID_STEP_ENTRIES(_epoch4b, true, true, true, true, 4, true)
#endif
// Session 9, opt-in: the reduce-scatter on v10's 2- and 8-head entries (option batchedPageSums), and v10 on v7's scorer
// with 7 heads a constant (option constantPlainHeads; Qwen2.5-7B's GQA), with and without it.
#if QUEST_COMPILES(QUEST_ENTRIES_V10H2B)
QUEST_GRID_STEP_ENTRIES(_epoch2b, true, true, true, true, 2, true)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H8B)
QUEST_GRID_STEP_ENTRIES(_epoch8b, true, true, true, true, 8, true)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H7)
QUEST_GRID_STEP_ENTRIES(_epoch7, true, true, true, true, 7)
#endif
#if QUEST_COMPILES(QUEST_ENTRIES_V10H7B)
QUEST_GRID_STEP_ENTRIES(_epoch7b, true, true, true, true, 7, true)
#endif
// Session 9, measurement only: _epoch4b with fused products (option fusedProducts; see quest_lane_score_light's FUSED).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H4BF)
QUEST_GRID_STEP_ENTRIES(_epoch4bf, true, true, true, true, 4, true, true)
#endif
// Session 9, opt-in: _epoch4b with the refreshed page's rows loaded 16 at a time (option prefetchedRefresh).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H4BR)
QUEST_GRID_STEP_ENTRIES(_epoch4br, true, true, true, true, 4, true, false, true)
#endif
// Session 9, opt-in: _epoch4b with the score loop's rolling L2 prefetch two batches ahead (option rollingPrefetch).
#if QUEST_COMPILES(QUEST_ENTRIES_V10H4BP)
QUEST_GRID_STEP_ENTRIES(_epoch4bp, true, true, true, true, 4, true, false, false, true)
#endif

// The default 4-head step (_epoch4b) with its phases stamped per block (QuestPhaseStamps; bench/quest-phases.ts):
// quest_grid_step_epoch4b's parameters, then stamps [units, GRID_MAX_BLOCKS, 2, QUEST_PHASE_SLOTS] u64. Eager only; for
// timing. QUEST_STAMPED_STEP_ENTRY(NAME, PREFETCHED_REFRESH): stamped4b is _epoch4b's step, stamped4br _epoch4br's.
#define QUEST_STAMPED_STEP_ENTRY(NAME, PREFETCHED_REFRESH)                                                                        \
  extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) NAME(                                                            \
      const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,     \
      u32* __restrict__ scratch, int* __restrict__ segs, int D, int g, int unitHeads, int kvStride, int pageStride, int pages,     \
      int segStride, int take, int pageSize, int refreshPage, int rowsEnd, unsigned long long* __restrict__ stamps) {             \
    __shared__ TopKStagedShared sh;                                                                                               \
    __shared__ int lastShared;                                                                                                    \
    extern __shared__ u32 stagedKeys[];                                                                                           \
    quest_grid_step_body<true, true, true, true, 4, true, false, PREFETCHED_REFRESH, false, QuestPhaseStamps>(                  \
        q, pageMin, pageMax, k, scratch, segs, D, g, unitHeads, kvStride, pageStride, pages, segStride, take, pageSize,          \
        refreshPage, rowsEnd, sh, lastShared, stagedKeys, QuestPhaseStamps{stamps});                                              \
  }
#if QUEST_COMPILES(QUEST_ENTRIES_STAMPED)
QUEST_STAMPED_STEP_ENTRY(quest_grid_step_stamped4b, false)
QUEST_STAMPED_STEP_ENTRY(quest_grid_step_stamped4br, true)
#endif

// The part of a multi-block select alone (v5's, v6's) before the select: take <= 0 or take >= pages,
// block 0 writes the list unscored and the select is done (true); otherwise this block's chunk [lo, hi)
// of the unit's score row staged as order keys, with their AND (a) and OR (o) over this thread's keys.
__device__ __forceinline__ bool quest_grid_stage_scores(const float* __restrict__ scores, int scoreStride, int unit, int pages, int take,
                                                        int pageSize, int* list, u32* keys, int& lo, int& hi, u32& a, u32& o) {
  const int tid = threadIdx.x;
  if (take <= 0 || take >= pages) {
    if (blockIdx.x == 0) {
      for (int page = tid; page < take; page += GRID_THREADS) {
        list[4 + 2 * page] = page * pageSize;
        list[5 + 2 * page] = page * pageSize;
      }
      if (tid == 0) quest_list_header(list, take, pageSize);
    }
    return true;
  }
  quest_grid_chunk(pages, lo, hi);
  const float* row = scores + (size_t)unit * scoreStride;
  a = 0xffffffffu;
  o = 0u;
  for (int i = lo + tid; i < hi; i += GRID_THREADS) {
    const u32 key = topk_order_key(row[i]);
    keys[i - lo] = key;
    a &= key;
    o |= key;
  }
  return false;
}

// The multi-block select alone over given score rows ([units, scoreStride] fp32), as
// quest_select_pages writes its lists: grid (G, units), dynamic shared memory ceil(pages / G) · 4.
// QUEST_GRID_SELECT_ENTRY(NAME, CHUNK_SELECT) defines entry NAME running CHUNK_SELECT on the staged chunk:
//   quest_grid_select:       v5's select (quest_grid_select_chunk);
//   quest_grid_select_guess: v9's (quest_grid_select_chunk_guessed<false>): its guess is the unit's key range
//                            at the previous launch on this scratch, as in a step;
//   quest_grid_select_epoch: v10's (v9's with QuestGridSync<true>).
#define QUEST_GRID_SELECT_ENTRY(NAME, CHUNK_SELECT)                                                                               \
  extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) NAME(                                                            \
      const float* __restrict__ scores, int scoreStride, int pages, int k, int pageSize, int* __restrict__ segs, int segStride,  \
      u32* __restrict__ scratch) {                                                                                                \
    __shared__ TopKStagedShared sh;                                                                                               \
    __shared__ int lastShared;                                                                                                    \
    extern __shared__ u32 stagedKeys[];                                                                                           \
    const int unit = blockIdx.y;                                                                                                  \
    const int take = max(0, min(k, pages));                                                                                       \
    int* list = segs + (size_t)unit * segStride;                                                                                  \
    int lo, hi;                                                                                                                   \
    u32 a, o;                                                                                                                     \
    if (quest_grid_stage_scores(scores, scoreStride, unit, pages, take, pageSize, list, stagedKeys, lo, hi, a, o)) return;      \
    CHUNK_SELECT(stagedKeys, lo, hi, pages, take, a, o, scratch + (size_t)unit * QUEST_GRID_UNIT_WORDS, list, pageSize, sh,     \
                 lastShared);                                                                                                     \
  }

#if QUEST_COMPILES(QUEST_ENTRIES_SELECTS)
QUEST_GRID_SELECT_ENTRY(quest_grid_select, quest_grid_select_chunk)
QUEST_GRID_SELECT_ENTRY(quest_grid_select_guess, quest_grid_select_chunk_guessed<false>)
QUEST_GRID_SELECT_ENTRY(quest_grid_select_epoch, quest_grid_select_chunk_guessed<true>)
#endif

// ---------------------------------------------------------------------------------------------------
// v6, the windowed multi-block step (session 6): quest_win_step, quest_win_step_at and, for tests and
// the per-part timing, quest_win_select over given score rows. v5 spends ~8 us of its select in three
// per-unit barriers (AND/OR, one radix pass, the final counts and candidates) and the exchanges
// after them (docs/perf.md, "Session 5"). v6 needs one barrier where its guess holds, two where not:
//   - a pass buckets every key of the block's chunk by a monotone map over a key window (base, shift):
//     bucket 0 below base, buckets 1..1022 of 2^shift keys each, bucket 1023 above; the k-th largest
//     key lies in the bucket where the unit's counts from the top reach k, whatever the window;
//   - in the same pass each block publishes, beside its counts added to the unit's histogram, how many
//     of its keys lie in buckets >= t for every t, and its keys (with their pages) grouped by bucket,
//     highest first: after the pass's barrier any block reads any earlier block's counts above and in
//     the k-th key's bucket, and the bucket's keys themselves, with no further exchange;
//   - the first window is the previous step's key range of the unit (kept in the scratch: consecutive
//     steps of a layer score similar rows), published together with this step's AND/OR of the keys;
//     a pass is final when the k-th key's bucket is taken whole, holds <= 256 keys (ranked exactly by
//     (key desc, page asc)) or holds one key value (its lowest pages first); otherwise the next window
//     is that bucket's range within [AND, OR] of the keys (each pass narrows it ~2^10-fold, so at most
//     4 after the guess; no guess: the first window covers every key, 2^23 per bucket).
// Every pass histograms all keys (no prefix filter), so the last pass alone gives each block its first
// list slot. Scratch per unit (questWindowUnitWords words, zero before the first launch): sync words,
// the guess, one histogram per pass, [WIN_MAX_BLOCKS][1024] counts at or above each bucket, and the
// sorted keys and pages ([2][pages]); the last block to leave zeroes the histograms and sync words and
// stores the step's key range as the next guess, so graph replays need no reset node.
namespace {
constexpr int WIN_BUCKETS = 1024;
constexpr int WIN_INTERIOR = WIN_BUCKETS - 2;  // buckets of 2^shift keys between the two open ends
constexpr int WIN_MAX_PASSES = 5;              // a guessed window, then windows of 2^23, 2^14, 2^5 and 1 key per bucket
constexpr int WIN_MAX_BLOCKS = GRID_MAX_BLOCKS;
constexpr int WIN_NO_GUESS_SHIFT = 23;         // (2^32 - 1) >> 23 < WIN_INTERIOR: every key in the window
// Word offsets in a unit's scratch.
constexpr int WS_BARRIER = 0, WS_EXITS = 1, WS_NOT_AND = 2, WS_OR = 3, WS_GUESS_VALID = 4, WS_GUESS_AND = 5, WS_GUESS_OR = 6;
constexpr int WS_HIST = 8;                                                  // [WIN_MAX_PASSES][WIN_BUCKETS]
constexpr int WS_AT_OR_ABOVE = WS_HIST + WIN_MAX_PASSES * WIN_BUCKETS;      // [WIN_MAX_BLOCKS][WIN_BUCKETS]
constexpr int WS_SORTED = WS_AT_OR_ABOVE + WIN_MAX_BLOCKS * WIN_BUCKETS;    // [pages] keys, then [pages] pages
}  // namespace

struct QuestWindow {
  u32 base;
  int shift;
};

// Scratch of the last pass's exchange: per block j < 32, its first candidate slot, its count in the
// k-th key's bucket and where those keys start in the sorted arrays.
struct QuestWinShared {
  int candFirst[WIN_MAX_BLOCKS];
  int candCount[WIN_MAX_BLOCKS];
  int candFrom[WIN_MAX_BLOCKS];
  int aboveBefore, inBefore;
};

__device__ __forceinline__ int quest_win_bucket(u32 key, QuestWindow w) {
  if (key < w.base) return 0;
  const u32 step = (key - w.base) >> w.shift;
  return step >= (u32)WIN_INTERIOR ? WIN_BUCKETS - 1 : (int)step + 1;
}

// The window whose interior buckets cover [lo, hi] (lo <= hi) with the narrowest buckets.
__device__ __forceinline__ QuestWindow quest_win_cover(u32 lo, u32 hi) {
  const u32 span = hi - lo;
  int shift = 0;
  while ((span >> shift) >= (u32)WIN_INTERIOR) ++shift;
  return QuestWindow{lo, shift};
}

// The keys bucket t of window w holds, [lo, hi]. Only called for a bucket some key lies in (so t = 0
// implies base > 0, and the lower end of t fits in 32 bits).
__device__ __forceinline__ void quest_win_range(QuestWindow w, int t, u32& lo, u32& hi) {
  if (t == 0) {
    lo = 0u;
    hi = w.base - 1u;
    return;
  }
  const unsigned long long l = (unsigned long long)w.base + ((unsigned long long)(t - 1) << w.shift);
  const unsigned long long h = t == WIN_BUCKETS - 1 ? 0xffffffffull : l + (1ull << w.shift) - 1ull;
  lo = (u32)l;
  hi = (u32)(h > 0xffffffffull ? 0xffffffffull : h);
}

// One pass over this block's keys[0, n) (pages [lo, lo + n)) in window w: its bucket counts added to
// the unit's histogram of the pass (unitHist), its counts at or above every bucket (atOrAbove, this
// block's row) and its keys and pages grouped by bucket, highest bucket first, at [lo, lo + n) of
// sortedKey / sortedPage. The order inside a bucket is free: whoever reads a bucket ranks it exactly.
__device__ void quest_win_publish(const u32* keys, int lo, int n, QuestWindow w, u32* __restrict__ unitHist, u32* __restrict__ atOrAbove,
                                  u32* __restrict__ sortedKey, u32* __restrict__ sortedPage, TopKStagedShared& sh) {
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned full = 0xffffffffu;
  for (int t = tid; t < WIN_BUCKETS; t += GRID_THREADS) sh.hist[t] = 0u;
  __syncthreads();
  for (int base = 0; base < n; base += GRID_THREADS) {
    const int i = base + tid;
    const int t = i < n ? quest_win_bucket(keys[i], w) : -1;
    // Lanes of a warp in one bucket add once (similar scores crowd a few buckets).
    const unsigned peers = __match_any_sync(full, t);
    if (t >= 0 && lane == __ffs(peers) - 1) atomicAdd(&sh.hist[t], (u32)__popc(peers));
  }
  __syncthreads();
  // Thread tid owns buckets top, top - 1, ..., from the highest bucket down; its exclusive scan is the
  // count of the block's keys above its buckets.
  constexpr int PER = WIN_BUCKETS / GRID_THREADS;
  static_assert(PER * GRID_THREADS == WIN_BUCKETS, "whole buckets per thread");
  const int top = WIN_BUCKETS - 1 - tid * PER;
  u32 counts[PER];
  int mine = 0;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    counts[j] = sh.hist[top - j];
    mine += (int)counts[j];
    if (counts[j] != 0u) atomicAdd(unitHist + top - j, counts[j]);
  }
  int total;
  u32 above = (u32)topk_block_exclusive_scan<GRID_THREADS>(mine, sh.base, total);
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    atOrAbove[top - j] = above + counts[j];
    sh.hist[top - j] = above;  // from here: the bucket's next free slot
    above += counts[j];
  }
  __syncthreads();
  for (int base = 0; base < n; base += GRID_THREADS) {
    const int i = base + tid;
    const u32 key = i < n ? keys[i] : 0u;
    const int t = i < n ? quest_win_bucket(key, w) : -1;
    const unsigned peers = __match_any_sync(full, t);
    const int leader = __ffs(peers) - 1;
    u32 first = 0u;
    if (t >= 0 && lane == leader) first = atomicAdd(&sh.hist[t], (u32)__popc(peers));
    first = __shfl_sync(full, first, leader);
    if (t >= 0) {
      const int slot = lo + (int)first + __popc(peers & ((1u << lane) - 1u));
      sortedKey[slot] = key;
      sortedPage[slot] = (u32)(lo + i);
    }
  }
}

// The select for one block of one unit: keys[0, hi - lo) hold the order keys of pages [lo, hi) (never
// 0: NaN's key is 1), a and o this thread's AND and OR of them; 0 < take < pages, every block of the unit
// calls it with the same take and pages. guess = 0 ignores the stored range (the first window then
// covers every key). Writes the unit's list.
__device__ void quest_win_select_chunk(u32* keys, int lo, int hi, int pages, int take, u32 a, u32 o, u32* __restrict__ unitScratch,
                                       int* __restrict__ list, int pageSize, int guess, TopKStagedShared& sh, QuestWinShared& ws,
                                       int& lastShared) {
  const int tid = threadIdx.x, lane = tid & 31;
  const unsigned full = 0xffffffffu;
  const int G = gridDim.x;
  const int n = hi - lo;
  u32* counter = unitScratch + WS_BARRIER;
  u32* atOrAbove = unitScratch + WS_AT_OR_ABOVE;
  u32* sortedKey = unitScratch + WS_SORTED;
  u32* sortedPage = sortedKey + pages;
  const bool guessed = guess != 0 && __ldcg(unitScratch + WS_GUESS_VALID) != 0u;
  QuestWindow w = guessed ? quest_win_cover(__ldcg(unitScratch + WS_GUESS_AND), __ldcg(unitScratch + WS_GUESS_OR))
                          : QuestWindow{0u, WIN_NO_GUESS_SHIFT};
  a = __reduce_and_sync(full, a);
  o = __reduce_or_sync(full, o);
  if (tid == 0) {
    sh.andBits = 0xffffffffu;
    sh.orBits = 0u;
  }
  __syncthreads();  // also: the keys written by the scoring are visible to the whole block from here
  if (lane == 0) {
    atomicAnd(&sh.andBits, a);
    atomicOr(&sh.orBits, o);
  }
  // Passes until the k-th key's bucket settles the selection (the publish's barriers order the AND/OR above).
  int pass = 0;
  u32 andBits = 0u, orBits = 0u;
  int bin = 0, binCount = 0, quota = 0;
  for (;;) {
    quest_win_publish(keys, lo, n, w, unitScratch + WS_HIST + pass * WIN_BUCKETS, atOrAbove + (size_t)blockIdx.x * WIN_BUCKETS, sortedKey,
                      sortedPage, sh);
    if (pass == 0 && tid == 0) {
      atomicOr(unitScratch + WS_NOT_AND, ~sh.andBits);
      atomicOr(unitScratch + WS_OR, sh.orBits);
    }
    quest_unit_barrier(counter, pass + 1, G, lastShared);
    if (pass == 0) {
      andBits = ~__ldcg(unitScratch + WS_NOT_AND);
      orBits = __ldcg(unitScratch + WS_OR);
    }
    {
      // Every load of the unit's histogram in flight before the first is stored (one L2 round trip).
      constexpr int PER = WIN_BUCKETS / GRID_THREADS;
      const u32* hist = unitScratch + WS_HIST + pass * WIN_BUCKETS;
      u32 counts[PER];
#pragma unroll
      for (int j = 0; j < PER; ++j) counts[j] = __ldcg(hist + tid + j * GRID_THREADS);
#pragma unroll
      for (int j = 0; j < PER; ++j) sh.hist[tid + j * GRID_THREADS] = counts[j];
    }
    __syncthreads();
    topk_staged_find_bin<GRID_THREADS>(WIN_BUCKETS, take, sh);
    bin = sh.bin;
    binCount = sh.binCount;
    quota = sh.remaining;
    __syncthreads();  // sh.bin etc. are rewritten by a next pass
    u32 rlo, rhi;
    quest_win_range(w, bin, rlo, rhi);
    rlo = max(rlo, andBits);  // every key lies in [AND, OR] of the keys
    rhi = min(rhi, orBits);
    if (binCount == quota || binCount <= GRID_RANK_LIMIT || rlo == rhi) break;
    if (pass + 1 == WIN_MAX_PASSES) asm volatile("trap;");  // cannot happen: windows narrow 2^32 -> 2^23 -> 2^14 -> 2^5 -> 1
    w = quest_win_cover(rlo, rhi);
    ++pass;
  }
  const bool whole = binCount == quota;
  const bool ranked = !whole && binCount <= GRID_RANK_LIMIT;
  // Per block j: its keys above the bucket and in it (the earlier blocks' sums give this block's first
  // list slot), and for a ranked bucket where block j's part of it starts in the sorted arrays.
  if (tid < 32) {
    const int j = tid;
    u32 atBin = 0u, aboveBin = 0u;
    if (j < G) {
      const u32* c = atOrAbove + (size_t)j * WIN_BUCKETS;
      atBin = __ldcg(c + bin);
      aboveBin = bin + 1 < WIN_BUCKETS ? __ldcg(c + bin + 1) : 0u;
    }
    const u32 inJ = atBin - aboveBin;
    const bool earlier = j < (int)blockIdx.x;
    const u32 aboveBefore = __reduce_add_sync(full, earlier ? aboveBin : 0u);
    const u32 inBefore = __reduce_add_sync(full, earlier ? inJ : 0u);
    u32 incl = inJ;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const u32 y = __shfl_up_sync(full, incl, off);
      if (lane >= off) incl += y;
    }
    const int chunk = (pages + G - 1) / G;
    ws.candFirst[j] = (int)(incl - inJ);
    ws.candCount[j] = (int)inJ;
    ws.candFrom[j] = min(pages, j * chunk) + (int)aboveBin;
    if (j == 0) {
      ws.aboveBefore = (int)aboveBefore;
      ws.inBefore = (int)inBefore;
    }
  }
  __syncthreads();
  int before = ws.aboveBefore;
  const int inBefore = ws.inBefore;
  if (whole) {
    before += inBefore;
  } else if (!ranked) {
    // One key value: the blocks before hold inBefore of it; this block keeps the first `mine` of its own.
    before += min(inBefore, quota);
    const int mine = max(0, quota - inBefore);
    topk_ordered_pass<GRID_THREADS>(
        n, [&](int i) { return keys[i] != 0u && quest_win_bucket(keys[i], w) == bin; },
        [&](int i, int rank) {
          if (rank >= mine) keys[i] = 0u;
        },
        sh);
  } else {
    // Gather the bucket's binCount keys of every block (one L2 round trip), rank each exactly.
    u32 candKey = 0u, candPage = 0u;
    if (tid < binCount) {
      int j = 0;
      while (tid >= ws.candFirst[j] + ws.candCount[j]) ++j;  // the block whose part holds slot tid
      const int at = ws.candFrom[j] + (tid - ws.candFirst[j]);
      candKey = __ldcg(sortedKey + at);
      candPage = __ldcg(sortedPage + at);
      sh.candKey[tid] = candKey;
      sh.candIdx[tid] = (int)candPage;
    }
    __syncthreads();
    bool takenBefore = false;
    if (tid < binCount) {
      const int page = (int)candPage;
      const bool taken = topk_candidate_rank(candKey, page, binCount, sh) < quota;
      if (!taken && page >= lo && page < hi) keys[page - lo] = 0u;
      takenBefore = taken && page < lo;
    }
    before += __syncthreads_count(takenBefore);
  }
  topk_ordered_pass<GRID_THREADS>(
      n, [&](int i) { const u32 key = keys[i]; return key != 0u && quest_win_bucket(key, w) >= bin; },
      [&](int i, int rank) {
        list[4 + 2 * (before + rank)] = (lo + i) * pageSize;
        list[5 + 2 * (before + rank)] = (before + rank) * pageSize;
      },
      sh);
  if (blockIdx.x == 0 && tid == 0) quest_list_header(list, take, pageSize);
  // The last block to leave (every block has read all it needs by then) zeroes the histograms of the
  // passes and the sync words, and keeps this step's key range as the next step's first window.
  if (tid == 0) {
    __threadfence();
    lastShared = atomicAdd(unitScratch + WS_EXITS, 1u) == (u32)G - 1u ? 1 : 0;
  }
  __syncthreads();
  if (lastShared) {
    for (int i = tid; i < (pass + 1) * WIN_BUCKETS; i += GRID_THREADS) unitScratch[WS_HIST + i] = 0u;
    if (tid == 0) {
      unitScratch[WS_BARRIER] = 0u;
      unitScratch[WS_EXITS] = 0u;
      unitScratch[WS_NOT_AND] = 0u;
      unitScratch[WS_OR] = 0u;
      unitScratch[WS_GUESS_AND] = andBits;
      unitScratch[WS_GUESS_OR] = orBits;
      unitScratch[WS_GUESS_VALID] = 1u;
    }
  }
}

// Asks L2 for this block's whole chunk of bounds (pages [lo, hi) of KV head hk, min and max) before the
// score loop starts: the loop waits for each batch of 128 pages before it requests the next, so HBM
// would idle while a batch is scored (v5's scores read at ~1.6 TB/s at 128K, 4 batches per block).
// A hint only: what the loop loads is the same either way.
__device__ __forceinline__ void quest_prefetch_chunk_l2(const bf16_t* pageMin, const bf16_t* pageMax, int hk, int pageStride, int D, int lo, int hi) {
  const size_t first = ((size_t)hk * pageStride + lo) * D * sizeof(bf16_t);
  const size_t bytes = (size_t)(hi - lo) * D * sizeof(bf16_t);
  const char* mn = reinterpret_cast<const char*>(pageMin) + first;
  const char* mx = reinterpret_cast<const char*>(pageMax) + first;
  for (size_t off = (size_t)threadIdx.x * 128; off < bytes; off += (size_t)GRID_THREADS * 128) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(mn + off));
    asm volatile("prefetch.global.L2 [%0];" ::"l"(mx + off));
  }
}

// grid (G, units), block (GRID_THREADS), dynamic shared memory ceil(pages / G) · 4 bytes; the unit's
// scratch is unitWords words (>= QUEST_WIN_FIXED_WORDS + 2 · pages). As quest_grid_step_body (v5) but
// v6's select, and with prefetch != 0 the block's bounds requested into L2 before they are scored.
__device__ __forceinline__ void quest_win_step_body(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    u32* __restrict__ scratch, int* __restrict__ segs, int D, int g, int unitHeads, int kvStride, int pageStride, int pages, int segStride,
    int take, int pageSize, int refreshPage, int rowsEnd, int unitWords, int guess, int prefetch, TopKStagedShared& sh, QuestWinShared& ws,
    int& lastShared, u32* keys) {
  const int unit = blockIdx.y;
  const int h0 = unit * unitHeads;
  const int hk = h0 / g;
  int* list = segs + (size_t)unit * segStride;
  if (quest_grid_step_unscored(pageMin, pageMax, k, D, g, h0, hk, kvStride, pageStride, pages, take, pageSize, refreshPage, rowsEnd, list)) return;
  int lo, hi;
  quest_grid_chunk(pages, lo, hi);
  if (prefetch) quest_prefetch_chunk_l2(pageMin, pageMax, hk, pageStride, D, lo, hi);
  u32 a = 0xffffffffu, o = 0u;
  quest_grid_score_chunk(q, pageMin, pageMax, D, unitHeads, h0, hk, pageStride, lo, hi, keys, a, o);
  quest_win_select_chunk(keys, lo, hi, pages, take, a, o, scratch + (size_t)unit * unitWords, list, pageSize, guess, sh, ws, lastShared);
}

// The step with its numbers from the host (eager decode).
#if QUEST_COMPILES(QUEST_ENTRIES_WINDOW)
extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) quest_win_step(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    u32* __restrict__ scratch, int* __restrict__ segs, int D, int g, int unitHeads, int kvStride, int pageStride, int pages, int segStride,
    int take, int pageSize, int refreshPage, int rowsEnd, int unitWords, int guess, int prefetch) {
  __shared__ TopKStagedShared sh;
  __shared__ QuestWinShared ws;
  __shared__ int lastShared;
  extern __shared__ u32 stagedKeys[];
  quest_win_step_body(q, pageMin, pageMax, k, scratch, segs, D, g, unitHeads, kvStride, pageStride, pages, segStride, take, pageSize,
                      refreshPage, rowsEnd, unitWords, guess, prefetch, sh, ws, lastShared, stagedKeys);
}
#endif

// The step of a decode replayed from a captured CUDA graph, as quest_grid_step_at (v5).
#if QUEST_COMPILES(QUEST_ENTRIES_WINDOW)
extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) quest_win_step_at(
    const bf16_t* __restrict__ q, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax, const bf16_t* __restrict__ k,
    u32* __restrict__ scratch, int* __restrict__ segs, const int* __restrict__ position, const int* __restrict__ budgets,
    int D, int g, int unitHeads, int kvStride, int pageStride, int segStride, int pageSize, int unitWords, int guess, int prefetch) {
  __shared__ TopKStagedShared sh;
  __shared__ QuestWinShared ws;
  __shared__ int lastShared;
  extern __shared__ u32 stagedKeys[];
  const int p = *position;
  const int pages = p / pageSize;
  const int take = max(0, min(budgets[p], pages));
  quest_win_step_body(q, pageMin, pageMax, k, scratch, segs, D, g, unitHeads, kvStride, pageStride, pages, segStride, take, pageSize,
                      pages, p + 1, unitWords, guess, prefetch, sh, ws, lastShared, stagedKeys);
}
#endif

// v6's select alone over given score rows ([units, scoreStride] fp32), as quest_grid_select (v5).
#if QUEST_COMPILES(QUEST_ENTRIES_WINDOW)
extern "C" __global__ void __launch_bounds__(GRID_THREADS, 1) quest_win_select(
    const float* __restrict__ scores, int scoreStride, int pages, int k, int pageSize, int* __restrict__ segs, int segStride,
    u32* __restrict__ scratch, int unitWords, int guess) {
  __shared__ TopKStagedShared sh;
  __shared__ QuestWinShared ws;
  __shared__ int lastShared;
  extern __shared__ u32 stagedKeys[];
  const int unit = blockIdx.y;
  const int take = max(0, min(k, pages));
  int* list = segs + (size_t)unit * segStride;
  int lo, hi;
  u32 a, o;
  if (quest_grid_stage_scores(scores, scoreStride, unit, pages, take, pageSize, list, stagedKeys, lo, hi, a, o)) return;
  quest_win_select_chunk(stagedKeys, lo, hi, pages, take, a, o, scratch + (size_t)unit * unitWords, list, pageSize, guess, sh, ws, lastShared);
}
#endif
