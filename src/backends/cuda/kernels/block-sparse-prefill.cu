// Block-sparse causal flash-attention prefill (bf16 in, fp32 accumulate, bf16 out) for the Block-Sparse
// method: every (query head, c-row query chunk) keeps a list of c-key chunks; inside them the causal
// mask is exact. Two kernels:
//
// block_sparse_union: one block per attention CTA. A CTA serves 4 warps, each one 16-row query tile:
//   HEADS_PER_CTA query heads of one KV group x (4 / HEADS_PER_CTA) consecutive query tiles. The union
//   of the 4 warps' key tiles (16 keys each) is written ascending, each entry tagged with a 4-bit mask
//   of the warps that selected it: entry = keyTile | warpMask << 24.
// block_sparse_prefill: the CTA streams its union through shared memory, 64 keys (four 16-key
//   sub-tiles, arbitrary tile indices) per step, cp.async double-buffered, so a K/V tile is read from
//   memory once per CTA however many of its warps use it. Each warp runs the QK^T and PV products only
//   for the sub-tiles its mask names (warp-uniform branches) and masks the rest to -inf; the exact
//   causal mask applies on sub-tiles that reach a warp's diagonal or the end of the cache.
//
// Layouts (row-major, D = HEAD_DIM; queries are positions 0 .. T-1, the whole prompt):
//   q       : [T, qRowStride], head h of token t at t * qRowStride + h * D
//   out     : [T, H, D]
//   k, v    : [Hkv, kvStride, D] per-KV-head rows; rows [0, kvLen) valid, kvLen >= T
//   lists   : [H, numChunks, listStride] int32, counts [H, numChunks]: query chunk m (c = 16 * CHUNK_TILES
//             rows) of head h keeps key chunks lists[(h * numChunks + m) * listStride + i], i < count
//   union   : [H / HEADS_PER_CTA, numCtaRows, unionStride] entries, unionCounts [same minus stride]
// A query tile whose list is empty writes zeros (nothing attended), as the CPU kernels do.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), HEADS_PER_CTA (1, 2 or 4).
#include "common.cuh"
#include "flash-tile.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef HEADS_PER_CTA
#define HEADS_PER_CTA 1
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int THREADS = 32 * WARPS;
constexpr int HPC = HEADS_PER_CTA;
constexpr int QT = WARPS / HPC;  // query tiles per CTA (per head)
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
static_assert(TILE % LD_ROWS == 0 && TILE % WARP_Q_ROWS == 0, "tile rows must split evenly over the copies");
}  // namespace

__device__ __forceinline__ void cp_async4(u32 dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src), "r"(src_bytes));
}

extern "C" __global__ void __launch_bounds__(THREADS) block_sparse_union(
    const int* __restrict__ lists, const int* __restrict__ counts, int* __restrict__ unionEntries,
    int* __restrict__ unionCounts, int listStride, int numChunks, int chunkTiles, int numQueryTiles, int kvLen,
    int unionStride) {
  extern __shared__ u32 nibbles[];  // one 4-bit warp mask per key tile, 8 tiles a word
  __shared__ int warpTotals[WARPS];
  const int tid = threadIdx.x;
  const int cr = blockIdx.x, hg = blockIdx.y;
  const int cta = hg * gridDim.x + cr;
  const int qt0 = cr * QT;
  const int lastTile = min(numQueryTiles, qt0 + QT) - 1;  // no key tile lies right of it
  const int words = lastTile / 8 + 1;
  for (int i = tid; i < words; i += THREADS) nibbles[i] = 0u;
  __syncthreads();
  for (int w = 0; w < WARPS; ++w) {
    const int h = hg * HPC + w / QT;
    const int qt = qt0 + w % QT;
    if (qt >= numQueryTiles) continue;  // same for every thread
    const int m = qt / chunkTiles;
    const int count = counts[h * numChunks + m];
    const int* list = lists + ((size_t)h * numChunks + m) * listStride;
    const int lastQuery = qt * TILE + TILE - 1;
    for (int i = tid; i < count * chunkTiles; i += THREADS) {
      const int kt = list[i / chunkTiles] * chunkTiles + i % chunkTiles;
      // Tiles wholly above this tile's diagonal or past the cache hold no attended pair: dropped.
      if (kt >= 0 && kt * TILE <= lastQuery && kt * TILE < kvLen) atomicOr(&nibbles[kt >> 3], (1u << w) << (4 * (kt & 7)));
    }
  }
  __syncthreads();

  // Ascending compaction: each thread owns a run of words; a block-wide exclusive scan of the counts.
  const int per = (words + THREADS - 1) / THREADS;
  const int wb = min(words, tid * per), we = min(words, wb + per);
  int mine = 0;
  for (int i = wb; i < we; ++i) {
    const u32 x = nibbles[i];
    mine += __popc((x | (x >> 1) | (x >> 2) | (x >> 3)) & 0x11111111u);
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
    const u32 x = nibbles[i];
    if (x == 0u) continue;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const u32 mask = (x >> (4 * e)) & 15u;
      if (mask != 0u) {
        if (pos < unionStride) dst[pos] = (i * 8 + e) | (int)(mask << 24);
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
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);  // [WARPS * TILE][LDS]
  bf16_t* sK = sQ + WARPS * TILE * LDS;              // [2][BN][LDS]
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
  const int h = hg * HPC + warp / QT;
  const int qt = cr * QT + warp % QT;
  const int hk = (hg * HPC) / (H / Hkv);  // HEADS_PER_CTA divides the group: one KV head per CTA
  const int U = unionCounts[cta];
  const int* entries = unionEntries + (size_t)cta * unionStride;
  const int nSteps = (U + SUB - 1) / SUB;

  // Each warp's own Q tile (its head, its rows); rows past T are zero-filled and never stored.
  {
    const int r0 = lane / CPR, col = (lane % CPR) * 8;
#pragma unroll
    for (int i = 0; i < TILE / WARP_Q_ROWS; ++i) {
      const int r = r0 + i * WARP_Q_ROWS;
      const int t = qt * TILE + r;
      const bf16_t* src = q + (size_t)min(t, T - 1) * qRowStride + (size_t)h * D + col;
      cp_async16(sQ + (warp * TILE + r) * LDS + col, src, t < T ? 16 : 0);
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
  // of step + 1 into their ring slot, as one cp.async group. Sub-tiles no warp uses are not loaded.
  auto issueStep = [&](int step) {
    const u32 stageOff = (step & 1) * BN * ROW_BYTES;
#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      const int e = sEntries[step % 3][st];
      if ((e >> 24) == 0) continue;
      const int n0 = (e & 0xffffff) * TILE;
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
  u32 qf[D / 16][4];
  {
    const u32 qLane = smem_addr(sQ) + (warp * TILE + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
  }
  if (nSteps > 0) issueStep(0);

  float o[DT][4];
#pragma unroll
  for (int i = 0; i < DT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};

  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const int firstQuery = qt * TILE;
  const int qPos = firstQuery + g;

  for (int step = 0; step < nSteps; ++step) {
    cp_async_wait<0>();
    __syncthreads();  // this step's K/V and the next step's entries are in; the other stage is free
    if (step + 1 < nSteps) issueStep(step + 1);

    int e[SUB];
    u32 bits = 0u;
#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      e[st] = sEntries[step % 3][st];
      bits |= (((u32)e[st] >> (24 + warp)) & 1u) << st;
    }
    if (bits == 0u) continue;  // warp-uniform: none of these key tiles is this warp's

    const u32 stageOff = (step & 1) * BN * ROW_BYTES;
    float s[2 * SUB][4];
#pragma unroll
    for (int st = 0; st < SUB; ++st) {
#pragma unroll
      for (int half = 0; half < 2; ++half) s[2 * st + half][0] = s[2 * st + half][1] = s[2 * st + half][2] = s[2 * st + half][3] = 0.f;
      if (bits & (1u << st)) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          u32 b0, b1, b2, b3;
          ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + st * TILE * ROW_BYTES + kk * 32);
          mma_bf16_16816(s[2 * st], qf[kk], b0, b1);
          mma_bf16_16816(s[2 * st + 1], qf[kk], b2, b3);
        }
        const int n0 = (e[st] & 0xffffff) * TILE;
        if (n0 + TILE - 1 > firstQuery || n0 + TILE > kvLen) flash_causal_mask16<2 * SUB>(s, st, n0, qPos, kvLen, t4);
      } else {
#pragma unroll
        for (int half = 0; half < 2; ++half) s[2 * st + half][0] = s[2 * st + half][1] = s[2 * st + half][2] = s[2 * st + half][3] = NEG_INF;
      }
    }

    flash_online_softmax<2 * SUB, DT>(s, o, rowMax, rowSum, scaleLog2);

#pragma unroll
    for (int st = 0; st < SUB; ++st) {
      if (!(bits & (1u << st))) continue;
      u32 a[4];
      flash_p_fragment<2 * SUB>(s, st, a);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans_at(b0, b1, b2, b3, vLane + stageOff + st * TILE * ROW_BYTES + dp * 32);
        mma_bf16_16816(o[2 * dp], a, b0, b1);
        mma_bf16_16816(o[2 * dp + 1], a, b2, b3);
      }
    }
  }
  cp_async_wait<0>();

  flash_store_rows<DT>(o, rowSum, out, firstQuery, g, t4, T, H, h);
}
