// Vertical-Slash sparse prefill on Hopper's warpgroup MMA (wgmma, sm_90a): same inputs, index format and
// results as vertical-slash-prefill.cu (its header describes the tensors and the index), built on the
// loop of block-sparse-prefill-wgmma.cu (producer warpgroup, cp.async into 128-byte-swizzled stages
// completing on mbarriers, consumer warpgroups of 64 rows, setmaxnreg split, split softmax).
//
// One CTA = 128 query rows of one query head = two consecutive 64-row pattern blocks (2·cr and 2·cr + 1);
// consumer warpgroup w owns block 2·cr + w, so each warpgroup's keys are exactly its block's index:
//   1. its key ranges: 64-key tiles from each range's start, clipped to the block's last row (the tile
//      masked by causality where it reaches a warp's diagonal, and by the row window when given);
//   2. its columns outside the ranges: 64 listed keys gathered per tile (empty slots masked).
// Every tile belongs to one warpgroup, so the producer lays the two blocks' tiles out as steps
// alternating w = 0, 1 while both have tiles left, then the longer one's remainder (the block-sparse
// kernel's "own tiles" classes): the two warpgroups run side by side, never taking turns, and each
// stage's empty barriers count only its owner's four warps. Producer and consumers walk the index
// themselves (the same deterministic walk), so no step list is written anywhere: a consumer knows the
// step of its k-th tile from both blocks' tile counts (k < paired ? 2k + w : paired + k).
// A pending P·V holds a V stage until the warpgroup's next tile's K has landed; the next tile is at
// most two steps later and the producer fills K_j before V_{j}, so with S >= 2 stages the producer
// never waits on a release that waits on it.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), KV_STAGES (2 to 4). Keys per step: 64 (the index's
// range grain, so a range tile never crosses its range's end).
#include "common.cuh"
#include "flash-tile.cuh"
#include "wgmma.cuh"
#include "wgmma-pipeline.cuh"
#include "wgmma-consumer-step.cuh"
#include "vertical-slash-ranges.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef KV_STAGES
#define KV_STAGES 3
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int BN = 64;                   // keys per step = the pattern's range grain
constexpr int BM = 128;                  // query rows per CTA: two pattern blocks of 64
constexpr int PB = 64;                   // rows per pattern block = per consumer warpgroup
constexpr int S = KV_STAGES;
constexpr int THREADS = 384;             // two consumer warpgroups, then the producer warpgroup
constexpr int CONSUMER_THREADS = 256;
constexpr int PRODUCER_THREADS = 128;
constexpr int PRODUCER_REGS = 56;        // flash-prefill-wgmma.cu v3's split
constexpr int CONSUMER_REGS = 224;
constexpr int CHUNKS_PER_ROW = D / 8;    // 16-byte chunks
constexpr int P_ROWS = PRODUCER_THREADS / CHUNKS_PER_ROW;  // rows one producer pass copies (8 or 16)
constexpr u32 Q_HALF = BM * 128;
constexpr u32 KV_HALF = BN * 128;
constexpr u32 Q_BYTES = (D / 64) * Q_HALF;
constexpr u32 KV_TILE = (D / 64) * KV_HALF;
constexpr int END_OF_TILES = -2147483647 - 1;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(S >= 2 && S <= 4, "KV_STAGES must be 2, 3 or 4");
static_assert(P_ROWS % 8 == 0 && BN % P_ROWS == 0, "a producer thread's rows share a swizzle phase and split the tile evenly");



// One pattern block's index as the kernel walks it.
struct VsBlock {
  const int2* ranges;  // its key ranges (absolute positions, ascending)
  const int* cols;     // its columns outside the ranges
  int numRanges, numCols;
  int maxPos;          // position of its last row (-1: the block lies past T)
};

__device__ __forceinline__ VsBlock vs_block(const int2* __restrict__ ranges, const int* __restrict__ rangeCount,
                                            const int* __restrict__ colStart, const int* __restrict__ colList, int h,
                                            int m, int numBlocks, int T, int queryStart, int C, int perHead) {
  VsBlock b;
  if (m >= numBlocks) {
    b.ranges = ranges;
    b.cols = colList;
    b.numRanges = b.numCols = 0;
    b.maxPos = -1;
    return b;
  }
  const size_t hm = (size_t)h * numBlocks + m;
  b.ranges = ranges + (size_t)h * perHead + vs_range_offset(m, C);
  b.numRanges = rangeCount[hm];
  const int c0 = colStart[hm];
  b.cols = colList + c0;
  b.numCols = colStart[hm + 1] - c0;
  b.maxPos = queryStart + min(m * PB + PB, T) - 1;
  return b;
}

// The block's tiles: BN-key tiles from each range's start up to its end clipped to the last row, then
// ceil(numCols / BN) column tiles.
__device__ __forceinline__ int vs_tile_count(const VsBlock& b) {
  int n = (b.numCols + BN - 1) / BN;
  for (int i = 0; i < b.numRanges; ++i) {
    const int2 rg = b.ranges[i];
    const int len = min(rg.y, b.maxPos + 1) - rg.x;
    if (len > 0) n += (len + BN - 1) / BN;
  }
  return n;
}

// Walks one block's tiles in order: d >= 0 a range tile from key d, d < 0 a column tile from slot
// -(d + 1), END_OF_TILES past the last. The same walk as vertical-slash-prefill.cu's thread 0.
struct VsWalk {
  int rIdx, rKey, rEnd, colPos;
  __device__ __forceinline__ void start(const VsBlock& b) {
    rIdx = 0, rKey = 0, rEnd = 0, colPos = 0;
    for (; rIdx < b.numRanges; ++rIdx) {
      const int2 rg = b.ranges[rIdx];
      rKey = rg.x;
      rEnd = min(rg.y, b.maxPos + 1);
      if (rKey < rEnd) break;
    }
  }
  __device__ __forceinline__ int next(const VsBlock& b) {
    int d;
    if (rIdx < b.numRanges) {
      d = rKey;
      rKey += BN;
      while (rKey >= rEnd && ++rIdx < b.numRanges) {
        const int2 rg = b.ranges[rIdx];
        rKey = rg.x;
        rEnd = min(rg.y, b.maxPos + 1);
      }
    } else if (colPos < b.numCols) {
      d = -colPos - 1;
      colPos += BN;
    } else {
      d = END_OF_TILES;
    }
    return d;
  }
};
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_prefill_wgmma(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int2* __restrict__ ranges, const int* __restrict__ rangeCount, const int* __restrict__ colStart,
    const int* __restrict__ colList, const int* __restrict__ rowLow, int sinkCount, int T, int queryStart, int H, int Hkv,
    int qRowStride, int kvStride, int C, int perHead, int numBlocks, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms need 1024-byte alignment; the launcher asks for 1 KB of slack.
  const u32 sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const u32 sK = sQ + Q_BYTES;               // [S][KV_TILE]
  const u32 sV = sK + S * KV_TILE;           // [S][KV_TILE]
  const u32 bars = sV + S * KV_TILE;         // fullQ, fullK[S], fullV[S], emptyK[S], emptyV[S]
  const u32 fullQ = bars, fullK = bars + 8, fullV = fullK + 8 * S, emptyK = fullV + 8 * S, emptyV = emptyK + 8 * S;

  const int tid = threadIdx.x;
  // Warp-uniform through a shuffle, so ptxas sees the role branch as uniform (flash-prefill-wgmma.cu).
  const int warp = __shfl_sync(0xffffffffu, tid >> 5, 0);
  const int lane = tid & 31;
  const int wg = warp >> 2;  // 0, 1: consumers of blocks 2·cr + wg; 2: producer
  const int wl = warp & 3;

  int cr, h;
  prefill_block_coords<1>(H, cr, h);
  const int hk = h / (H / Hkv);
  const int m0 = cr * BM;
  const int kvLen = queryStart + T;

  constexpr int EMPTY_ARRIVALS = CONSUMER_THREADS / 2 / 32;  // one per warp of the stage's owner
  if (tid == 0) init_stage_ring_barriers(fullQ, fullK, fullV, emptyK, emptyV, S, PRODUCER_THREADS, EMPTY_ARRIVALS);
  __syncthreads();

  if (wg == 2) {
    set_max_registers_dec<PRODUCER_REGS>();
    const int pt = tid - CONSUMER_THREADS, pr = pt / CHUNKS_PER_ROW, chunk = pt % CHUNKS_PER_ROW;
    producer_copy_q<BM, P_ROWS, D>(sQ, q, h, m0, T, qRowStride, pr, chunk);  // Q rows past T zero-filled, never stored
    cp_async_mbar_arrive_noinc(fullQ);
    const VsBlock b0 = vs_block(ranges, rangeCount, colStart, colList, h, 2 * cr, numBlocks, T, queryStart, C, perHead);
    const VsBlock b1 = vs_block(ranges, rangeCount, colStart, colList, h, 2 * cr + 1, numBlocks, T, queryStart, C, perHead);
    const int n0 = vs_tile_count(b0), n1 = vs_tile_count(b1);
    const int paired = min(n0, n1), numSteps = n0 + n1;
    VsWalk w0, w1;
    w0.start(b0);
    w1.start(b1);
    const bf16_t* kHead = k + (size_t)hk * kvStride * D + chunk * 8;
    const bf16_t* vHead = v + (size_t)hk * kvStride * D + chunk * 8;
    const u32 rowDst = swizzled_offset(pr, chunk, BN);
    // Row r of the stage: key d + r of a range tile (past the block's last row: zero-filled, read
    // nothing; masked anyway) or the listed column of slot -(d + 1) + r (empty slots zero-filled, so
    // 0·V stays 0).
    auto gather = [&](u32 stage, const bf16_t* head, int d, int maxPos, const int* cols, int numCols) {
      const bool isRange = d >= 0;
      const int base = isRange ? d : -d - 1;
#pragma unroll
      for (int i = 0; i < BN / P_ROWS; ++i) {
        const int r = pr + i * P_ROWS;
        int key;
        bool inside;
        if (isRange) {
          key = base + r;
          inside = key <= maxPos;
        } else {
          inside = base + r < numCols;
          key = inside ? __ldg(cols + base + r) : 0;
        }
        cp_async16_at(stage + rowDst + i * P_ROWS * 128, head + (inside ? (size_t)key * D : 0), inside ? 16 : 0);
      }
    };
    int st = 0;
    u32 use = 0;  // how many times stage st was filled before
    for (int i = 0; i < numSteps; ++i) {
      const int owner = i < 2 * paired ? (i & 1) : (n0 > n1 ? 0 : 1);
      const int d = owner == 0 ? w0.next(b0) : w1.next(b1);
      // Selected field by field: a reference to b0 or b1 would put both in local memory.
      const int maxPos = owner == 0 ? b0.maxPos : b1.maxPos, numCols = owner == 0 ? b0.numCols : b1.numCols;
      const int* cols = owner == 0 ? b0.cols : b1.cols;
      if (use > 0) mbar_wait(emptyK + 8 * st, (use - 1) & 1);
      gather(sK + st * KV_TILE, kHead, d, maxPos, cols, numCols);
      cp_async_mbar_arrive_noinc(fullK + 8 * st);
      if (use > 0) mbar_wait(emptyV + 8 * st, (use - 1) & 1);
      gather(sV + st * KV_TILE, vHead, d, maxPos, cols, numCols);
      cp_async_mbar_arrive_noinc(fullV + 8 * st);
      if (++st == S) { st = 0; ++use; }
    }
    cp_async_wait<0>();  // leave no copy in flight behind an exited thread
  } else {
    set_max_registers_inc<CONSUMER_REGS>();
    const int g = lane >> 2, t4 = lane & 3;
    const VsBlock mine = vs_block(ranges, rangeCount, colStart, colList, h, 2 * cr + wg, numBlocks, T, queryStart, C, perHead);
    const VsBlock other = vs_block(ranges, rangeCount, colStart, colList, h, 2 * cr + 1 - wg, numBlocks, T, queryStart, C, perHead);
    const int myTiles = vs_tile_count(mine);
    const int paired = min(myTiles, vs_tile_count(other));
    VsWalk walk;
    walk.start(mine);
    const int warpRow0 = m0 + PB * wg + 16 * wl;       // this warp's first query row
    const int warpFirstPos = queryStart + warpRow0;     // and its position
    // Window starts of this lane's rows g and g + 8 (row window only).
    int low[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = warpRow0 + g + 8 * r;
      low[r] = (rowLow != nullptr && t < T) ? rowLow[t] : 0;
    }
    const u32 qBase = sQ + wg * 64 * 128;
    float o[D / 8][4];
    float s[BN / 8][4];
    u32 p[BN / 16][4];
    zero_accumulators<D, BN>(o, s);
    float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};

    auto release = [&](u32 bar) {
      if (lane == 0) mbar_arrive(bar);
    };
    auto issueQK = [&](u32 kStage) { issue_qk_ss<D, BN>(s, qBase, Q_HALF, kStage, KV_HALF); };
    auto issuePV = [&](u32 vStage) { issue_pv<D, BN>(o, p, vStage, KV_HALF); };

    mbar_wait(fullQ, 0);
    int pst = 0;           // stage of the pending P·V
    u32 puse = 0;          // how many times it was filled before
    bool pending = false;  // a P·V of this warpgroup's previous tile waits to be issued
    for (int t = 0; t < myTiles; ++t) {
      const int step = t < paired ? 2 * t + wg : paired + t;
      const int st = step % S;
      const u32 use = (u32)(step / S);
      const int d = walk.next(mine);
      consumer_wait_stages(fullK, st, use, pending, fullV, pst, puse);
      consumer_issue_products([&, st] { issueQK(sK + st * KV_TILE); }, pending, [&, pst] { issuePV(sV + pst * KV_TILE); });
      // Range tiles: keys right of a row where the tile reaches this warp's first row, and left of the
      // row's window when there is one. Column tiles: the empty slots past the block's list.
      auto mask = [&, d] {
        if (d >= 0) {
          if (d + BN - 1 > warpFirstPos) {
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk) flash_causal_mask16<BN / 8>(s, kk, d + 16 * kk, warpFirstPos + g, kvLen, t4);
          }
          if (rowLow != nullptr) {
#pragma unroll
            for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                const int key = d + nt * 8 + 2 * t4 + (e & 1);
                if (key >= sinkCount && key < low[e >> 1]) s[nt][e] = NEG_INF;
              }
          }
        } else {
          const int slot0 = -d - 1;
          if (slot0 + BN > mine.numCols) {
#pragma unroll
            for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
              for (int e = 0; e < 4; ++e)
                if (slot0 + nt * 8 + 2 * t4 + (e & 1) >= mine.numCols) s[nt][e] = NEG_INF;
          }
        }
      };
      float alpha[2];
      consumer_scores_step(s, o, p, rowMax, rowSum, alpha, scaleLog2, [&, st] { release(emptyK + 8 * st); }, mask,
                           pending, [&, pst] { release(emptyV + 8 * pst); });
      pending = true;
      pst = st;
      puse = use;
    }
    // The last P·V written out rather than through consumer_last_pv: with it (whatever the functors
    // captured) ptxas allocated the D = 64 kernels differently, while the loop's helpers change nothing.
    if (pending) {
      mbar_wait(fullV + 8 * pst, puse & 1);
      fence_proxy_async_shared();
      wgmma_fence();
      issuePV(sV + pst * KV_TILE);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(o);
      release(emptyV + 8 * pst);
    }
    int crE, hE;
    prefill_block_coords<1>(H, crE, hE);
    flash_store_rows<D / 8>(o, rowSum, out, crE * BM + PB * wg + 16 * wl, g, t4, T, H, hE);
  }  // consumers (setmaxnreg needs the two roles as the two branches of one if/else)
}
