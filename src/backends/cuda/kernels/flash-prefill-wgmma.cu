// Dense causal flash-attention prefill on Hopper's warpgroup MMA (wgmma, sm_90a): bf16 in, fp32
// accumulate, bf16 out; same arguments, layouts and results as flash-prefill.cu (its header describes
// the tensors, causality, the sliding window and GQA), for head dims 64 and 128.
//
// Each block owns BM = 128 consecutive queries of one query head, split between two warpgroups of 64
// rows (256 threads; v3 adds a producer warpgroup). Per key tile of BN keys (BLOCK_N = 64 or 128):
//   S = Q·Kᵀ   D / 16 wgmma m64nBNk16, A = Q and B = K both from shared memory (K stored [key][d] is
//              the K-major B operand, no transpose);
//   online softmax on the S accumulators in registers (flash-tile.cuh: the accumulator layout of wgmma
//              is the mma.sync one repeated over the columns);
//   O += P·V   BN / 16 wgmma m64nDk16, A = P from registers (the S accumulators packed to bf16 are the
//              A-register fragments), B = V from shared memory in MN-major form (transpose bit).
// Q, K and V tiles live in shared memory in the 128-byte-swizzled layout of wgmma.cuh, written by
// cp.async (16 bytes per thread, coalesced rows; v1/v2: all 256 threads, v3: the producer warpgroup)
// two K/V stages deep (v3: KV_STAGES): tile j + 1 loads while tile j is multiplied. In v1 a warpgroup skips the products of a tile that none of its rows can see
// (the other half of the diagonal tile, tiles left of a sliding window); v2 cannot (see its loop).
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), BLOCK_N (64 or 128), BLOCK_ORDER (0 = head by head,
// 1 = heaviest query blocks of every head first; flash-prefill.cu's meaning), WGMMA_VERSION (the loop,
// docs/perf.md: 1 waits for each product before the next step; 2 runs the P·V of tile j - 1 while
// tile j's scores are exponentiated; 3 is 2 with a producer warpgroup filling the stages behind mbarriers,
// so the two warpgroups need no block barrier per tile, and the warpgroups taking turns to issue
// their products, so one's softmax runs under the other's products), KV_STAGES (v3: 2 or 3 K and V
// stages; 3 with BLOCK_N = 128 and HEAD_DIM = 128 takes 225 KB of the 227 KB a block may have),
// Q_IN_REGS (v3: 1 keeps each warpgroup's Q fragments in registers, read once by ldmatrix, and runs
// S = Q·Kᵀ with A from registers: 32 KB less shared-memory reading per tile), WARP_ARRIVALS (v3: 1
// releases stages with one mbarrier arrival per consumer warp instead of one per thread), SINK_LOCAL
// (v3: 1 replaces causal attention with a sliding window by the sink + local rule of
// src/methods/sink-local.ts: a query at p sees the first sinkTokens keys and [local_start(p), p], where the
// window is fixed or follows the target sparsity; the block visits tile 0 for the sinks, then the tiles of
// its rows' windows, so the work is the attended pairs plus one diagonal tile per block), SINK_FOLD
// (SINK_LOCAL only: 1 loads the sink keys into the head of the block's first window tile, whose leading
// keys lie left of every row's window and would be masked anyway, instead of visiting tile 0 for them,
// whenever they fit there; a block then visits its window tiles alone), SINK_PERSIST (SINK_LOCAL only: 1
// launches at most one block per multiprocessor, each walking the 128-row work items blockIdx.x,
// blockIdx.x + gridDim.x, ... of the heaviest-first order; the producer loads the next item's Q as soon
// as both warpgroups have issued their last Q·Kᵀ of the current one, and its K/V tiles into the stages
// the current item frees, so the next item's loads run under the current one's last tile and store),
// SINK_MASK (SINK_LOCAL only: 0 the exact mask below; 1 the same keys from per-row column bounds set
// once per tile, a range test and a sink test per score; 2 no mask at all, for timing the mask's cost
// only: the output is wrong; 3 the same keys as one bit per score of the lane's row, the row's bits set
// once per tile from its bounds, a bit test per score).
#include "common.cuh"
#include "flash-tile.cuh"
#include "wgmma.cuh"
#include "wgmma-pipeline.cuh"
#include "wgmma-consumer-step.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef BLOCK_N
#define BLOCK_N 128
#endif
#ifndef BLOCK_ORDER
#define BLOCK_ORDER 1
#endif
#ifndef WGMMA_VERSION
#define WGMMA_VERSION 3
#endif
#ifndef KV_STAGES
#define KV_STAGES 2
#endif
#ifndef Q_IN_REGS
#define Q_IN_REGS 0
#endif
#ifndef WARP_ARRIVALS
#define WARP_ARRIVALS 0
#endif
#ifndef SINK_LOCAL
#define SINK_LOCAL 0
#endif
#ifndef SINK_FOLD
#define SINK_FOLD 0
#endif
#ifndef SINK_PERSIST
#define SINK_PERSIST 0
#endif
#ifndef SINK_MASK
#define SINK_MASK 0
#endif

// A warpgroup's row positions and (sink + local) window bounds: fixed for the block, or, with
// SINK_PERSIST, set anew for each work item (the mask reads them).
#if SINK_PERSIST
#define PER_ITEM
#else
#define PER_ITEM const
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int BN = BLOCK_N;
constexpr int BM = 128;
#if WGMMA_VERSION == 3
constexpr int THREADS = 384;  // two consumer warpgroups, then the producer warpgroup
#else
constexpr int THREADS = 256;
#endif
constexpr int CONSUMER_THREADS = 256;
constexpr int CHUNKS_PER_ROW = D / 8;          // 16-byte chunks
#if WGMMA_VERSION == 3
// v3's register split (setmaxnreg): 128 · 56 + 256 · 224 fits the 64K registers of a multiprocessor
// (the producer's copy loop spills at 40; the consumers' loop takes about 190 in v2).
constexpr int PRODUCER_THREADS = 128;
constexpr int PRODUCER_REGS = 56;
constexpr int CONSUMER_REGS = 224;
constexpr int P_ROWS = PRODUCER_THREADS / CHUNKS_PER_ROW;  // rows one pass of the producer copies
static_assert(P_ROWS % 8 == 0, "a producer thread's rows must share their swizzle phase");
#endif
constexpr int LD_ROWS = CONSUMER_THREADS / CHUNKS_PER_ROW;  // rows one pass of the 256 threads copies
constexpr u32 Q_HALF = BM * 128;               // bytes of one 64-column half of the Q tile
constexpr u32 KV_HALF = BN * 128;              // ... of a K or V tile
constexpr u32 Q_BYTES = (D / 64) * Q_HALF;
constexpr u32 KV_TILE = (D / 64) * KV_HALF;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(BN == 64 || BN == 128, "BLOCK_N must be 64 or 128");
static_assert(WGMMA_VERSION >= 1 && WGMMA_VERSION <= 3, "WGMMA_VERSION must be 1, 2 or 3");
static_assert(KV_STAGES == 2 || (WGMMA_VERSION == 3 && KV_STAGES == 3), "KV_STAGES: 2, or 3 with version 3");
static_assert((Q_IN_REGS == 0 && WARP_ARRIVALS == 0) || WGMMA_VERSION == 3, "Q_IN_REGS and WARP_ARRIVALS need version 3");
static_assert(SINK_LOCAL == 0 || WGMMA_VERSION == 3, "SINK_LOCAL needs version 3");
static_assert(SINK_FOLD == 0 || SINK_LOCAL == 1, "SINK_FOLD needs SINK_LOCAL");
static_assert(SINK_PERSIST == 0 || SINK_LOCAL == 1, "SINK_PERSIST needs SINK_LOCAL");
static_assert(SINK_MASK == 0 || (SINK_LOCAL == 1 && SINK_MASK <= 3), "SINK_MASK: 0, or 1 / 2 / 3 with SINK_LOCAL");
static_assert(LD_ROWS % 8 == 0 && BN % LD_ROWS == 0, "a thread's rows must share their swizzle phase");




#if !SINK_PERSIST
// Normalises and stores this lane's rows (block coordinates re-read: nothing stays live across the loop).
__device__ __forceinline__ void store_output(const float (&o)[D / 8][4], const float (&rowSum)[2], bf16_t* out, int H, int T,
                                             int wg, int wl, int g, int t4) {
  int mBlock, h;
  prefill_block_coords<BLOCK_ORDER>(H, mBlock, h);
  flash_store_rows<D / 8>(o, rowSum, out, mBlock * BM + wg * 64 + wl * 16, g, t4, T, H, h);
}
#endif

#if SINK_LOCAL
// First key of the local window of the query at position p (sinkLocalKeys in src/methods/sink-local.ts):
// the query sees [0, min(sinkTokens, p + 1)) and [sink_local_start(p), p]. localWindow < 0: the window
// follows the target sparsity, keep = round(keepFraction · (p + 1)), keepFraction = 1 - s as the host's
// double; the product in double and JavaScript's Math.round (halves up) make every row's window the CPU
// rule's exactly. Never decreases with p, so a block's first row has its lowest window start.
__device__ __forceinline__ int sink_local_start(int p, int sinkTokens, int localWindow, double keepFraction) {
  const int visible = p + 1;
  const int sinkEnd = min(sinkTokens, visible);
  int keep;
  if (localWindow >= 0) {
    keep = sinkEnd + min(localWindow, visible - sinkEnd);
  } else {
    const double x = __dmul_rn(keepFraction, (double)visible);
    int rounded = __double2int_rd(x);
    if (__dsub_rn(x, (double)rounded) >= 0.5) ++rounded;
    keep = min(visible, max(min(visible, sinkTokens + 1), rounded));
  }
  return visible - (keep - sinkEnd);
}
#endif

#if WGMMA_VERSION == 3
// v3's producer copies, for the one-block-per-item and the persistent producers alike. Each of its 128
// threads copies one 16-byte column chunk `chunk` of rows pr, pr + P_ROWS, ... of a tile (P_ROWS a multiple
// of 8: one swizzle phase per thread, as in v1/v2's copies).
// ROWS rows of a Q or K/V tile, source rows firstRow + those; rows at or past `limit` (past T or the cache)
// are zero-filled and read nothing (0·V must stay 0; Q rows past T are never stored).
template <int ROWS>
__device__ __forceinline__ void producer_copy_rows(u32 base, const bf16_t* src, size_t srcRowStride, int firstRow, int limit, int pr, int chunk) {
  const u32 dst0 = base + swizzled_offset(pr, chunk, ROWS);
#pragma unroll
  for (int i = 0; i < ROWS / P_ROWS; ++i) {
    const int r = firstRow + pr + i * P_ROWS;  // row index in the source
    const bool inside = r < limit;
    cp_async16_at(dst0 + i * P_ROWS * 128, src + (inside ? (size_t)r * srcRowStride : 0), inside ? 16 : 0);
  }
}
#if SINK_FOLD
// A K or V tile of keys n0 .. n0 + BN - 1 whose first headRows rows hold keys 0 .. headRows - 1 (the
// folded sinks) instead; rows past the cache are zero-filled.
__device__ __forceinline__ void producer_copy_key_tile(u32 base, const bf16_t* src, int n0, int headRows, int kvLen, int pr, int chunk) {
  const u32 dst0 = base + swizzled_offset(pr, chunk, BN);
#pragma unroll
  for (int i = 0; i < BN / P_ROWS; ++i) {
    const int local = pr + i * P_ROWS;
    const int r = local < headRows ? local : n0 + local;
    const bool inside = r < kvLen;
    cp_async16_at(dst0 + i * P_ROWS * 128, src + (inside ? (size_t)r * D : 0), inside ? 16 : 0);
  }
}
#endif
#endif

#if Q_IN_REGS
__device__ __forceinline__ void wgmma_qk_rs(float (&s)[BN / 8][4], const u32 (&q)[4], u64 descK, int scaleD) {
#if BLOCK_N == 128
  wgmma_m64n128k16_rs(s, q, descK, scaleD);
#else
  wgmma_m64n64k16_rs(s, q, descK, scaleD);
#endif
}
#endif
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS, 1) flash_prefill_wgmma(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    bf16_t* __restrict__ out, int T, int H, int Hkv, int qRowStride, int kvStride, int queryStart, int kvLen,
#if SINK_LOCAL
    int sinkTokens, int localWindow, double keepFraction,
#else
    int window,
#endif
    float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms need 1024-byte alignment; the launcher asks for 1 KB of slack.
  const u32 sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const u32 sK = sQ + Q_BYTES;                // [KV_STAGES][KV_TILE]
  const u32 sV = sK + KV_STAGES * KV_TILE;    // [KV_STAGES][KV_TILE]

  const int tid = threadIdx.x;
  // Warp and warpgroup through a shuffle from lane 0, so the compiler knows they are warp-uniform
  // (a wgmma under a branch it thinks divergent gets serialised, ptxas C7520).
  const int warp = __shfl_sync(0xffffffffu, tid >> 5, 0);
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int wg = warp >> 2;  // warpgroup: rows 64·wg .. 64·wg + 63 of the block (v3: 2 = producer)
  const int wl = warp & 3;   // warp within the warpgroup: 16 of those rows

  int mBlock, h;
  prefill_block_coords<BLOCK_ORDER>(H, mBlock, h);
  const int hk = h / (H / Hkv);
  const int m0 = mBlock * BM;
  const int rowsHere = min(BM, T - m0);
  const int lastQueryPos = queryStart + m0 + rowsHere - 1;
  const int kvEnd = min(kvLen, lastQueryPos + 1);
  const int nTiles = (kvEnd + BN - 1) / BN;
#if SINK_LOCAL
  // The tiles holding sinks left of the block's first window tile first (more than one when sinkTokens >
  // BN), then the window's tiles.
  const int firstLow = sink_local_start(queryStart + m0, sinkTokens, localWindow, keepFraction);
  const int firstTile = firstLow / BN;
#if SINK_FOLD
  // Keys [firstTile·BN, firstLow) are left of every row's window (window starts never decrease) and
  // above the sinks (firstTile > 0): when the sinks fit there, their rows take those keys' places in
  // the first window tile, which the mask treats as sinks, and tile 0 is not visited.
  const int foldCols = (sinkTokens > 0 && firstTile > 0 && firstLow - firstTile * BN >= sinkTokens) ? sinkTokens : 0;
#else
  constexpr int foldCols = 0;
#endif
  const int sinkTiles = (sinkTokens > 0 && foldCols == 0) ? min((sinkTokens + BN - 1) / BN, firstTile) : 0;
#if !SINK_PERSIST
  auto tileAt = [&](int i) { return i < sinkTiles ? i : firstTile + i - sinkTiles; };
#endif
#else
  const int firstTile = max(0, queryStart + m0 - window + 1) / BN;
#endif

  float o[D / 8][4];
  float s[BN / 8][4];
  zero_accumulators<D, BN>(o, s);
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};

  PER_ITEM int wgFirstPos = queryStart + m0 + wg * 64;  // position of this warpgroup's first row
  PER_ITEM int qPos = wgFirstPos + wl * 16 + g;         // position of this lane's row g
#if !Q_IN_REGS
  const u32 qBase = sQ + wg * 64 * 128;  // this warpgroup's 64 rows of the Q tile
#endif

#if Q_IN_REGS
  // This warp's 16 rows of Q as m16n8k16 A fragments, one per k-step (filled once Q has landed).
  u32 qf[D / 16][4];
#endif
  // Issues S = Q·K_jᵀ (D / 16 k-steps; the first overwrites S).
  auto issueQK = [&](u32 kStage) {
#if Q_IN_REGS
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const u32 within = (kk & 3) * 32;  // k-step inside the 128-byte half
      wgmma_qk_rs(s, qf[kk], wgmma_desc_k_major(kStage + (kk >> 2) * KV_HALF + within), kk > 0 ? 1 : 0);
    }
#else
    issue_qk_ss<D, BN>(s, qBase, Q_HALF, kStage, KV_HALF);
#endif
  };
  // Masks keys right of the diagonal, past the cache, or outside the row's window (a sliding window's,
  // or sink + local's: neither a sink nor at or after the row's window start), only on tiles that reach them.
#if SINK_LOCAL
  PER_ITEM int wgLastLow = sink_local_start(wgFirstPos + 63, sinkTokens, localWindow, keepFraction);
  PER_ITEM int rowLow[2] = {sink_local_start(qPos, sinkTokens, localWindow, keepFraction),
                            sink_local_start(qPos + 8, sinkTokens, localWindow, keepFraction)};
  // Keys below sinkKeyEnd count as sinks: sinkTokens, or with the sinks folded the first foldCols places of
  // the first window tile, which hold them (every later tile's keys lie above both, so one bound serves).
  PER_ITEM int sinkKeyEnd = foldCols > 0 ? firstTile * BN + foldCols : sinkTokens;
#if SINK_MASK != 2
  auto tileLeftOfWindow = [&](int n0) { return n0 < wgLastLow; };
#endif
#if SINK_MASK == 0
  auto keyLeftOfWindow = [&](int key, int qp, int r) { return key >= sinkKeyEnd && key < rowLow[r]; };
#endif
#else
  auto tileLeftOfWindow = [&](int n0) { return n0 <= wgFirstPos + 63 - window; };
  auto keyLeftOfWindow = [&](int key, int qp, int) { return key <= qp - window; };
#endif
#if SINK_MASK == 1
  // Row r of this lane sees the columns c (key n0 + 2·t4 + c, c = nt·8 + 0 or 1) below sinkCols[r] and
  // those in [lo[r], lo[r] + span[r]]: the exact mask's keys (below sinkKeyEnd and at most the row and
  // the cache's last key; or from the row's window start to those), bounds set once per tile.
  auto maskScores = [&](int j) {
    const int n0 = j * BN;
    if ((n0 + BN - 1 > wgFirstPos) || (n0 + BN > kvLen) || tileLeftOfWindow(n0)) {
      const int base = n0 + 2 * t4;
      int sinkCols[2], lo[2];
      unsigned span[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int last = min(qPos + 8 * r, kvLen - 1);  // the row's last visible key
        sinkCols[r] = min(sinkKeyEnd, last + 1) - base;
        const int low = rowLow[r] - base, high = last - base;
        lo[r] = high >= low ? low : (1 << 30);  // an empty window (rows past T only) sees no key
        span[r] = high >= low ? (unsigned)(high - low) : 0u;
      }
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + (e & 1), r = e >> 1;
          if (!(c < sinkCols[r] || (unsigned)(c - lo[r]) <= span[r])) s[nt][e] = NEG_INF;
        }
      }
    }
  };
#elif SINK_MASK == 3
  // The lane's columns of a tile, c_k = 8·(k / 2) + 2·t4 + k % 2 (k < BN / 4), increase with k, so each of
  // the exact mask's key ranges is a range of k: colsBelow(x) counts the lane's columns below column x.
  auto colsBelow = [&](int x) {
    const int y = min(max(x - 2 * t4, 0), BN);
    return 2 * (y >> 3) + min(y & 7, 2);
  };
  auto lowBits = [](int m) { return m >= 32 ? 0xffffffffu : (1u << m) - 1u; };  // bits 0 .. m - 1
  auto maskScores = [&](int j) {
    const int n0 = j * BN;
    if ((n0 + BN - 1 > wgFirstPos) || (n0 + BN > kvLen) || tileLeftOfWindow(n0)) {
      u32 visible[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int last = min(qPos + 8 * r, kvLen - 1);  // the row's last visible key
        // Sinks below min(sinkKeyEnd, last + 1), and the window [rowLow, last] (empty when last < rowLow).
        visible[r] = lowBits(colsBelow(min(sinkKeyEnd, last + 1) - n0)) |
                     (lowBits(colsBelow(last + 1 - n0)) & ~lowBits(colsBelow(rowLow[r] - n0)));
      }
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (!((visible[e >> 1] >> (2 * nt + (e & 1))) & 1u)) s[nt][e] = NEG_INF;
        }
      }
    }
  };
#elif SINK_MASK == 2
  auto maskScores = [&](int) { (void)sinkKeyEnd; };  // timing only: every key of every visited tile counts
#else
  auto maskScores = [&](int j) {
    const int n0 = j * BN;
    if ((n0 + BN - 1 > wgFirstPos) || (n0 + BN > kvLen) || tileLeftOfWindow(n0)) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = n0 + nt * 8 + 2 * t4 + (e & 1);
          const int qp = qPos + (e < 2 ? 0 : 8);
          if (key > qp || key >= kvLen || keyLeftOfWindow(key, qp, e >> 1)) s[nt][e] = NEG_INF;
        }
      }
    }
  };
#endif
  u32 p[BN / 16][4];
  // Issues O += P·V from the V tile at vStage (BN / 16 k-steps).
  auto issuePV = [&](u32 vStage) { issue_pv<D, BN>(o, p, vStage, KV_HALF); };

#if WGMMA_VERSION <= 2
  // All 256 threads copy. Each copies one 16-byte column chunk of rows ldRow, ldRow + LD_ROWS, ...:
  // LD_ROWS is a multiple of 8, so all its rows share one swizzle phase and one offset serves them all.
  const int ldRow = tid / CHUNKS_PER_ROW, ldChunk = tid % CHUNKS_PER_ROW;
  {
    const u32 dst = sQ + swizzled_offset(ldRow, ldChunk, BM);
#pragma unroll
    for (int i = 0; i < BM / LD_ROWS; ++i) {
      const int t = m0 + ldRow + i * LD_ROWS;  // rows past T are zero-filled (never stored)
      const bf16_t* src = q + (size_t)min(t, T - 1) * qRowStride + (size_t)h * D + ldChunk * 8;
      cp_async16_at(dst + i * LD_ROWS * 128, src, t < T ? 16 : 0);
    }
  }
  const bf16_t* kSrc = k + ((size_t)hk * kvStride + ldRow) * D + ldChunk * 8;
  const bf16_t* vSrc = v + ((size_t)hk * kvStride + ldRow) * D + ldChunk * 8;
  const u32 kvDst = swizzled_offset(ldRow, ldChunk, BN);
  // Copies one K or V tile into a stage (no commit). Rows past the cache are zero-filled (0·V must
  // stay 0) and read nothing.
  auto loadTile = [&](u32 sBase, const bf16_t* src, int tile, int stage) {
    const int n0 = tile * BN;
#pragma unroll
    for (int i = 0; i < BN / LD_ROWS; ++i) {
      const bool inside = n0 + ldRow + i * LD_ROWS < kvLen;
      const size_t off = inside ? (size_t)(n0 + i * LD_ROWS) * D : 0;
      cp_async16_at(sBase + stage * KV_TILE + kvDst + i * LD_ROWS * 128, src + off, inside ? 16 : 0);
    }
  };
#endif

#if WGMMA_VERSION == 2
  // v2: P·V of tile j - 1 runs on the tensor cores while this warpgroup exponentiates tile j's scores.
  // Per iteration j: wait for K_j and V_{j-1}; start loading K_{j+1} and V_j; issue S = Q·K_jᵀ, then
  // O += P_{j-1}·V_{j-1}; wait for S alone, mask and exponentiate it (row max and sum updated, the
  // factor alpha kept); wait for P·V; rescale O by alpha and pack S into P. K and V tiles each keep two
  // stages; the barrier at the top orders every reuse (both products of the previous iteration were
  // waited for before it). Every product is issued under block-uniform conditions only: a wgmma under
  // a warpgroup-dependent branch makes ptxas serialise them all (C7520), so a warpgroup multiplies
  // tiles it cannot see too (masked to zero: at most the far half of the diagonal tile with 64-key
  // tiles, and tiles left of a sliding window).
  loadTile(sK, kSrc, firstTile, firstTile & 1);
  cp_async_commit();  // one group: Q and the first K tile
  for (int j = firstTile; j < nTiles; ++j) {
    cp_async_wait<0>();
    fence_proxy_async_shared();
    __syncthreads();
    if (j + 1 < nTiles) loadTile(sK, kSrc, j + 1, (j + 1) & 1);
    loadTile(sV, vSrc, j, j & 1);
    cp_async_commit();

    wgmma_fence();  // s, o and p were last written by ordinary instructions
    issueQK(sK + (j & 1) * KV_TILE);
    wgmma_commit();
    if (j > firstTile) issuePV(sV + ((j - 1) & 1) * KV_TILE);
    wgmma_commit();
    float alpha[2];
    wgmma_wait<1>();  // S is ready; P·V may still run
    wgmma_fence_operands(s);
    maskScores(j);
    flash_softmax_scores<BN / 8>(s, rowMax, rowSum, alpha, scaleLog2);
    wgmma_wait<0>();
    wgmma_fence_operands(o);
    flash_rescale_rows<D / 8>(o, alpha);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) flash_p_fragment(s, kk, p[kk]);
  }
  // The last tile's P·V: its V tile was loaded in the last iteration.
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
  wgmma_fence();
  issuePV(sV + ((nTiles - 1) & 1) * KV_TILE);
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(o);
#elif WGMMA_VERSION == 1
  // v1: per tile, S = Q·Kᵀ, softmax, O += P·V, each product waited for before the next step; tile
  // j + 1's K and V load while tile j is multiplied.
  // Warpgroup-uniform: does any of this warpgroup's 64 rows see a key of tile j?
  auto visible = [&](int j) { return j * BN <= wgFirstPos + 63 && j * BN + BN - 1 > wgFirstPos - window; };
  auto loadKV = [&](int tile, int stage) {
    loadTile(sK, kSrc, tile, stage);
    loadTile(sV, vSrc, tile, stage);
    cp_async_commit();
  };
  loadKV(firstTile, firstTile & 1);  // one group: Q and the first K/V tile
  for (int j = firstTile; j < nTiles; ++j) {
    if (j + 1 < nTiles) loadKV(j + 1, (j + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    fence_proxy_async_shared();
    __syncthreads();

    if (visible(j)) {
      wgmma_fence();
      issueQK(sK + (j & 1) * KV_TILE);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(s);
      maskScores(j);
      flash_online_softmax<BN / 8, D / 8>(s, o, rowMax, rowSum, scaleLog2);
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) flash_p_fragment(s, kk, p[kk]);
      wgmma_fence();  // o was rescaled and p written by ordinary instructions
      issuePV(sV + (j & 1) * KV_TILE);
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(o);
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
  }
#else
  // v3: warpgroup 2 (the producer, its registers cut to PRODUCER_REGS so that the consumers get
  // CONSUMER_REGS) fills the stages with cp.async; each copy completes on an mbarrier
  // (cp.async.mbarrier.arrive.noinc, one arrival per producer thread), so the producer never waits for
  // its own copies, only for a stage to be released: K and V each keep KV_STAGES stages with a "full"
  // and an "empty" barrier per stage (K_j is released once S = Q·K_jᵀ is done, V_j once its P·V is). The
  // warpgroups run v2's loop without any block barrier and take turns to issue their products
  // (named barriers 1 and 2: warpgroup w waits on 1 + w for the other's turn, then arrives on the
  // other's), so one warpgroup's softmax runs under the other's products.
  constexpr int S = KV_STAGES;
  constexpr int EMPTY_ARRIVALS = WARP_ARRIVALS ? CONSUMER_THREADS / 32 : CONSUMER_THREADS;
  // A consumer's release of a stage it has finished reading (one arrival per warp or per thread).
  auto release = [&](u32 bar) {
    if (!WARP_ARRIVALS || lane == 0) mbar_arrive(bar);
  };
  const u32 bars = sV + S * KV_TILE;  // fullQ, fullK[S], fullV[S], emptyK[S], emptyV[S]
  const u32 fullQ = bars, fullK = bars + 8, fullV = fullK + 8 * S, emptyK = fullV + 8 * S, emptyV = emptyK + 8 * S;
  if (tid == 0) init_stage_ring_barriers(fullQ, fullK, fullV, emptyK, emptyV, S, PRODUCER_THREADS, EMPTY_ARRIVALS);
#if SINK_PERSIST
  const u32 emptyQ = emptyV + 8 * S;  // released once both warpgroups have issued an item's last Q·Kᵀ
  if (tid == 0) {
    mbar_init(emptyQ, EMPTY_ARRIVALS);
    mbar_init_fence();
  }
#endif
  __syncthreads();
#if SINK_LOCAL
  const int numTiles = sinkTiles + nTiles - firstTile;
#else
  const int numTiles = nTiles - firstTile;
  auto tileAt = [&](int i) { return firstTile + i; };
#endif

#if SINK_PERSIST
  // Work item w: query block rowBlocks - 1 - w / H of head w % H (prefill_block_coords' global order).
  const int rowBlocks = (T + BM - 1) / BM;
  const int items = rowBlocks * H;
  // The one-block-per-item values above (from blockIdx) have no meaning here; each item computes its own.
  (void)hk;
  (void)numTiles;
  struct Item {
    int m0, h, firstTile, sinkTiles, foldCols, numTiles;
  };
  // The key tile an item visits i-th: its sink tiles, then its window's.
  auto itemTile = [&](const Item& it, int i) { return i < it.sinkTiles ? i : it.firstTile + i - it.sinkTiles; };
  // The item's rows and key tiles, by the rule of the non-persistent kernel above.
  auto itemAt = [&](int w) {
    Item it;
    it.m0 = (rowBlocks - 1 - w / H) * BM;
    it.h = w % H;
    const int itKvEnd = min(kvLen, queryStart + min(T, it.m0 + BM));
    const int itLow = sink_local_start(queryStart + it.m0, sinkTokens, localWindow, keepFraction);
    it.firstTile = itLow / BN;
    it.foldCols = (SINK_FOLD && sinkTokens > 0 && it.firstTile > 0 && itLow - it.firstTile * BN >= sinkTokens) ? sinkTokens : 0;
    it.sinkTiles = (sinkTokens > 0 && it.foldCols == 0) ? min((sinkTokens + BN - 1) / BN, it.firstTile) : 0;
    it.numTiles = it.sinkTiles + (itKvEnd + BN - 1) / BN - it.firstTile;
    return it;
  };
  // The items of this block: one per round of gridDim.x items, in a snake order (block b takes the b-th
  // item of even rounds and the b-th from the end of odd ones), so that every block's sum of the
  // heaviest-first items is within about one item's step of the others' (a plain stride gave block 0 the
  // heaviest item of every round: ~one heavy item of imbalance, 1-3 % at s = 0.5).
  const int G = gridDim.x, b = blockIdx.x;
  auto itemOfRound = [&](int r) { return r * G + ((r & 1) ? G - 1 - b : b); };
  // Rounds items / G are full; in the last, partial one this block has an item when its slot is below the rest.
  const int fullRounds = items / G;
  const int myItems = fullRounds + (((fullRounds & 1) ? G - 1 - b : b) < items - fullRounds * G ? 1 : 0);
  if (wg == 2) {
    set_max_registers_dec<PRODUCER_REGS>();
    const int pt = tid - CONSUMER_THREADS, pr = pt / CHUNKS_PER_ROW, chunk = pt % CHUNKS_PER_ROW;
    int st = 0;
    u32 use = 0;  // how many times stage st was filled before
    for (int n = 0; n < myItems; ++n) {
      const Item it = itemAt(itemOfRound(n));
      if (n > 0) mbar_wait(emptyQ, (n - 1) & 1);  // the previous item's last Q·Kᵀ were issued and done
      producer_copy_rows<BM>(sQ, q + (size_t)it.h * D + chunk * 8, (size_t)qRowStride, it.m0, T, pr, chunk);
      cp_async_mbar_arrive_noinc(fullQ);
      const int itHk = it.h / (H / Hkv);
      const bf16_t* kHead = k + (size_t)itHk * kvStride * D + chunk * 8;
      const bf16_t* vHead = v + (size_t)itHk * kvStride * D + chunk * 8;
      for (int i = 0; i < it.numTiles; ++i) {
        const int n0 = itemTile(it, i) * BN;
        // The fold tile alone takes the sink-reading copy (see the non-persistent producer).
        if (use > 0) mbar_wait(emptyK + 8 * st, (use - 1) & 1);
#if SINK_FOLD
        if (i == 0 && it.foldCols > 0) producer_copy_key_tile(sK + st * KV_TILE, kHead, n0, it.foldCols, kvLen, pr, chunk); else
#endif
        producer_copy_rows<BN>(sK + st * KV_TILE, kHead, D, n0, kvLen, pr, chunk);
        cp_async_mbar_arrive_noinc(fullK + 8 * st);
        if (use > 0) mbar_wait(emptyV + 8 * st, (use - 1) & 1);
#if SINK_FOLD
        if (i == 0 && it.foldCols > 0) producer_copy_key_tile(sV + st * KV_TILE, vHead, n0, it.foldCols, kvLen, pr, chunk); else
#endif
        producer_copy_rows<BN>(sV + st * KV_TILE, vHead, D, n0, kvLen, pr, chunk);
        cp_async_mbar_arrive_noinc(fullV + 8 * st);
        if (++st == S) { st = 0; ++use; }
      }
    }
    cp_async_wait<0>();  // leave no copy in flight behind an exited thread
  } else {
  set_max_registers_inc<CONSUMER_REGS>();

  if (wg == 1) named_bar_arrive(1, CONSUMER_THREADS);  // warpgroup 0 issues first
  int st = 0, pst = S - 1;  // stages of tiles i and i - 1 (counted over all of this block's items)
  u32 use = 0, puse = 0;    // how many times those stages were filled before
  for (int n = 0; n < myItems; ++n) {
    const Item it = itemAt(itemOfRound(n));
    // The turns continue from item to item; warpgroup 1's arrival after the block's very last tile
    // would have no matching wait.
    const bool lastItem = n + 1 == myItems;
    // This item's rows and windows, which maskScores reads.
    wgFirstPos = queryStart + it.m0 + wg * 64;
    qPos = wgFirstPos + wl * 16 + g;
    wgLastLow = sink_local_start(wgFirstPos + 63, sinkTokens, localWindow, keepFraction);
    rowLow[0] = sink_local_start(qPos, sinkTokens, localWindow, keepFraction);
    rowLow[1] = sink_local_start(qPos + 8, sinkTokens, localWindow, keepFraction);
    sinkKeyEnd = it.foldCols > 0 ? it.firstTile * BN + it.foldCols : sinkTokens;
    zero_accumulators<D, BN>(o, s);
    rowMax[0] = rowMax[1] = NEG_INF;
    rowSum[0] = rowSum[1] = 0.f;
    mbar_wait(fullQ, n & 1);
    for (int i = 0; i < it.numTiles; ++i) {
      const int j = itemTile(it, i);
      consumer_wait_stages(fullK, st, use, i > 0, fullV, pst, puse);
      named_bar_sync(1 + wg, CONSUMER_THREADS);
      consumer_issue_products([&, st] { issueQK(sK + st * KV_TILE); }, i > 0, [&, pst] { issuePV(sV + pst * KV_TILE); });
      if (wg == 0 || !(lastItem && i + 1 == it.numTiles)) named_bar_arrive(2 - wg, CONSUMER_THREADS);
      auto releaseK = [&, st, i] {
        release(emptyK + 8 * st);
        if (i + 1 == it.numTiles) release(emptyQ);  // the item's last read of Q
      };
      float alpha[2];
      consumer_scores_step(s, o, p, rowMax, rowSum, alpha, scaleLog2, releaseK, [&, j] { maskScores(j); },
                           i > 0, [&, pst] { release(emptyV + 8 * pst); });
      pst = st;
      puse = use;
      if (++st == S) { st = 0; ++use; }
    }
    // The item's last P·V (stage pst), then its stage goes back to the producer for the next item.
    consumer_last_pv(fullV + 8 * pst, puse & 1, [&, pst] { issuePV(sV + pst * KV_TILE); }, o);
    release(emptyV + 8 * pst);
    flash_store_rows<D / 8>(o, rowSum, out, it.m0 + wg * 64 + wl * 16, g, t4, T, H, it.h);
  }
  }  // consumers
#else
  if (wg == 2) {
    set_max_registers_dec<PRODUCER_REGS>();
    // 128 threads, each one 16-byte column chunk of rows pr, pr + P_ROWS, ... (producer_copy_rows).
    const int pt = tid - CONSUMER_THREADS, pr = pt / CHUNKS_PER_ROW, chunk = pt % CHUNKS_PER_ROW;
    // Q rows past T are zero-filled (never stored).
    producer_copy_rows<BM>(sQ, q + (size_t)h * D + chunk * 8, (size_t)qRowStride, m0, T, pr, chunk);
    cp_async_mbar_arrive_noinc(fullQ);
    const bf16_t* kHead = k + (size_t)hk * kvStride * D + chunk * 8;
    const bf16_t* vHead = v + (size_t)hk * kvStride * D + chunk * 8;
    int st = 0;
    u32 use = 0;  // how many times stage st was filled before
    for (int i = 0; i < numTiles; ++i) {
      const int n0 = tileAt(i) * BN;
      // Rows past the cache are zero-filled (0·V must stay 0) and read nothing.
      // The fold tile (the first visited) takes its own copy, so that every other tile's copy is the plain
      // one (a per-row select in every copy cost 1-3 % at s = 0.5: the producer's issue slots are the
      // consumers' too).
      if (use > 0) mbar_wait(emptyK + 8 * st, (use - 1) & 1);
#if SINK_FOLD
      if (i == 0 && foldCols > 0) producer_copy_key_tile(sK + st * KV_TILE, kHead, n0, foldCols, kvLen, pr, chunk); else
#endif
      producer_copy_rows<BN>(sK + st * KV_TILE, kHead, D, n0, kvLen, pr, chunk);
      cp_async_mbar_arrive_noinc(fullK + 8 * st);
      if (use > 0) mbar_wait(emptyV + 8 * st, (use - 1) & 1);
#if SINK_FOLD
      if (i == 0 && foldCols > 0) producer_copy_key_tile(sV + st * KV_TILE, vHead, n0, foldCols, kvLen, pr, chunk); else
#endif
      producer_copy_rows<BN>(sV + st * KV_TILE, vHead, D, n0, kvLen, pr, chunk);
      cp_async_mbar_arrive_noinc(fullV + 8 * st);
      if (++st == S) { st = 0; ++use; }
    }
    cp_async_wait<0>();  // leave no copy in flight behind an exited thread
  } else {
  set_max_registers_inc<CONSUMER_REGS>();

  if (wg == 1) named_bar_arrive(1, CONSUMER_THREADS);  // warpgroup 0 issues first
  mbar_wait(fullQ, 0);
#if Q_IN_REGS
  {
    // ldmatrix.x4: lane l addresses row l % 8 of matrix l / 8 (rows +8 for odd matrices, columns +8
    // for matrices 2 and 3), giving the A fragment of one k-step.
    const int mi = lane >> 3, qRow = wg * 64 + wl * 16 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], sQ + swizzled_offset(qRow, 2 * kk + (mi >> 1), BM));
    }
  }
#endif
  int st = 0, pst = S - 1;  // stages of tiles i and i - 1
  u32 use = 0, puse = 0;    // how many times those stages were filled before
  for (int i = 0; i < numTiles; ++i) {
    const int j = tileAt(i);
    consumer_wait_stages(fullK, st, use, i > 0, fullV, pst, puse);
    named_bar_sync(1 + wg, CONSUMER_THREADS);  // this warpgroup's turn to issue
    consumer_issue_products([&, st] { issueQK(sK + st * KV_TILE); }, i > 0, [&, pst] { issuePV(sV + pst * KV_TILE); });
    // The other warpgroup's turn (warpgroup 1's last arrival would have no matching wait).
    if (wg == 0 || i + 1 < numTiles) named_bar_arrive(2 - wg, CONSUMER_THREADS);
    float alpha[2];
    consumer_scores_step(s, o, p, rowMax, rowSum, alpha, scaleLog2, [&, st] { release(emptyK + 8 * st); }, [&, j] { maskScores(j); },
                         i > 0, [&, pst] { release(emptyV + 8 * pst); });
    pst = st;
    puse = use;
    if (++st == S) { st = 0; ++use; }
  }
  // The last tile's P·V (stage pst now).
  consumer_last_pv(fullV + 8 * pst, puse & 1, [&, pst] { issuePV(sV + pst * KV_TILE); }, o);
  store_output(o, rowSum, out, H, T, wg, wl, g, t4);
  }  // consumers (setmaxnreg needs the two roles as the two branches of one if/else)
#endif
#endif

#if WGMMA_VERSION <= 2
  store_output(o, rowSum, out, H, T, wg, wl, g, t4);
#endif
}
