// Dense causal flash-attention prefill (bf16 in, fp32 accumulate, bf16 out), FlashAttention-2 style:
// each block owns BM = 16 * WARPS consecutive queries of one query head; each warp owns 16 of them and
// keeps its Q fragments, running max/sum and output accumulator in registers. Key/value tiles of
// BN = 64 rows stream through shared memory with cp.async, two stages deep, and both products run on
// the tensor cores (mma.sync m16n8k16). GQA: query head h reads KV head h / (H / Hkv).
//
// Layouts (row-major, D = HEAD_DIM):
//   q, out : [T, H, D]             query t sits at absolute position queryStart + t
//   k, v   : [Hkv, kvStride, D]    per-KV-head contiguous rows (the engine's LayerKvCache layout);
//                                  row r holds position r; rows [0, kvLen) are valid
// Causality: query at position p sees rows r <= p (and r < kvLen).
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), WARPS (4 or 8).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef WARPS
#define WARPS 4
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int BM = 16 * WARPS;
constexpr int BN = 64;
constexpr int THREADS = 32 * WARPS;
// Row stride in shared memory: D plus 8 elements (16 bytes) so that the 8 rows an ldmatrix phase reads
// fall in 8 different 16-byte bank groups.
constexpr int LDS = D + 8;
constexpr int CHUNKS_PER_ROW = D / 8;  // 16-byte chunks
static_assert(D % 16 == 0 && D <= 256, "HEAD_DIM must be a multiple of 16, at most 256");
}  // namespace

extern "C" __global__ void __launch_bounds__(THREADS) flash_prefill(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    bf16_t* __restrict__ out, int T, int H, int Hkv, int kvStride, int queryStart, int kvLen,
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

  // Heaviest (latest) query blocks first: they have the most key tiles, so the tail is short.
  const int mBlock = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y;
  const int hk = h / (H / Hkv);
  const int m0 = mBlock * BM;
  const int rowsHere = min(BM, T - m0);
  const int lastQueryPos = queryStart + m0 + rowsHere - 1;
  const int kvEnd = min(kvLen, lastQueryPos + 1);
  const int nTiles = (kvEnd + BN - 1) / BN;

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;

  // Q tile; rows past T are zero-filled (their results are never stored).
  for (int c = tid; c < BM * CHUNKS_PER_ROW; c += THREADS) {
    const int r = c / CHUNKS_PER_ROW, cc = c % CHUNKS_PER_ROW;
    const int t = m0 + r;
    const bf16_t* src = q + ((size_t)min(t, T - 1) * H + h) * D + cc * 8;
    cp_async16(sQ + r * LDS + cc * 8, src, t < T ? 16 : 0);
  }
  auto loadKV = [&](int tile, int stage) {
    const int n0 = tile * BN;
    bf16_t* dK = sK + stage * BN * LDS;
    bf16_t* dV = sV + stage * BN * LDS;
    for (int c = tid; c < BN * CHUNKS_PER_ROW; c += THREADS) {
      const int r = c / CHUNKS_PER_ROW, cc = c % CHUNKS_PER_ROW;
      const int key = n0 + r;
      const int bytes = key < kvLen ? 16 : 0;  // zero rows past the cache: 0 * V must stay 0
      const size_t off = (size_t)(key < kvLen ? key : 0) * D + cc * 8;
      cp_async16(dK + r * LDS + cc * 8, kHead + off, bytes);
      cp_async16(dV + r * LDS + cc * 8, vHead + off, bytes);
    }
    cp_async_commit();
  };
  loadKV(0, 0);  // one group: Q and the first K/V tile

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float rowMax[2] = {NEG_INF, NEG_INF};
  float rowSum[2] = {0.f, 0.f};  // this thread's share; summed over the quad at the end
  u32 qf[D / 16][4];

  const int warpRow0 = m0 + warp * 16;                  // first query (index in chunk) of this warp
  const int qPos0 = queryStart + warpRow0 + g;          // position of this thread's row g
  const int qPos1 = qPos0 + 8;                          // and of row g + 8

  for (int j = 0; j < nTiles; ++j) {
    if (j + 1 < nTiles) loadKV(j + 1, (j + 1) & 1);
    else cp_async_commit();  // empty group keeps the wait count uniform
    cp_async_wait<1>();
    __syncthreads();

    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const int mi = lane >> 3;
        const bf16_t* p = sQ + (warp * 16 + (mi & 1) * 8 + (lane & 7)) * LDS + kk * 16 + (mi >> 1) * 8;
        ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], p);
      }
    }

    const bf16_t* Ks = sK + (j & 1) * BN * LDS;
    const bf16_t* Vs = sV + (j & 1) * BN * LDS;
    const int n0 = j * BN;

    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < BN / 16; ++np) {
        const int mi = lane >> 3;
        const bf16_t* p = Ks + (np * 16 + (mi >> 1) * 8 + (lane & 7)) * LDS + kk * 16 + (mi & 1) * 8;
        u32 b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, p);
        mma_bf16_16816(s[2 * np], qf[kk], b0, b1);
        mma_bf16_16816(s[2 * np + 1], qf[kk], b2, b3);
      }
    }

    // Scale into the log2 domain, then mask keys right of the diagonal or past the cache.
    const bool needMask = (n0 + BN - 1 > queryStart + warpRow0) || (n0 + BN > kvLen);
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * scaleLog2;
        if (needMask) {
          const int key = n0 + nt * 8 + 2 * t4 + (e & 1);
          const int qp = (e < 2) ? qPos0 : qPos1;
          if (key > qp || key >= kvLen) x = NEG_INF;
        }
        s[nt][e] = x;
      }
    }

    // Online softmax, one row pair (g, g+8) per thread; the quad (4 lanes) shares a row.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = rowMax[r];
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float base = (mx == NEG_INF) ? 0.f : mx;  // a row with nothing visible yet stays at zero
      const float alpha = fast_exp2(rowMax[r] - base);
      rowMax[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        const float p0 = fast_exp2(s[nt][2 * r] - base);
        const float p1 = fast_exp2(s[nt][2 * r + 1] - base);
        s[nt][2 * r] = p0;
        s[nt][2 * r + 1] = p1;
        sum += p0 + p1;
      }
      rowSum[r] = rowSum[r] * alpha + sum;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        o[dt][2 * r] *= alpha;
        o[dt][2 * r + 1] *= alpha;
      }
    }

    // O += P V. The fp32 accumulator layout of two adjacent 8-key tiles is exactly the A-fragment
    // layout of one 16-key step, so P never leaves registers.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      u32 a[4];
      a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        const int mi = lane >> 3;
        const bf16_t* p = Vs + (kk * 16 + (mi & 1) * 8 + (lane & 7)) * LDS + dp * 16 + (mi >> 1) * 8;
        u32 b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, p);
        mma_bf16_16816(o[2 * dp], a, b0, b1);
        mma_bf16_16816(o[2 * dp + 1], a, b2, b3);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite this stage
  }

  // Normalise and store rows g and g+8 of this warp.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int t = warpRow0 + g + 8 * r;
    if (t < T) {
      bf16_t* dst = out + ((size_t)t * H + h) * D + 2 * t4;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        *reinterpret_cast<u32*>(dst + dt * 8) = pack_bf16x2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
      }
    }
  }
}
