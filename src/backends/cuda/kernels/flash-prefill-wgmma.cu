// Dense causal flash-attention prefill on Hopper's warpgroup MMA (wgmma, sm_90a): bf16 in, fp32
// accumulate, bf16 out; same arguments, layouts and results as flash-prefill.cu (its header describes
// the tensors, causality, the sliding window and GQA), for head dims 64 and 128.
//
// Each block owns BM = 128 consecutive queries of one query head, split between two warpgroups of 64
// rows (256 threads). Per key tile of BN keys (BLOCK_N = 64 or 128):
//   S = Q·Kᵀ   D / 16 wgmma m64nBNk16, A = Q and B = K both from shared memory (K stored [key][d] is
//              the K-major B operand, no transpose);
//   online softmax on the S accumulators in registers (flash-tile.cuh: the accumulator layout of wgmma
//              is the mma.sync one repeated over the columns);
//   O += P·V   BN / 16 wgmma m64nDk16, A = P from registers (the S accumulators packed to bf16 are the
//              A-register fragments), B = V from shared memory in MN-major form (transpose bit).
// Q, K and V tiles live in shared memory in the 128-byte-swizzled layout of wgmma.cuh, written by
// cp.async (all 256 threads, 16 bytes each, coalesced rows) two K/V stages deep: tile j + 1 loads while
// tile j is multiplied. A warpgroup skips the products of a tile that none of its rows can see (the
// other half of the diagonal tile, tiles left of a sliding window).
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), BLOCK_N (64 or 128), BLOCK_ORDER (0 = head by head,
// 1 = heaviest query blocks of every head first; flash-prefill.cu's meaning).
#include "common.cuh"
#include "flash-tile.cuh"
#include "wgmma.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef BLOCK_N
#define BLOCK_N 128
#endif
#ifndef BLOCK_ORDER
#define BLOCK_ORDER 1
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int BN = BLOCK_N;
constexpr int BM = 128;
constexpr int THREADS = 256;
constexpr int CHUNKS_PER_ROW = D / 8;          // 16-byte chunks
constexpr int LD_ROWS = THREADS / CHUNKS_PER_ROW;  // rows one pass of the block copies
constexpr u32 Q_HALF = BM * 128;               // bytes of one 64-column half of the Q tile
constexpr u32 KV_HALF = BN * 128;              // ... of a K or V tile
constexpr u32 Q_BYTES = (D / 64) * Q_HALF;
constexpr u32 KV_TILE = (D / 64) * KV_HALF;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(BN == 64 || BN == 128, "BLOCK_N must be 64 or 128");
static_assert(LD_ROWS % 8 == 0 && BN % LD_ROWS == 0, "a thread's rows must share their swizzle phase");

__device__ __forceinline__ int ctaid_x() {
  int r;
  asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(r));
  return r;
}
__device__ __forceinline__ int ctaid_y() {
  int r;
  asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(r));
  return r;
}
// (query block, head) of this block; re-read in the epilogue so nothing stays live across the loop.
__device__ __forceinline__ void block_coords(int H, int& mBlock, int& h) {
#if BLOCK_ORDER == 1
  const int linear = ctaid_y() * gridDim.x + ctaid_x();
  mBlock = gridDim.x - 1 - linear / H;
  h = linear % H;
#else
  mBlock = gridDim.x - 1 - ctaid_x();
  h = ctaid_y();
#endif
}

__device__ __forceinline__ void wgmma_qk(float (&s)[BN / 8][4], u64 descQ, u64 descK, int scaleD) {
#if BLOCK_N == 128
  wgmma_m64n128k16_ss(s, descQ, descK, scaleD);
#else
  wgmma_m64n64k16_ss(s, descQ, descK, scaleD);
#endif
}
__device__ __forceinline__ void wgmma_pv(float (&o)[D / 8][4], const u32 (&p)[4], u64 descV) {
#if HEAD_DIM == 128
  wgmma_m64n128k16_rs_tb(o, p, descV, 1);
#else
  wgmma_m64n64k16_rs_tb(o, p, descV, 1);
#endif
}
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS, 1) flash_prefill_wgmma(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    bf16_t* __restrict__ out, int T, int H, int Hkv, int qRowStride, int kvStride, int queryStart, int kvLen, int window,
    float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms need 1024-byte alignment; the launcher asks for 1 KB of slack.
  const u32 sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const u32 sK = sQ + Q_BYTES;        // [2 stages][KV_TILE]
  const u32 sV = sK + 2 * KV_TILE;    // [2 stages][KV_TILE]

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int wg = warp >> 2;  // warpgroup: rows 64·wg .. 64·wg + 63 of the block
  const int wl = warp & 3;   // warp within the warpgroup: 16 of those rows

  int mBlock, h;
  block_coords(H, mBlock, h);
  const int hk = h / (H / Hkv);
  const int m0 = mBlock * BM;
  const int rowsHere = min(BM, T - m0);
  const int lastQueryPos = queryStart + m0 + rowsHere - 1;
  const int kvEnd = min(kvLen, lastQueryPos + 1);
  const int nTiles = (kvEnd + BN - 1) / BN;
  const int firstTile = max(0, queryStart + m0 - window + 1) / BN;

  // Each thread copies one 16-byte column chunk of rows ldRow, ldRow + LD_ROWS, ...: LD_ROWS is a
  // multiple of 8, so all its rows share one swizzle phase and one offset serves every pass.
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
  auto loadKV = [&](int tile, int stage) {
    const int n0 = tile * BN;
#pragma unroll
    for (int i = 0; i < BN / LD_ROWS; ++i) {
      // Rows past the cache are zero-filled (0·V must stay 0) and read nothing.
      const bool inside = n0 + ldRow + i * LD_ROWS < kvLen;
      const size_t off = inside ? (size_t)(n0 + i * LD_ROWS) * D : 0;
      const u32 dst = stage * KV_TILE + kvDst + i * LD_ROWS * 128;
      cp_async16_at(sK + dst, kSrc + off, inside ? 16 : 0);
      cp_async16_at(sV + dst, vSrc + off, inside ? 16 : 0);
    }
    cp_async_commit();
  };
  loadKV(firstTile, firstTile & 1);  // one group: Q and the first K/V tile

  float o[D / 8][4];
  float s[BN / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
#pragma unroll
  for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};

  const int wgFirstPos = queryStart + m0 + wg * 64;  // position of this warpgroup's first row
  const int qPos = wgFirstPos + wl * 16 + g;         // position of this lane's row g
  const u32 qBase = sQ + wg * 64 * 128;

  for (int j = firstTile; j < nTiles; ++j) {
    if (j + 1 < nTiles) loadKV(j + 1, (j + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    fence_proxy_async_shared();
    __syncthreads();

    const int n0 = j * BN;
    // Warpgroup-uniform: does any of this warpgroup's 64 rows see a key of this tile?
    const bool visible = n0 <= wgFirstPos + 63 && n0 + BN - 1 > wgFirstPos - window;
    if (visible) {
      const u32 kStage = sK + (j & 1) * KV_TILE, vStage = sV + (j & 1) * KV_TILE;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const u32 within = (kk & 3) * 32;  // k-step inside the 128-byte half
        wgmma_qk(s, wgmma_desc_k_major(qBase + (kk >> 2) * Q_HALF + within),
                 wgmma_desc_k_major(kStage + (kk >> 2) * KV_HALF + within), kk > 0 ? 1 : 0);
      }
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(s);

      // Mask keys right of the diagonal, past the cache or left of the window (only where reached).
      const bool needMask = (n0 + BN - 1 > wgFirstPos) || (n0 + BN > kvLen) || (n0 <= wgFirstPos + 63 - window);
      if (needMask) {
#pragma unroll
        for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = n0 + nt * 8 + 2 * t4 + (e & 1);
            const int qp = qPos + (e < 2 ? 0 : 8);
            if (key > qp || key >= kvLen || key <= qp - window) s[nt][e] = NEG_INF;
          }
        }
      }
      flash_online_softmax<BN / 8, D / 8>(s, o, rowMax, rowSum, scaleLog2);

      u32 p[BN / 16][4];
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) flash_p_fragment(s, kk, p[kk]);
      wgmma_fence();  // o was rescaled and p written by ordinary instructions
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) wgmma_pv(o, p[kk], wgmma_desc_mn_major(vStage + kk * 16 * 128, KV_HALF));
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(o);
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
  }

  int mBlockEnd, hEnd;
  block_coords(H, mBlockEnd, hEnd);
  flash_store_rows<D / 8>(o, rowSum, out, mBlockEnd * BM + wg * 64 + wl * 16, g, t4, T, H, hEnd);
}
