// Vertical-Slash sparse prefill (bf16 in, fp32 accumulate, bf16 out): one block per (64-row query
// block m, query head h), FlashAttention-2 style (mma.sync m16n8k16, online softmax in the log2
// domain, P kept in registers, K/V tiles two stages deep by cp.async). M_TILES = 1: four warps of 16
// rows, Q fragments in registers; M_TILES = 2: two warps of 32 rows, Q re-read from shared memory,
// each K/V fragment serving both row tiles (half the shared-memory reads per FLOP, half the warps).
// A block visits only what its index lists (vertical-slash-index.cu):
//   1. its key ranges (the kept diagonals, merged into 64-wide ranges): 64-key tiles from each range's
//      start, clipped to the block's last row; causal mask key <= query on the tiles that reach it;
//   2. its kept columns outside those ranges (all left of the block, so no mask): gathered 64 rows at
//      a time from the flat column list, the last tile's empty slots masked.
// Optional per-row window (sink + local): with rowLow non-null, query row t sees a range key only if
// key < sinkCount or key >= rowLow[t] (besides key <= its position).
// Layouts: q [T, qRowStride] (head h at h·D; query t at position queryStart + t); k, v [Hkv, kvStride, D]
// (row r = position r; rows [0, queryStart + T) valid); out [T, H, D]; ranges int2 at
// h·perHead + vs_range_offset(m, C) (absolute key positions); rangeCount [H, numBlocks];
// colStart [H·numBlocks + 1] into colList.
// GQA: query head h reads KV head h / (H / Hkv). Codegen: HEAD_DIM (64 or 128), M_TILES (1 or 2).
#include "common.cuh"
#include "flash-tile.cuh"
#include "vertical-slash-ranges.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef M_TILES
#define M_TILES 1
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int MT = M_TILES;
constexpr int WARPS = 4 / MT;
constexpr int THREADS = 32 * WARPS;
constexpr int WARP_ROWS = 16 * MT;
constexpr int BM = WARP_ROWS * WARPS;  // 64: the pattern's query block
constexpr bool Q_IN_REGS = MT == 1;
constexpr int BN = 64;
constexpr int LDS = D + 8;
constexpr u32 ROW_BYTES = LDS * 2;
constexpr int CHUNKS_PER_ROW = D / 8;
constexpr int LD_ROWS = THREADS / CHUNKS_PER_ROW;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(MT == 1 || MT == 2, "M_TILES must be 1 or 2");
constexpr int END_OF_TILES = -2147483647 - 1;
static_assert(BN % LD_ROWS == 0, "tile rows must split evenly over the threads");

}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int2* __restrict__ ranges, const int* __restrict__ rangeCount, const int* __restrict__ colStart,
    const int* __restrict__ colList, const int* __restrict__ rowLow, int sinkCount, int T, int queryStart, int H, int Hkv,
    int qRowStride, int kvStride, int C, int perHead, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);  // [BM][LDS]
  bf16_t* sK = sQ + BM * LDS;                        // [2][BN][LDS]
  bf16_t* sV = sK + 2 * BN * LDS;                    // [2][BN][LDS]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3, mi = lane >> 3;
  const int numBlocks = gridDim.x;
  // Later blocks list more keys: they start first, so the tail is short.
  const int m = numBlocks - 1 - blockIdx.x;
  const int h = blockIdx.y, hk = h / (H / Hkv);
  const int start = m * BM;                                  // first query row of the block
  const int kvLen = queryStart + T;
  const int maxPos = queryStart + min(start + BM, T) - 1;  // position of its last row
  const size_t hm = (size_t)h * numBlocks + m;
  const int2* R = ranges + (size_t)h * perHead + vs_range_offset(m, C);
  const int numRanges = rangeCount[hm];
  const int c0 = colStart[hm], numCols = colStart[hm + 1] - c0;
  const int* cols = colList + c0;

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;
  const int ldRow = tid / CHUNKS_PER_ROW, ldCol = (tid % CHUNKS_PER_ROW) * 8;
  const u32 kDst = smem_addr(sK) + (ldRow * LDS + ldCol) * 2;
  const u32 vDst = smem_addr(sV) + (ldRow * LDS + ldCol) * 2;

  // Q tile; rows past T are zero-filled (never stored).
  for (int c = tid; c < BM * CHUNKS_PER_ROW; c += THREADS) {
    const int r = c / CHUNKS_PER_ROW, cc = c % CHUNKS_PER_ROW;
    const int t = start + r;
    cp_async16(sQ + r * LDS + cc * 8, q + (size_t)min(t, T - 1) * qRowStride + (size_t)h * D + cc * 8, t < T ? 16 : 0);
  }

  // Tile descriptors: d >= 0 is a range tile from key d, d < 0 a column tile from slot -(d + 1), END
  // no tile. Thread 0 walks the index one tile ahead of the loads and publishes descriptors in a ring
  // of three (the tile computed, the tile loading, the next), so the walk's state lives in shared
  // memory rather than in every thread's registers (full of accumulators with two row tiles).
  __shared__ int sDesc[3];
  __shared__ int sWalk[4];  // range index, next range key, range end (clipped to the block), next column slot
  auto walk = [&]() -> int {
    int rIdx = sWalk[0], rKey = sWalk[1], rEnd = sWalk[2], colPos = sWalk[3], d;
    if (rIdx < numRanges) {
      d = rKey;
      rKey += BN;
      // Next non-empty range (every range starts at or below the block's last row; clipping is defensive).
      while (rKey >= rEnd && ++rIdx < numRanges) {
        const int2 rg = R[rIdx];
        rKey = rg.x;
        rEnd = min(rg.y, maxPos + 1);
      }
    } else if (colPos < numCols) {
      d = -colPos - 1;
      colPos += BN;
    } else {
      d = END_OF_TILES;
    }
    sWalk[0] = rIdx, sWalk[1] = rKey, sWalk[2] = rEnd, sWalk[3] = colPos;
    return d;
  };
  if (tid == 0) {
    int rIdx = 0, rKey = 0, rEnd = 0;
    for (; rIdx < numRanges; ++rIdx) {
      const int2 rg = R[rIdx];
      rKey = rg.x;
      rEnd = min(rg.y, maxPos + 1);
      if (rKey < rEnd) break;
    }
    sWalk[0] = rIdx, sWalk[1] = rKey, sWalk[2] = rEnd, sWalk[3] = 0;
    sDesc[0] = walk();
    sDesc[1] = walk();
  }
  __syncthreads();
  // Issues the loads of tile `d` into `stage`.
  auto issue = [&](int d, int stage) {
    const u32 stageOff = stage * BN * ROW_BYTES;
    const bool isRange = d >= 0;
    const int base = isRange ? d : -d - 1;
#pragma unroll
    for (int i = 0; i < BN / LD_ROWS; ++i) {
      const int r = ldRow + i * LD_ROWS;
      int key;
      bool inside;
      if (isRange) {
        key = base + r;
        inside = key <= maxPos;  // keys past the block's last row are masked anyway: read nothing
      } else {
        inside = base + r < numCols;
        key = inside ? cols[base + r] : 0;
      }
      const size_t off = inside ? (size_t)key * D : 0;
      cp_async16_at(kDst + stageOff + i * LD_ROWS * ROW_BYTES, kHead + off + ldCol, inside ? 16 : 0);
      cp_async16_at(vDst + stageOff + i * LD_ROWS * ROW_BYTES, vHead + off + ldCol, inside ? 16 : 0);
    }
    cp_async_commit();
  };
  issue(sDesc[0], 0);  // one group: Q and the first tile (the diagonal range always exists)

  float o[MT][D / 8][4];
  float rowMax[MT][2], rowSum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
    rowMax[mt][0] = rowMax[mt][1] = NEG_INF;
    rowSum[mt][0] = rowSum[mt][1] = 0.f;
  }
  u32 qf[Q_IN_REGS ? D / 16 : 1][4];

  const u32 qLane = smem_addr(sQ) + (warp * WARP_ROWS + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const int warpRow0 = start + warp * WARP_ROWS;  // first query row of this warp
  const int warpPos0 = queryStart + warpRow0;
  const int qPos = warpPos0 + g;                   // position of this lane's row g
  // Window starts of this lane's rows (row window only): key < sinkCount or key >= low is visible.
  int low[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = warpRow0 + 16 * mt + g + 8 * r;
      low[mt][r] = (rowLow != nullptr && t < T) ? rowLow[t] : 0;
    }

  int slot = 0;  // j mod 3
  for (int j = 0;; ++j) {
    const int next = sDesc[slot == 2 ? 0 : slot + 1];
    const bool more = next != END_OF_TILES;
    if (more) issue(next, (j + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    if (tid == 0) sDesc[slot == 0 ? 2 : slot - 1] = more ? walk() : END_OF_TILES;  // tile j + 2
    cp_async_wait<1>();
    __syncthreads();
    const int cur = sDesc[slot];
    const bool curRange = cur >= 0;
    const int curBase = curRange ? cur : -cur - 1;
    if (Q_IN_REGS && j == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
    }
    const u32 stageOff = (j & 1) * BN * ROW_BYTES;

    // S = Q K^T for this warp's rows x 64 keys; each K fragment serves every row tile.
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if (Q_IN_REGS) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[mt][e] = qf[Q_IN_REGS ? kk : 0][e];
        } else {
          ldmatrix_x4_at(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3], qLane + mt * 16 * ROW_BYTES + kk * 32);
        }
      }
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + np * 16 * ROW_BYTES + kk * 32);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_bf16_16816(s[mt][2 * np], qa[mt], b0, b1);
          mma_bf16_16816(s[mt][2 * np + 1], qa[mt], b2, b3);
        }
      }
    }

    if (curRange) {
      // Keys right of a row (and past the cache) on the tiles that reach this warp's first row.
      if (curBase + BN - 1 > warpPos0) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int kk = 0; kk < BN / 16; ++kk) flash_causal_mask16<BN / 8>(s[mt], kk, curBase + 16 * kk, qPos + 16 * mt, kvLen, t4);
      }
      if (rowLow != nullptr) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = curBase + nt * 8 + 2 * t4 + (e & 1);
              if (key >= sinkCount && key < low[mt][e >> 1]) s[mt][nt][e] = NEG_INF;
            }
      }
    } else if (curBase + BN > numCols) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (curBase + nt * 8 + 2 * t4 + (e & 1) >= numCols) s[mt][nt][e] = NEG_INF;
    }

#pragma unroll
    for (int mt = 0; mt < MT; ++mt) flash_online_softmax<BN / 8, D / 8>(s[mt], o[mt], rowMax[mt], rowSum[mt], scaleLog2);

    // O += P V; each V fragment serves every row tile.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      u32 a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) flash_p_fragment<BN / 8>(s[mt], kk, a[mt]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans_at(b0, b1, b2, b3, vLane + stageOff + kk * 16 * ROW_BYTES + dp * 32);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_bf16_16816(o[mt][2 * dp], a[mt], b0, b1);
          mma_bf16_16816(o[mt][2 * dp + 1], a[mt], b2, b3);
        }
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
    if (!more) break;
    slot = slot == 2 ? 0 : slot + 1;
  }

#pragma unroll
  for (int mt = 0; mt < MT; ++mt) flash_store_rows<D / 8>(o[mt], rowSum[mt], out, warpRow0 + 16 * mt, g, t4, T, H, h);
}
