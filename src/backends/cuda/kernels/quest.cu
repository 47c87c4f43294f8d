// Quest on the device (src/methods/quest.ts is the reference):
//   quest_update_bounds: element-wise min and max of the keys of pages [firstPage, firstPage + grid.x)
//                        over rows [page·P, min(rowsEnd, page·P + P)): a decode step refreshes only the
//                        page that gained its row, the first call covers the whole prompt.
//   quest_page_scores:   per unit (a KV head's group with share_pages, else one query head) and page
//                        before the current one, sum over the unit's query heads and d of
//                        max(q_d·min_d, q_d·max_d).
//   quest_select_pages:  per unit, the top k pages (ties: lower page first) written in ascending order
//                        as the segment list segment-decode.cu reads (each page one segment of P rows).
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
}  // namespace

// grid (pages to refresh, Hkv), block (D).
extern "C" __global__ void quest_update_bounds(const bf16_t* __restrict__ k, bf16_t* __restrict__ pageMin, bf16_t* __restrict__ pageMax,
                                               int D, int kvStride, int pageStride, int pageSize, int firstPage, int rowsEnd) {
  const int page = firstPage + blockIdx.x;
  const int hk = blockIdx.y;
  const int d = threadIdx.x;
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
    const uint4 rawMin = *reinterpret_cast<const uint4*>(pageMin + at);
    const uint4 rawMax = *reinterpret_cast<const uint4*>(pageMax + at);
    const u32 wMin[4] = {rawMin.x, rawMin.y, rawMin.z, rawMin.w}, wMax[4] = {rawMax.x, rawMax.y, rawMax.z, rawMax.w};
    float mn[8], mx[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      mn[2 * e] = __uint_as_float(wMin[e] << 16);
      mn[2 * e + 1] = __uint_as_float(wMin[e] & 0xffff0000u);
      mx[2 * e] = __uint_as_float(wMax[e] << 16);
      mx[2 * e + 1] = __uint_as_float(wMax[e] & 0xffff0000u);
    }
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
  }
  // Sum over the page's lanes (xor offsets below `lanes` stay inside the page's group).
  for (int off = lanes / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (sub == 0 && page < pages) scores[(size_t)unit * scoreStride + page] = s;
}

// grid (units), block (SELECT_THREADS), dynamic shared memory pages · 4 bytes when `staged` (the
// row's keys are computed once into shared memory and every radix pass reads them there; v2 read the
// scores from global memory in each of its passes), else none. k >= pages takes every page (then
// scores are not read).
extern "C" __global__ void __launch_bounds__(SELECT_THREADS) quest_select_pages(
    const float* __restrict__ scores, int scoreStride, int pages, int k, int pageSize, int* __restrict__ segs, int segStride, int staged) {
  __shared__ TopKShared sh;
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
  } else if (take > 0 && staged) {
    for (int i = threadIdx.x; i < pages; i += SELECT_THREADS) stagedKeys[i] = topk_order_key(row[i]);
    __syncthreads();
    auto keyOf = [&](int i) { return stagedKeys[i]; };
    const TopKCut cut = topk_cut<SELECT_THREADS>(pages, take, keyOf, sh);
    topk_emit<SELECT_THREADS>(pages, cut, keyOf, writePage, sh);
  } else if (take > 0) {
    auto keyOf = [&](int i) { return topk_order_key(row[i]); };
    const TopKCut cut = topk_cut<SELECT_THREADS>(pages, take, keyOf, sh);
    topk_emit<SELECT_THREADS>(pages, cut, keyOf, writePage, sh);
  }
  if (threadIdx.x == 0) {
    list[0] = take;
    list[1] = take * pageSize;
    list[2] = pageSize;
    list[3] = 0;
  }
}
