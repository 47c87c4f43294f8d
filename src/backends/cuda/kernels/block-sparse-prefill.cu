// Block-sparse causal flash-attention prefill (bf16 in, fp32 accumulate, bf16 out) over per-query-head
// lists of 16-key tiles. Same numerics as flash-prefill.cu (mma.sync m16n8k16, online softmax in
// registers, P kept in registers for PV), but 16-row granular: every warp owns ONE query tile of 16
// rows (the Block-Sparse method's chunk, c = 16) and walks its own CSR list of 16-key tiles, so no
// union or per-chunk mask is needed and exactly the listed tiles are read. The warps of a block are
// independent (own shared-memory slices, own cp.async double buffer, warp-level sync only); the block
// only groups them for scheduling. The cost of this granularity: each K/V tile a warp loads serves 16
// query rows instead of the dense kernel's 128, so shared-memory and L2 traffic per FLOP is ~8x the
// dense kernel's (see docs/perf.md, "Block-sparse prefill").
//
// Layouts (row-major, D = HEAD_DIM):
//   q      : [T, qRowStride], head h of token t at t * qRowStride + h * D
//   out    : [T, H, D]             query t sits at absolute position queryStart + t
//   k, v   : [Hkv, kvStride, D]    per-KV-head rows, row r holds position r; rows [0, kvLen) valid
//   tileOffsets : [H * numQueryTiles + 1] CSR row starts; row (h, m) lists the key tiles of query
//                 head h's query tile m (queries [16m, 16m + 16)) at keyTiles[tileOffsets[row] ..
//                 tileOffsets[row + 1]); tile j covers key rows [16j, 16j + 16).
// Inside a listed tile the causal mask is exact: query at position p sees rows r <= p, r < kvLen.
// A query tile with an empty list writes zeros (nothing attended), as the CPU kernels do.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), WARPS (query tiles per block, 4 or 8).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef WARPS
#define WARPS 4
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int TILE = 16;  // query rows per warp = keys per tile
constexpr int THREADS = 32 * WARPS;
constexpr int LDS = D + 8;  // padded row stride (conflict-free ldmatrix), as in flash-prefill.cu
constexpr int CHUNKS_PER_ROW = D / 8;  // 16-byte chunks
constexpr int LD_ROWS = 32 / CHUNKS_PER_ROW;  // rows one warp-wide copy step covers
constexpr int WARP_SMEM = 5 * TILE * LDS;  // Q tile + 2 stages of K + 2 stages of V (elements)
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(WARPS == 4 || WARPS == 8, "WARPS must be 4 or 8");
static_assert(TILE % LD_ROWS == 0, "tile rows must split evenly over a warp");
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS) block_sparse_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    bf16_t* __restrict__ out, const int* __restrict__ tileOffsets, const int* __restrict__ keyTiles,
    int T, int H, int Hkv, int qRowStride, int kvStride, int queryStart, int kvLen, int numQueryTiles,
    float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  const int g = lane >> 2;
  const int t4 = lane & 3;
  const int mi = lane >> 3;

  // Later query tiles first: their lists are usually the longest, so the tail is short.
  const int qTile = (gridDim.x - 1 - blockIdx.x) * WARPS + warp;
  if (qTile >= numQueryTiles) return;  // warps never sync with each other: leaving early is safe
  const int h = blockIdx.y;
  const int hk = h / (H / Hkv);
  const int m0 = qTile * TILE;
  const int row = h * numQueryTiles + qTile;
  const int listBegin = tileOffsets[row];
  const int count = tileOffsets[row + 1] - listBegin;
  const int* list = keyTiles + listBegin;

  if (count <= 0) {
    // Nothing selected: zeros, like the CPU kernels for a query with no visible key.
    for (int i = lane; i < TILE * CHUNKS_PER_ROW; i += 32) {
      const int t = m0 + i / CHUNKS_PER_ROW;
      if (t < T) {
        uint4* dst = reinterpret_cast<uint4*>(out + ((size_t)t * H + h) * D + (i % CHUNKS_PER_ROW) * 8);
        *dst = make_uint4(0u, 0u, 0u, 0u);
      }
    }
    return;
  }

  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw) + warp * WARP_SMEM;  // [TILE][LDS]
  bf16_t* sK = sQ + TILE * LDS;                                          // [2][TILE][LDS]
  bf16_t* sV = sK + 2 * TILE * LDS;                                      // [2][TILE][LDS]

  const int ldRow = lane / CHUNKS_PER_ROW, ldCol = (lane % CHUNKS_PER_ROW) * 8;
  // Q tile; rows past T are zero-filled (their results are never stored).
#pragma unroll
  for (int i = 0; i < TILE / LD_ROWS; ++i) {
    const int r = ldRow + i * LD_ROWS;
    const int t = m0 + r;
    const bf16_t* src = q + (size_t)min(t, T - 1) * qRowStride + (size_t)h * D + ldCol;
    cp_async16(sQ + r * LDS + ldCol, src, t < T ? 16 : 0);
  }
  const bf16_t* kSrc = k + (size_t)hk * kvStride * D + (size_t)ldRow * D + ldCol;
  const bf16_t* vSrc = v + (size_t)hk * kvStride * D + (size_t)ldRow * D + ldCol;
  const u32 kDst = smem_addr(sK) + (ldRow * LDS + ldCol) * 2;
  const u32 vDst = smem_addr(sV) + (ldRow * LDS + ldCol) * 2;
  auto loadKV = [&](int tile, int stage) {
    const int n0 = tile * TILE;
    const u32 stageOff = stage * TILE * LDS * 2;
#pragma unroll
    for (int i = 0; i < TILE / LD_ROWS; ++i) {
      const int key = n0 + ldRow + i * LD_ROWS;
      // Rows past the cache are zero-filled (0 * V must stay 0) and read nothing.
      const bool inside = key < kvLen;
      const size_t off = inside ? (size_t)(n0 + i * LD_ROWS) * D : 0;
      cp_async16_at(kDst + stageOff + i * LD_ROWS * LDS * 2, kSrc + off, inside ? 16 : 0);
      cp_async16_at(vDst + stageOff + i * LD_ROWS * LDS * 2, vSrc + off, inside ? 16 : 0);
    }
    cp_async_commit();
  };
  loadKV(list[0], 0);  // one group: Q and the first K/V tile

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};
  u32 qf[D / 16][4];

  constexpr u32 ROW_BYTES = LDS * 2;
  const u32 qLane = smem_addr(sQ) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const int firstQueryPos = queryStart + m0;
  const int qPosBase = firstQueryPos + g;

  for (int i = 0; i < count; ++i) {
    if (i + 1 < count) loadKV(list[i + 1], (i + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    __syncwarp();  // every lane's copies of this stage are visible to the whole warp

    if (i == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
    }
    const u32 stageOff = (i & 1) * TILE * ROW_BYTES;
    const int n0 = list[i] * TILE;

    // S = Q K^T: 16 rows x 16 keys.
    float s[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 b0, b1, b2, b3;
      ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + kk * 32);
      mma_bf16_16816(s[0], qf[kk], b0, b1);
      mma_bf16_16816(s[1], qf[kk], b2, b3);
    }

    // Exact causal mask inside the tile (and rows past the cache); only tiles that reach them.
    if (n0 + TILE - 1 > firstQueryPos || n0 + TILE > kvLen) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = n0 + nt * 8 + 2 * t4 + (e & 1);
          const int qp = qPosBase + (e < 2 ? 0 : 8);
          if (key > qp || key >= kvLen) s[nt][e] = NEG_INF;
        }
      }
    }

    // Online softmax; the quad (4 lanes) shares a row. Scale enters through one FMA per exponent.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = fmaxf(rowMax[r], fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1])));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float negBase = (mx == NEG_INF) ? 0.f : -mx * scaleLog2;  // nothing visible yet: zeros
      const float alpha = fast_exp2(fmaf(rowMax[r], scaleLog2, negBase));
      rowMax[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const float p0 = fast_exp2(fmaf(s[nt][2 * r], scaleLog2, negBase));
        const float p1 = fast_exp2(fmaf(s[nt][2 * r + 1], scaleLog2, negBase));
        s[nt][2 * r] = p0;
        s[nt][2 * r + 1] = p1;
        sum += p0 + p1;
      }
      rowSum[r] = rowSum[r] * alpha + sum;
      if (__any_sync(0xffffffffu, alpha != 1.f)) {
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[dt][2 * r] *= alpha;
          o[dt][2 * r + 1] *= alpha;
        }
      }
    }

    // O += P V (one 16-key step; the two 8-key accumulators form the A fragment).
    u32 a[4];
    a[0] = pack_bf16x2(s[0][0], s[0][1]);
    a[1] = pack_bf16x2(s[0][2], s[0][3]);
    a[2] = pack_bf16x2(s[1][0], s[1][1]);
    a[3] = pack_bf16x2(s[1][2], s[1][3]);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      u32 b0, b1, b2, b3;
      ldmatrix_x4_trans_at(b0, b1, b2, b3, vLane + stageOff + dp * 32);
      mma_bf16_16816(o[2 * dp], a, b0, b1);
      mma_bf16_16816(o[2 * dp + 1], a, b2, b3);
    }
    __syncwarp();  // the next iteration's loads overwrite this stage
  }
  cp_async_wait<0>();  // the trailing empty group: nothing in flight when the warp exits

  // Normalise and store rows g and g + 8.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int t = m0 + g + 8 * r;
    if (t < T) {
      bf16_t* dst = out + ((size_t)t * H + h) * D + 2 * t4;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        *reinterpret_cast<u32*>(dst + dt * 8) = pack_bf16x2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
      }
    }
  }
}
