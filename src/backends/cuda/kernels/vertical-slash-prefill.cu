// Vertical-Slash sparse prefill (bf16 in, fp32 accumulate, bf16 out): one block per (64-row query
// block m, query head h), four warps of 16 rows each, FlashAttention-2 style (mma.sync m16n8k16,
// online softmax in the log2 domain, P kept in registers, K/V tiles two stages deep by cp.async).
// A block visits only what its index lists (vertical-slash-index.cu):
//   1. its key ranges (the kept diagonals, merged into 64-wide ranges): 64-key tiles from each range's
//      start, clipped to the block's last row; causal mask key <= query on the tiles that reach it;
//   2. its kept columns outside those ranges (all left of the block, so no mask): gathered 64 rows at
//      a time from the flat column list, the last tile's empty slots masked.
// Layouts: q [n, qRowStride] (head h at h·D; query t at position t, the whole prompt in one call);
// k, v [Hkv, kvStride, D] (row r = position r); out [n, H, D]; ranges int2 at
// h·perHead + vs_range_offset(m, C); rangeCount [H, numBlocks]; colStart [H·numBlocks + 1] into colList.
// GQA: query head h reads KV head h / (H / Hkv). Codegen: HEAD_DIM (64 or 128).
#include "common.cuh"
#include "flash-tile.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int THREADS = 32 * WARPS;
constexpr int BM = 16 * WARPS;  // 64: the pattern's query block
constexpr int BN = 64;
constexpr int LDS = D + 8;
constexpr u32 ROW_BYTES = LDS * 2;
constexpr int CHUNKS_PER_ROW = D / 8;
constexpr int LD_ROWS = THREADS / CHUNKS_PER_ROW;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(BN % LD_ROWS == 0, "tile rows must split evenly over the threads");

__device__ __forceinline__ long long range_offset(long long m, long long C) {
  const long long t = min(m, max(C - 1, 0ll));
  return (t * t + 3 * t) / 2 + (m - t) * C;
}
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS, 1) vs_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int2* __restrict__ ranges, const int* __restrict__ rangeCount, const int* __restrict__ colStart,
    const int* __restrict__ colList, int n, int H, int Hkv, int qRowStride, int kvStride, int C, int perHead,
    float scaleLog2) {
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
  const int start = m * BM;
  const int maxRow = min(start + BM, n) - 1;
  const size_t hm = (size_t)h * numBlocks + m;
  const int2* R = ranges + (size_t)h * perHead + range_offset(m, C);
  const int numRanges = rangeCount[hm];
  const int c0 = colStart[hm], numCols = colStart[hm + 1] - c0;
  const int* cols = colList + c0;

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;
  const int ldRow = tid / CHUNKS_PER_ROW, ldCol = (tid % CHUNKS_PER_ROW) * 8;
  const u32 kDst = smem_addr(sK) + (ldRow * LDS + ldCol) * 2;
  const u32 vDst = smem_addr(sV) + (ldRow * LDS + ldCol) * 2;

  // Q tile; rows past n are zero-filled (never stored).
  for (int c = tid; c < BM * CHUNKS_PER_ROW; c += THREADS) {
    const int r = c / CHUNKS_PER_ROW, cc = c % CHUNKS_PER_ROW;
    const int t = start + r;
    cp_async16(sQ + r * LDS + cc * 8, q + (size_t)min(t, n - 1) * qRowStride + (size_t)h * D + cc * 8, t < n ? 16 : 0);
  }

  // Loader cursor: range phase while rIdx < numRanges (next tile starts at key rKey, the range ends,
  // clipped to the block's rows, at rEnd), then the column phase (next tile starts at slot colPos).
  int rIdx = 0, rKey = 0, rEnd = 0, colPos = 0;
  auto enterRange = [&]() {
    while (rIdx < numRanges) {
      const int2 rg = R[rIdx];
      rKey = rg.x;
      rEnd = min(rg.y, maxRow + 1);
      if (rKey < rEnd) return;
      ++rIdx;
    }
  };
  enterRange();
  // Issues the next tile's loads into `stage`; returns its kind and first key (range) or slot (columns).
  auto issueNext = [&](int stage, bool& isRange, int& base) {
    const u32 stageOff = stage * BN * ROW_BYTES;
    isRange = rIdx < numRanges;
    base = isRange ? rKey : colPos;
#pragma unroll
    for (int i = 0; i < BN / LD_ROWS; ++i) {
      const int r = ldRow + i * LD_ROWS;
      int key;
      bool inside;
      if (isRange) {
        key = base + r;
        inside = key <= maxRow;  // keys past the block's last row are masked anyway: read nothing
      } else {
        inside = base + r < numCols;
        key = inside ? cols[base + r] : 0;
      }
      const size_t off = inside ? (size_t)key * D : 0;
      cp_async16_at(kDst + stageOff + i * LD_ROWS * ROW_BYTES, kHead + off + ldCol, inside ? 16 : 0);
      cp_async16_at(vDst + stageOff + i * LD_ROWS * ROW_BYTES, vHead + off + ldCol, inside ? 16 : 0);
    }
    cp_async_commit();
    if (isRange) {
      rKey += BN;
      if (rKey >= rEnd) {
        ++rIdx;
        enterRange();
      }
    } else {
      colPos += BN;
    }
  };

  bool curRange;
  int curBase;
  issueNext(0, curRange, curBase);  // one group: Q and the first tile (the diagonal range always exists)

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};
  u32 qf[D / 16][4];

  const u32 qLane = smem_addr(sQ) + (warp * 16 + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const u32 vLane = smem_addr(sV) + ((mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const int warpRow0 = start + warp * 16;
  const int qPos = warpRow0 + g;

  for (int j = 0;; ++j) {
    const bool more = rIdx < numRanges || colPos < numCols;
    bool nextRange = false;
    int nextBase = 0;
    if (more) issueNext((j + 1) & 1, nextRange, nextBase);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
    }
    const u32 stageOff = (j & 1) * BN * ROW_BYTES;

    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_at(b0, b1, b2, b3, kLane + stageOff + np * 16 * ROW_BYTES + kk * 32);
        mma_bf16_16816(s[2 * np], qf[kk], b0, b1);
        mma_bf16_16816(s[2 * np + 1], qf[kk], b2, b3);
      }
    }

    if (curRange) {
      // Keys right of a row (and past the cache) on the tiles that reach this warp's first row.
      if (curBase + BN - 1 > warpRow0) {
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) flash_causal_mask16<BN / 8>(s, kk, curBase + 16 * kk, qPos, n, t4);
      }
    } else if (curBase + BN > numCols) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (curBase + nt * 8 + 2 * t4 + (e & 1) >= numCols) s[nt][e] = NEG_INF;
    }

    flash_online_softmax<BN / 8, D / 8>(s, o, rowMax, rowSum, scaleLog2);

#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      u32 a[4];
      flash_p_fragment<BN / 8>(s, kk, a);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans_at(b0, b1, b2, b3, vLane + stageOff + kk * 16 * ROW_BYTES + dp * 32);
        mma_bf16_16816(o[2 * dp], a, b0, b1);
        mma_bf16_16816(o[2 * dp + 1], a, b2, b3);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
    if (!more) break;
    curRange = nextRange;
    curBase = nextBase;
  }

  flash_store_rows<D / 8>(o, rowSum, out, warpRow0, g, t4, n, H, h);
}
