// Block-sparse causal flash-attention prefill (bf16 in, fp32 accumulate, bf16 out) for the Block-Sparse
// method: every (query head, c-row query chunk) keeps a list of c-key chunks; inside them the causal
// mask is exact. Two kernels:
//
// block_sparse_union: one block per attention CTA. A CTA has 4 warps of M_TILES 16-row query tiles
//   each: SLOTS = 4 * M_TILES tiles, HEADS_PER_CTA query heads of one KV group x (SLOTS / HEADS_PER_CTA)
//   consecutive tiles; slot s is head s / (SLOTS / HEADS_PER_CTA), tile s % (SLOTS / HEADS_PER_CTA), and
//   warp w owns slots w * M_TILES ... The union of the slots' key tiles (16 keys each) is written
//   ascending, each entry tagged with the mask of the slots that selected it: keyTile | slotMask << 24.
// block_sparse_prefill: the CTA streams its union through shared memory, 64 keys (four 16-key
//   sub-tiles, arbitrary tile indices) per step, cp.async double-buffered, so a K/V tile is read from
//   memory once per CTA however many of its slots use it. A warp runs the QK^T and PV products only for
//   the (sub-tile, slot) pairs the mask names (warp-uniform branches; a K or V fragment read from shared
//   memory serves both of a warp's slots when both selected it) and masks the rest to -inf; the exact
//   causal mask applies on sub-tiles that reach a slot's diagonal or the end of the cache.
//
// Layouts (row-major, D = HEAD_DIM; queries are positions 0 .. T-1, the whole prompt):
//   q       : [T, qRowStride], head h of token t at t * qRowStride + h * D
//   out     : [T, H, D]
//   k, v    : [Hkv, kvStride, D] per-KV-head rows; rows [0, kvLen) valid, kvLen >= T
//   lists   : [H, numChunks, listStride] int32, counts [H, numChunks]: query chunk m (c = 16 * chunkTiles
//             rows) of head h keeps key chunks lists[(h * numChunks + m) * listStride + i], i < count
//   union   : [H / HEADS_PER_CTA, numCtaRows, unionStride] entries, unionCounts [same minus stride]
// A query tile whose list is empty writes zeros (nothing attended), as the CPU kernels do.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), HEADS_PER_CTA (1, 2 or 4), M_TILES (1 or 2; with 1 a
// warp keeps its Q fragments in registers, with 2 it re-reads them from shared memory per step).
#include "common.cuh"
#include "flash-tile.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef HEADS_PER_CTA
#define HEADS_PER_CTA 1
#endif
#ifndef M_TILES
#define M_TILES 1
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int THREADS = 32 * WARPS;
constexpr int HPC = HEADS_PER_CTA;
constexpr int MT = M_TILES;
constexpr int SLOTS = WARPS * MT;  // query tiles per CTA
constexpr int QT = SLOTS / HPC;    // query tiles per CTA and head
constexpr bool Q_IN_REGS = MT == 1;
constexpr int SLOT_BITS = SLOTS;          // union-kernel bitmap: one slot mask per key tile
constexpr int TILES_PER_WORD = 32 / SLOT_BITS;
constexpr int TILE = 16;         // rows of a query tile = keys of a key tile
constexpr int SUB = 4;           // key sub-tiles per step
constexpr int BN = SUB * TILE;   // keys per step
constexpr int LDS = D + 8;       // padded row stride (conflict-free ldmatrix), as in flash-prefill.cu
constexpr int CPR = D / 8;       // 16-byte pieces per row
constexpr int LD_ROWS = THREADS / CPR;       // rows one block-wide copy pass covers
constexpr int WARP_Q_ROWS = 32 / CPR;        // rows one warp-wide copy pass covers
constexpr u32 ROW_BYTES = LDS * 2;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(HPC == 1 || HPC == 2 || HPC == 4, "HEADS_PER_CTA must be 1, 2 or 4");
static_assert(MT == 1 || MT == 2, "M_TILES must be 1 or 2");
static_assert(TILE % LD_ROWS == 0 && TILE % WARP_Q_ROWS == 0, "tile rows must split evenly over the copies");
}  // namespace

__device__ __forceinline__ void cp_async4(u32 dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src), "r"(src_bytes));
}

extern "C" __global__ void __launch_bounds__(THREADS) block_sparse_union(
    const int* __restrict__ lists, const int* __restrict__ counts, int* __restrict__ unionEntries,
    int* __restrict__ unionCounts, int listStride, int numChunks, int chunkTiles, int numQueryTiles, int kvLen,
    int unionStride) {
  extern __shared__ u32 slotMasks[];  // one SLOT_BITS-wide slot mask per key tile, TILES_PER_WORD a word
  __shared__ int warpTotals[WARPS];
  const int tid = threadIdx.x;
  const int cr = blockIdx.x, hg = blockIdx.y;
  const int cta = hg * gridDim.x + cr;
  const int qt0 = cr * QT;
  const int lastTile = min(numQueryTiles, qt0 + QT) - 1;  // no key tile lies right of it
  const int words = lastTile / TILES_PER_WORD + 1;
  for (int i = tid; i < words; i += THREADS) slotMasks[i] = 0u;
  __syncthreads();
  for (int slot = 0; slot < SLOTS; ++slot) {
    const int h = hg * HPC + slot / QT;
    const int qt = qt0 + slot % QT;
    if (qt >= numQueryTiles) continue;  // same for every thread
    const int m = qt / chunkTiles;
    const int count = counts[h * numChunks + m];
    const int* list = lists + ((size_t)h * numChunks + m) * listStride;
    const int lastQuery = qt * TILE + TILE - 1;
    for (int i = tid; i < count * chunkTiles; i += THREADS) {
      const int kt = list[i / chunkTiles] * chunkTiles + i % chunkTiles;
      // Tiles wholly above this tile's diagonal or past the cache hold no attended pair: dropped.
      if (kt >= 0 && kt * TILE <= lastQuery && kt * TILE < kvLen) {
        atomicOr(&slotMasks[kt / TILES_PER_WORD], (1u << slot) << (SLOT_BITS * (kt % TILES_PER_WORD)));
      }
    }
  }
  __syncthreads();

  // Ascending compaction: each thread owns a run of words; a block-wide exclusive scan of the counts.
  constexpr u32 FIELD = SLOT_BITS == 32 ? 0xffffffffu : (1u << SLOT_BITS) - 1u;
  const int per = (words + THREADS - 1) / THREADS;
  const int wb = min(words, tid * per), we = min(words, wb + per);
  int mine = 0;
  for (int i = wb; i < we; ++i) {
    const u32 x = slotMasks[i];
#pragma unroll
    for (int e = 0; e < TILES_PER_WORD; ++e) mine += ((x >> (SLOT_BITS * e)) & FIELD) != 0u;
  }
  const int lane = tid & 31, warp = tid >> 5;
  int incl = mine;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += y;
  }
  if (lane == 31) warpTotals[warp] = incl;
  __syncthreads();
  int pos = incl - mine;
  for (int w = 0; w < warp; ++w) pos += warpTotals[w];
  int* dst = unionEntries + (size_t)cta * unionStride;
  for (int i = wb; i < we; ++i) {
    const u32 x = slotMasks[i];
    if (x == 0u) continue;
#pragma unroll
    for (int e = 0; e < TILES_PER_WORD; ++e) {
      const u32 mask = (x >> (SLOT_BITS * e)) & FIELD;
      if (mask != 0u) {
        if (pos < unionStride) dst[pos] = (int)((u32)(i * TILES_PER_WORD + e) | (mask << 24));
        ++pos;
      }
    }
  }
  if (tid == THREADS - 1) {
    int total = 0;
    for (int w = 0; w < WARPS; ++w) total += warpTotals[w];
    unionCounts[cta] = min(total, unionStride);
  }
}

extern "C" __global__ void __launch_bounds__(THREADS) block_sparse_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int* __restrict__ unionEntries, const int* __restrict__ unionCounts, int T, int H, int Hkv, int qRowStride,
    int kvStride, int kvLen, int numQueryTiles, int unionStride, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);  // [SLOTS * TILE][LDS]
  bf16_t* sK = sQ + SLOTS * TILE * LDS;              // [2][BN][LDS]
  bf16_t* sV = sK + 2 * BN * LDS;                    // [2][BN][LDS]
  __shared__ int sEntries[3][SUB];                    // union entries of three consecutive steps

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int mi = lane >> 3;

  // Heaviest (latest) query tiles first: their unions are the longest, so the tail is short.
  const int cr = gridDim.x - 1 - blockIdx.x;
  const int hg = blockIdx.y;
  const int cta = hg * gridDim.x + cr;
  const int hk = (hg * HPC) / (H / Hkv);  // HEADS_PER_CTA divides the group: one KV head per CTA
  const int U = unionCounts[cta];
  const int* entries = unionEntries + (size_t)cta * unionStride;
  const int nSteps = (U + SUB - 1) / SUB;
  // This warp's slots: head and first query of each.
  int head[MT], firstQuery[MT];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const int slot = warp * MT + m;
    head[m] = hg * HPC + slot / QT;
    firstQuery[m] = (cr * QT + slot % QT) * TILE;
  }

  // Each warp loads its own slots' Q tiles; rows past T are zero-filled and never stored.
  {
    const int r0 = lane / CPR, col = (lane % CPR) * 8;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
      for (int i = 0; i < TILE / WARP_Q_ROWS; ++i) {
        const int r = r0 + i * WARP_Q_ROWS;
        const int t = firstQuery[m] + r;
        const bf16_t* src = q + (size_t)min(t, T - 1) * qRowStride + (size_t)head[m] * D + col;
        cp_async16(sQ + ((warp * MT + m) * TILE + r) * LDS + col, src, t < T ? 16 : 0);
      }
    }
  }
  const u32 sEntAddr = smem_addr(&sEntries[0][0]);
  if (tid < SUB) cp_async4(sEntAddr + tid * 4, entries + min(tid, max(U - 1, 0)), tid < U ? 4 : 0);
  cp_async_commit();

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;
  const int ldRow = tid / CPR, ldCol = (tid % CPR) * 8;
  const u32 kDst = smem_addr(sK) + (ldRow * LDS + ldCol) * 2;
  const u32 vDst = smem_addr(sV) + (ldRow * LDS + ldCol) * 2;
  // K/V sub-tiles of `step` (entries already in shared memory) into stage step & 1, and the entries
  // of step + 1 into their ring slot, as one cp.async group. Sub-tiles no slot uses are not loaded.
  auto issueStep = [&](int step) {
    const u32 stageOff = (step & 1) * BN * ROW_BYTES;
#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      const u32 e = (u32)sEntries[step % 3][st];
      if ((e >> 24) == 0u) continue;
      const int n0 = (int)(e & 0xffffffu) * TILE;
#pragma unroll
      for (int i = 0; i < TILE / LD_ROWS; ++i) {
        const int key = n0 + ldRow + i * LD_ROWS;
        const bool inside = key < kvLen;  // rows past the cache: zeros (0 * V must stay 0), nothing read
        const size_t off = (size_t)(inside ? key : 0) * D + ldCol;
        const u32 rowOff = stageOff + (st * TILE + i * LD_ROWS) * ROW_BYTES;
        cp_async16_at(kDst + rowOff, kHead + off, inside ? 16 : 0);
        cp_async16_at(vDst + rowOff, vHead + off, inside ? 16 : 0);
      }
    }
    if (tid < SUB) {
      const int next = (step + 1) * SUB + tid;
      cp_async4(sEntAddr + (((step + 1) % 3) * SUB + tid) * 4, entries + min(next, max(U - 1, 0)), next < U ? 4 : 0);
    }
    cp_async_commit();
  };

  cp_async_wait<0>();
  __syncthreads();
  constexpr int DT = D / 8;
  constexpr int NT = 2 * SUB;  // 8-key column tiles per step
  const u32 qLane = smem_addr(sQ) + (warp * MT * TILE + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  u32 qf[Q_IN_REGS ? D / 16 : 1][4];
  if (Q_IN_REGS) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[Q_IN_REGS ? kk : 0][0], qf[Q_IN_REGS ? kk : 0][1], qf[Q_IN_REGS ? kk : 0][2], qf[Q_IN_REGS ? kk : 0][3], qLane + kk * 32);
  }
  if (nSteps > 0) issueStep(0);

  float o[MT][DT][4];
  float rowMax[MT][2], rowSum[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int i = 0; i < DT; ++i) o[m][i][0] = o[m][i][1] = o[m][i][2] = o[m][i][3] = 0.f;
    rowMax[m][0] = rowMax[m][1] = NEG_INF;
    rowSum[m][0] = rowSum[m][1] = 0.f;
  }

  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;

  for (int step = 0; step < nSteps; ++step) {
    cp_async_wait<0>();
    __syncthreads();  // this step's K/V and the next step's entries are in; the other stage is free
    if (step + 1 < nSteps) issueStep(step + 1);

    // bits[m] bit st: slot m of this warp selected sub-tile st.
    u32 bits[MT];
    int n0[SUB];
#pragma unroll
    for (int m = 0; m < MT; ++m) bits[m] = 0u;
#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      const u32 e = (u32)sEntries[step % 3][st];
      n0[st] = (int)(e & 0xffffffu) * TILE;
#pragma unroll
      for (int m = 0; m < MT; ++m) bits[m] |= ((e >> (24 + warp * MT + m)) & 1u) << st;
    }
    u32 any = 0u;
#pragma unroll
    for (int m = 0; m < MT; ++m) any |= bits[m];
    if (any == 0u) continue;  // warp-uniform: none of these key tiles is this warp's

    const u32 stageOff = (step & 1) * BN * ROW_BYTES;
    float s[MT][NT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int i = 0; i < NT; ++i) s[m][i][0] = s[m][i][1] = s[m][i][2] = s[m][i][3] = 0.f;
    // S = Q K^T over the selected (slot, sub-tile) pairs. With Q in registers (M_TILES = 1), sub-tiles
    // outermost: one warp-uniform branch skips a whole unselected sub-tile (measured faster than dims
    // outermost, docs/perf.md). With M_TILES = 2, dims outermost: a Q fragment read from shared memory
    // serves all four sub-tiles and a K fragment both slots, as in the dense kernel.
    if (Q_IN_REGS) {
#pragma unroll
      for (int st = 0; st < SUB; ++st) {
        if (!(bits[0] & (1u << st))) continue;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          u32 b0, b1, b2, b3;
          ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + st * TILE * ROW_BYTES + kk * 32);
          mma_bf16_16816(s[0][2 * st], qf[Q_IN_REGS ? kk : 0], b0, b1);
          mma_bf16_16816(s[0][2 * st + 1], qf[Q_IN_REGS ? kk : 0], b2, b3);
        }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        u32 qa[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) ldmatrix_x4_at(qa[m][0], qa[m][1], qa[m][2], qa[m][3], qLane + m * TILE * ROW_BYTES + kk * 32);
#pragma unroll
        for (int st = 0; st < SUB; ++st) {
          if (!(any & (1u << st))) continue;
          u32 b0, b1, b2, b3;
          ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + st * TILE * ROW_BYTES + kk * 32);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            if (!(bits[m] & (1u << st))) continue;
            mma_bf16_16816(s[m][2 * st], qa[m], b0, b1);
            mma_bf16_16816(s[m][2 * st + 1], qa[m], b2, b3);
          }
        }
      }
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      if (bits[m] == 0u) continue;  // warp-uniform: this slot has nothing in this step
#pragma unroll
      for (int st = 0; st < SUB; ++st) {
        if (bits[m] & (1u << st)) {
          if (n0[st] + TILE - 1 > firstQuery[m] || n0[st] + TILE > kvLen) flash_causal_mask16<NT>(s[m], st, n0[st], firstQuery[m] + g, kvLen, t4);
        } else {
#pragma unroll
          for (int half = 0; half < 2; ++half) s[m][2 * st + half][0] = s[m][2 * st + half][1] = s[m][2 * st + half][2] = s[m][2 * st + half][3] = NEG_INF;
        }
      }
      flash_online_softmax<NT, DT>(s[m], o[m], rowMax[m], rowSum[m], scaleLog2);
    }

#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      if (!(any & (1u << st))) continue;
      u32 a[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) flash_p_fragment<NT>(s[m], st, a[m]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans_at(b0, b1, b2, b3, vLane + stageOff + st * TILE * ROW_BYTES + dp * 32);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (!(bits[m] & (1u << st))) continue;
          mma_bf16_16816(o[m][2 * dp], a[m], b0, b1);
          mma_bf16_16816(o[m][2 * dp + 1], a[m], b2, b3);
        }
      }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int m = 0; m < MT; ++m) flash_store_rows<DT>(o[m], rowSum[m], out, firstQuery[m], g, t4, T, H, head[m]);
}
