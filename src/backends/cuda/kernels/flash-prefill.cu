// Dense causal flash-attention prefill (bf16 in, fp32 accumulate, bf16 out), FlashAttention-2 style:
// each block owns BM = 16 * M_TILES * WARPS consecutive queries of one query head; each warp owns
// 16 * M_TILES of them and keeps its running max/sum and output accumulator in registers. Key/value
// tiles of BN = BLOCK_N rows stream through shared memory with cp.async, two stages deep, and both products
// run on the tensor cores (mma.sync m16n8k16). GQA: query head h reads KV head h / (H / Hkv).
// With M_TILES = 1 a warp keeps its Q fragments in registers; with M_TILES = 2 it re-reads them from
// shared memory per step, and every K/V fragment it loads serves 32 rows instead of 16, which halves
// the shared-memory traffic per FLOP (the v1 bottleneck, docs/perf.md).
//
// Layouts (row-major, D = HEAD_DIM):
//   q      : [T, qRowStride], head h of token t at t * qRowStride + h * D (qRowStride = H * D for a
//            packed [T, H, D]; wider when q is the leading part of fused qkv projection rows)
//   out    : [T, H, D]             query t sits at absolute position queryStart + t
//   k, v   : [Hkv, kvStride, D]    per-KV-head contiguous rows (the engine's LayerKvCache layout);
//                                  row r holds position r; rows [0, kvLen) are valid
// Causality: query at position p sees rows r <= p (and r < kvLen); with a sliding window W also only
// rows r > p - W (tiles wholly left of every query's window are skipped). No window: W = 2^30.
//
// Codegen parameters (-D): HEAD_DIM (64, 128 or 256; 256 with M_TILES = 1), WARPS (4 or 8), M_TILES (1 or 2), BLOCK_N (32 or 64),
// BLOCK_ORDER: 0 = head by head, each head's query blocks latest (heaviest) first; 1 = heaviest first
// across all heads (block i runs query block nBlocks - 1 - i / H of head i % H), the longest-first order
// of a list schedule, so the last wave holds only the lightest blocks of every head.
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef WARPS
#define WARPS 4
#endif
#ifndef M_TILES
#define M_TILES 1
#endif
#ifndef BLOCK_N
#define BLOCK_N 64
#endif
#ifndef BLOCK_ORDER
#define BLOCK_ORDER 0
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int MT = M_TILES;
constexpr int WARP_ROWS = 16 * MT;
constexpr int BM = WARP_ROWS * WARPS;
constexpr int BN = BLOCK_N;
constexpr int THREADS = 32 * WARPS;
// Q fragments stay in registers only where they fit beside the accumulator (one row tile, D <= 128).
constexpr bool Q_IN_REGS = (MT == 1) && (D <= 128);
// Row stride in shared memory: D plus 8 elements (16 bytes) so that the 8 rows an ldmatrix phase reads
// fall in 8 different 16-byte bank groups.
constexpr int LDS = D + 8;
constexpr int CHUNKS_PER_ROW = D / 8;  // 16-byte chunks
static_assert(D % 16 == 0 && D <= 256, "HEAD_DIM must be a multiple of 16, at most 256");
static_assert(MT == 1 || MT == 2, "M_TILES must be 1 or 2");
static_assert(D <= 128 || MT == 1, "HEAD_DIM 256 needs M_TILES = 1 (registers)");
static_assert(BN == 32 || BN == 64, "BLOCK_N must be 32 or 64");

}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS) flash_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    bf16_t* __restrict__ out, int T, int H, int Hkv, int qRowStride, int kvStride, int queryStart, int kvLen, int window,
    float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);  // [BM][LDS]
  bf16_t* sK = sQ + BM * LDS;                        // [2][BN][LDS]
  bf16_t* sV = sK + 2 * BN * LDS;                    // [2][BN][LDS]

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;  // row within the 8-row half of an mma tile
  const int t4 = lane & 3;  // column pair within the tile
  const int mi = lane >> 3; // which 8x8 matrix this lane addresses in an ldmatrix.x4

  int mBlock, h;
  prefill_block_coords<BLOCK_ORDER>(H, mBlock, h);
  const int hk = h / (H / Hkv);
  const int m0 = mBlock * BM;
  const int rowsHere = min(BM, T - m0);
  const int lastQueryPos = queryStart + m0 + rowsHere - 1;
  const int kvEnd = min(kvLen, lastQueryPos + 1);
  const int nTiles = (kvEnd + BN - 1) / BN;
  const int firstTile = max(0, queryStart + m0 - window + 1) / BN;  // the block's first query's window

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;

  // Q tile; rows past T are zero-filled (their results are never stored).
  for (int c = tid; c < BM * CHUNKS_PER_ROW; c += THREADS) {
    const int r = c / CHUNKS_PER_ROW, cc = c % CHUNKS_PER_ROW;
    const int t = m0 + r;
    const bf16_t* src = q + (size_t)min(t, T - 1) * qRowStride + (size_t)h * D + cc * 8;
    cp_async16(sQ + r * LDS + cc * 8, src, t < T ? 16 : 0);
  }
  // Each thread copies the same 16-byte column of rows ldRow, ldRow + LD_ROWS, ... of a tile, so one
  // base pointer and one shared address per tensor serve every tile (offsets are constants).
  constexpr int LD_ROWS = THREADS / CHUNKS_PER_ROW;
  static_assert(BN % LD_ROWS == 0, "tile rows must split evenly over the threads");
  const int ldRow = tid / CHUNKS_PER_ROW, ldCol = (tid % CHUNKS_PER_ROW) * 8;
  const bf16_t* kSrc = kHead + (size_t)ldRow * D + ldCol;
  const bf16_t* vSrc = vHead + (size_t)ldRow * D + ldCol;
  const u32 kDst = smem_addr(sK) + (ldRow * LDS + ldCol) * 2;
  const u32 vDst = smem_addr(sV) + (ldRow * LDS + ldCol) * 2;
  auto loadKV = [&](int tile, int stage) {
    const int n0 = tile * BN;
    const u32 stageOff = stage * BN * LDS * 2;
#pragma unroll
    for (int i = 0; i < BN / LD_ROWS; ++i) {
      const int key = n0 + ldRow + i * LD_ROWS;
      // Rows past the cache are zero-filled (0 * V must stay 0) and read nothing.
      const bool inside = key < kvLen;
      const size_t off = inside ? (size_t)(n0 + i * LD_ROWS) * D : 0;
      cp_async16_at(kDst + stageOff + i * LD_ROWS * LDS * 2, kSrc + off, inside ? 16 : 0);
      cp_async16_at(vDst + stageOff + i * LD_ROWS * LDS * 2, vSrc + off, inside ? 16 : 0);
    }
    cp_async_commit();
  };
  loadKV(firstTile, firstTile & 1);  // one group: Q and the first K/V tile

  float o[MT][D / 8][4];
  float rowMax[MT][2], rowSum[MT][2];  // rowSum: this thread's share; summed over the quad at the end
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[m][i][0] = o[m][i][1] = o[m][i][2] = o[m][i][3] = 0.f;
    rowMax[m][0] = rowMax[m][1] = NEG_INF;
    rowSum[m][0] = rowSum[m][1] = 0.f;
  }
  u32 qf[Q_IN_REGS ? D / 16 : 1][4];

  // Per-lane shared-memory byte addresses of its ldmatrix rows; tile, step and stage offsets are
  // compile-time constants added to these, so the loops hold no pointers.
  constexpr u32 ROW_BYTES = LDS * 2;
  const u32 qLane = smem_addr(sQ) + (warp * WARP_ROWS + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;

  const int warpRow0 = m0 + warp * WARP_ROWS;  // first query (index in chunk) of this warp
  const int qPosBase = queryStart + warpRow0 + g;  // position of row g of m-tile 0

  for (int j = firstTile; j < nTiles; ++j) {
    if (j + 1 < nTiles) loadKV(j + 1, (j + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    __syncthreads();

    if (Q_IN_REGS && j == firstTile) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
      }
    }

    const u32 stageOff = (j & 1) * BN * ROW_BYTES;
    const u32 kStage = kLane + stageOff, vStage = vLane + stageOff;
    const int n0 = j * BN;

    // S = Q K^T for this warp's rows x 64 keys; each K fragment serves every m-tile.
    float s[MT][BN / 8][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[m][i][0] = s[m][i][1] = s[m][i][2] = s[m][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 qa[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        if (Q_IN_REGS) {
#pragma unroll
          for (int e = 0; e < 4; ++e) qa[m][e] = qf[Q_IN_REGS ? kk : 0][e];
        } else {
          ldmatrix_x4_at(qa[m][0], qa[m][1], qa[m][2], qa[m][3], qLane + m * 16 * ROW_BYTES + kk * 32);
        }
      }
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_at(b0, b1, b2, b3, kStage + np * 16 * ROW_BYTES + kk * 32);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          mma_bf16_16816(s[m][2 * np], qa[m], b0, b1);
          mma_bf16_16816(s[m][2 * np + 1], qa[m], b2, b3);
        }
      }
    }

    // Mask keys right of the diagonal or past the cache (only on tiles that reach them).
    const bool needMask = (n0 + BN - 1 > queryStart + warpRow0) || (n0 + BN > kvLen) ||
                          (n0 <= queryStart + warpRow0 + WARP_ROWS - 1 - window);
    if (needMask) {
#pragma unroll
      for (int m = 0; m < MT; ++m) {
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = n0 + nt * 8 + 2 * t4 + (e & 1);
            const int qp = qPosBase + m * 16 + (e < 2 ? 0 : 8);
            if (key > qp || key >= kvLen || key <= qp - window) s[m][nt][e] = NEG_INF;
          }
        }
      }
    }

    // Online softmax, one row pair (g, g+8) per m-tile per thread; the quad (4 lanes) shares a row.
    // Scores and row maxima stay unscaled; the scale enters each exponent through one FMA.
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = rowMax[m][r];
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[m][nt][2 * r], s[m][nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float negBase = (mx == NEG_INF) ? 0.f : -mx * scaleLog2;  // nothing visible yet: zeros
        const float alpha = fast_exp2(fmaf(rowMax[m][r], scaleLog2, negBase));
        rowMax[m][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
          const float p0 = fast_exp2(fmaf(s[m][nt][2 * r], scaleLog2, negBase));
          const float p1 = fast_exp2(fmaf(s[m][nt][2 * r + 1], scaleLog2, negBase));
          s[m][nt][2 * r] = p0;
          s[m][nt][2 * r + 1] = p1;
          sum += p0 + p1;
        }
        rowSum[m][r] = rowSum[m][r] * alpha + sum;
        // Once the running maxima settle, most tiles leave every row's max unchanged (alpha = 1):
        // skip the accumulator rescale then (warp-uniform test, so no divergence).
        if (__any_sync(0xffffffffu, alpha != 1.f)) {
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) {
            o[m][dt][2 * r] *= alpha;
            o[m][dt][2 * r + 1] *= alpha;
          }
        }
      }
    }

    // O += P V. The fp32 accumulator layout of two adjacent 8-key tiles is exactly the A-fragment
    // layout of one 16-key step, so P never leaves registers; each V fragment serves every m-tile.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      u32 a[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        a[m][0] = pack_bf16x2(s[m][2 * kk][0], s[m][2 * kk][1]);
        a[m][1] = pack_bf16x2(s[m][2 * kk][2], s[m][2 * kk][3]);
        a[m][2] = pack_bf16x2(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
        a[m][3] = pack_bf16x2(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans_at(b0, b1, b2, b3, vStage + kk * 16 * ROW_BYTES + dp * 32);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          mma_bf16_16816(o[m][2 * dp], a[m], b0, b1);
          mma_bf16_16816(o[m][2 * dp + 1], a[m], b2, b3);
        }
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
  }

  // Normalise and store rows g and g+8 of each m-tile.
  int mBlockEnd, hEnd;
  prefill_block_coords<BLOCK_ORDER>(H, mBlockEnd, hEnd);
  const int outRow0 = mBlockEnd * BM + warp * WARP_ROWS;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = rowSum[m][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int t = outRow0 + m * 16 + g + 8 * r;
      if (t < T) {
        bf16_t* dst = out + ((size_t)t * H + hEnd) * D + 2 * t4;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          *reinterpret_cast<u32*>(dst + dt * 8) = pack_bf16x2(o[m][dt][2 * r] * inv, o[m][dt][2 * r + 1] * inv);
        }
      }
    }
  }
}
