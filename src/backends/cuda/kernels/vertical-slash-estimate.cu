// Vertical-Slash importance estimate (src/methods/vertical-slash-pattern.ts, lastQueryScores): the last
// A queries of every query head score all keys, causal (the query at position p sees keys 0..p),
// softmax per row; vertical[j] = sum over those rows of the weight on key j, slash[o] = sum of the
// weight on key = p - o. Two passes over the A x n scores, both on the tensor cores (mma.sync
// m16n8k16, bf16 operands, fp32 accumulate), since a softmax row needs its max and sum first:
//   vs_row_stats      per (64-row chunk, key split, head): each row's running max and exp-sum over the
//                     split's key tiles (online, as flash attention does, without the PV product)
//   vs_combine_stats  per (head, row): merges the splits into -max·scale·log2e and 1 / sum
//   vs_column_diag    per (64-key tile, head): recomputes the scores, turns them into weights, sums
//                     them per column (the block owns its 64 columns: plain stores, deterministic) and
//                     per diagonal (shared-memory sums, then one global atomicAdd per diagonal)
//   vs_slash_from_fixed  per slash entry: the fixed-point diagonal sums -> fp32 slash scores
//
// Determinism: several warps (shared memory) and several key tiles (global memory) add into the same
// diagonal in an order the scheduler picks. Float addition would round differently per order, so one
// prompt could select different diagonals from run to run. The diagonal sums are therefore added as
// unsigned 64-bit fixed point (value · 2^S, rounded once per lane sum), where addition is exact and
// associative: any order gives the same bits. The launcher picks S = 62 - ceil(log2 A): a diagonal
// gathers at most one softmax weight (<= 1) from each of the A rows, so its sum stays below 2^62,
// a quarter of the range, room for weights that round a little above 1 and the per-lane rounding.
//
// Layouts: q [n, qRowStride] bf16 (head h at h·D; the prompt's queries, position = row);
// k [Hkv, kvStride, D] bf16 (row r = position r); partial [H, splits, A] float2 (max, sum);
// stats [H, A] float2 (negBase, invSum); vertical, slash [H, n] fp32; slashFixed [H, n] u64 (zeroed by
// the caller).
// Query head h reads KV head h / (H / Hkv). Codegen: HEAD_DIM (64 or 128).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif

typedef unsigned long long u64;

// Conversions as single PTX instructions (as common.cuh does), round to nearest even.
__device__ __forceinline__ u64 f32_to_u64_rn(float x) {
  u64 r;
  asm("cvt.rni.u64.f32 %0, %1;" : "=l"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float u64_to_f32_rn(u64 x) {
  float r;
  asm("cvt.rn.f32.u64 %0, %1;" : "=f"(r) : "l"(x));
  return r;
}

namespace {
constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int THREADS = 32 * WARPS;
constexpr int ROWS = 16 * WARPS;  // query rows per chunk, 16 per warp
constexpr int BN = 64;            // keys per tile
constexpr int LDS = D + 8;        // padded bf16 row stride (conflict-free ldmatrix)
constexpr u32 ROW_BYTES = LDS * 2;
constexpr int CHUNKS_PER_ROW = D / 8;
constexpr int LD_ROWS = THREADS / CHUNKS_PER_ROW;
constexpr int PLD = BN + 8;  // fp32 row stride of the per-warp weight tile
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(BN % LD_ROWS == 0 && ROWS % LD_ROWS == 0, "tile rows must split evenly over the threads");
static_assert(((BN + ROWS) * LDS * 2) % 8 == 0 && ((WARPS * 16 * PLD + WARPS * BN) * 4) % 8 == 0,
              "vs_column_diag's u64 diagonal sums must start 8-byte aligned");

// Copies rows [row0, row0 + count) of a [rows, stride] bf16 matrix (column offset col0) into a
// [count, LDS] shared tile; rows whose index fails `valid` are zero-filled and read nothing.
__device__ __forceinline__ void load_rows(bf16_t* dst, const bf16_t* src, size_t stride, int firstRow, int lastValidRow, int tid) {
  const int ldRow = tid / CHUNKS_PER_ROW, ldCol = (tid % CHUNKS_PER_ROW) * 8;
#pragma unroll
  for (int i = 0; i < BN / LD_ROWS; ++i) {
    const int r = ldRow + i * LD_ROWS;
    const int row = firstRow + r;
    const bool inside = row <= lastValidRow;
    cp_async16(dst + r * LDS + ldCol, src + (inside ? (size_t)row * stride : 0) + ldCol, inside ? 16 : 0);
  }
}

// S (16 rows of this warp x 64 keys) = Q K^T from shared tiles; qf holds the warp's Q fragments.
__device__ __forceinline__ void warp_scores(float (&s)[BN / 8][4], const u32 (&qf)[D / 16][4], u32 kLane) {
#pragma unroll
  for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
    for (int np = 0; np < BN / 16; ++np) {
      u32 b0, b1, b2, b3;
      ldmatrix_x4_at(b0, b1, b2, b3, kLane + np * 16 * ROW_BYTES + kk * 32);
      mma_bf16_16816(s[2 * np], qf[kk], b0, b1);
      mma_bf16_16816(s[2 * np + 1], qf[kk], b2, b3);
    }
  }
}

__device__ __forceinline__ void load_q_fragments(u32 (&qf)[D / 16][4], u32 qLane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4_at(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qLane + kk * 32);
}
}  // namespace

// grid (ceil(A / 64), splits, H); shared: (64 + 2·64) rows of LDS bf16.
extern "C" __global__ void __launch_bounds__(THREADS) vs_row_stats(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, float2* __restrict__ partial, int n, int H, int Hkv,
    int qRowStride, int kvStride, int A, int tilesPerSplit, float scaleLog2) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);  // [ROWS][LDS]
  bf16_t* sK = sQ + ROWS * LDS;                      // [2][BN][LDS]

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3, mi = lane >> 3;
  const int i0 = blockIdx.x * ROWS;
  const int split = blockIdx.y, splits = gridDim.y;
  const int h = blockIdx.z, hk = h / (H / Hkv);
  const int rowsHere = min(ROWS, A - i0);
  const int firstPos = n - A + i0;
  const int lastPos = firstPos + rowsHere - 1;
  const int t0 = split * tilesPerSplit;
  const int t1 = min(t0 + tilesPerSplit, lastPos / BN + 1);
  float2* part = partial + ((size_t)h * splits + split) * A + i0;

  if (t0 >= t1) {  // no key of this split is visible to any row of the chunk
    for (int r = tid; r < rowsHere; r += THREADS) part[r] = make_float2(NEG_INF, 0.f);
    return;
  }
  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  load_rows(sQ, q + (size_t)firstPos * qRowStride + (size_t)h * D, qRowStride, 0, rowsHere - 1, tid);
  load_rows(sK, kHead, D, t0 * BN, n - 1, tid);
  cp_async_commit();

  const u32 qLane = smem_addr(sQ) + (warp * 16 + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  const int qPos = firstPos + warp * 16 + g;  // position of this lane's row g

  u32 qf[D / 16][4];
  float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};
  for (int j = t0; j < t1; ++j) {
    const int stage = (j - t0) & 1;
    if (j + 1 < t1) load_rows(sK + (stage ^ 1) * BN * LDS, kHead, D, (j + 1) * BN, n - 1, tid);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (j == t0) load_q_fragments(qf, qLane);

    float s[BN / 8][4];
    warp_scores(s, qf, kLane + stage * BN * ROW_BYTES);
    const int n0 = j * BN;
    if (n0 + BN - 1 > firstPos + warp * 16) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (n0 + nt * 8 + 2 * t4 + (e & 1) > qPos + (e < 2 ? 0 : 8)) s[nt][e] = NEG_INF;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = rowMax[r];
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float negBase = (mx == NEG_INF) ? 0.f : -mx * scaleLog2;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        sum += fast_exp2(fmaf(s[nt][2 * r], scaleLog2, negBase)) + fast_exp2(fmaf(s[nt][2 * r + 1], scaleLog2, negBase));
      }
      rowSum[r] = rowSum[r] * fast_exp2(fmaf(rowMax[r], scaleLog2, negBase)) + sum;
      rowMax[r] = mx;
    }
    __syncthreads();  // the next iteration's load overwrites this stage
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = warp * 16 + g + 8 * r;
    if (t4 == 0 && row < rowsHere) part[row] = make_float2(rowMax[r], l);
  }
}

// grid ceil(H·A / 256), 256 threads.
extern "C" __global__ void vs_combine_stats(const float2* __restrict__ partial, float2* __restrict__ stats, int H, int A, int splits,
                                            float scaleLog2) {
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= H * A) return;
  const int h = idx / A, i = idx % A;
  const float2* p = partial + (size_t)h * splits * A + i;
  float mx = NEG_INF;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, p[(size_t)s * A].x);
  float sum = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float2 v = p[(size_t)s * A];
    if (v.x != NEG_INF) sum += v.y * fast_exp2((v.x - mx) * scaleLog2);
  }
  // Every row sees at least its own key, so mx is finite and sum >= 1.
  stats[idx] = make_float2(-mx * scaleLog2, 1.f / sum);
}

// grid (ceil(n / 64), H); shared: 2·64 rows of LDS bf16, 4·16·PLD fp32 weights, 4·64 fp32 column
// partials, diagLen u64 fixed-point diagonal sums (diagLen = 64·ceil(A / 64) + 63). fixedScale = 2^S.
extern "C" __global__ void __launch_bounds__(THREADS) vs_column_diag(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const float2* __restrict__ stats, float* __restrict__ vertical,
    u64* __restrict__ slashFixed, int n, int H, int Hkv, int qRowStride, int kvStride, int A, float scaleLog2, float fixedScale) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16_t* sK = reinterpret_cast<bf16_t*>(smem_raw);  // [BN][LDS]
  bf16_t* sQ = sK + BN * LDS;                        // [ROWS][LDS]
  float* sP = reinterpret_cast<float*>(sQ + ROWS * LDS);  // [WARPS][16][PLD]
  float* sCol = sP + WARPS * 16 * PLD;                    // [WARPS][BN]
  u64* sDiag = reinterpret_cast<u64*>(sCol + WARPS * BN);  // [diagLen]
  const int diagLen = ((A + ROWS - 1) / ROWS) * ROWS + BN - 1;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3, mi = lane >> 3;
  const int k0 = blockIdx.x * BN;
  const int h = blockIdx.y, hk = h / (H / Hkv);
  const int firstPos = n - A;

  for (int i = tid; i < diagLen; i += THREADS) sDiag[i] = 0ull;
  load_rows(sK, k + (size_t)hk * kvStride * D, D, k0, n - 1, tid);
  cp_async_commit();

  const u32 qLane = smem_addr(sQ) + (warp * 16 + (mi & 1) * 8 + (lane & 7)) * ROW_BYTES + (mi >> 1) * 16;
  const u32 kLane = smem_addr(sK) + ((mi >> 1) * 8 + (lane & 7)) * ROW_BYTES + (mi & 1) * 16;
  float* wP = sP + warp * 16 * PLD;
  float colAcc0 = 0.f, colAcc1 = 0.f;  // this lane's columns lane and lane + 32, over this warp's rows

  const int numChunks = (A + ROWS - 1) / ROWS;
  for (int c = 0; c < numChunks; ++c) {
    const int i0 = c * ROWS;
    const int rowsHere = min(ROWS, A - i0);
    if (firstPos + i0 + rowsHere - 1 < k0) continue;  // no row of the chunk reaches this key tile
    __syncthreads();  // every warp is done with the previous chunk's Q tile
    load_rows(sQ, q + (size_t)(firstPos + i0) * qRowStride + (size_t)h * D, qRowStride, 0, rowsHere - 1, tid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    u32 qf[D / 16][4];
    load_q_fragments(qf, qLane);
    float s[BN / 8][4];
    warp_scores(s, qf, kLane);

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = i0 + warp * 16 + g + 8 * r;  // index among the last A queries
      const bool live = row < A;
      const float2 st = live ? stats[(size_t)h * A + row] : make_float2(0.f, 0.f);
      const int p = firstPos + row;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        const int key = k0 + nt * 8 + 2 * t4;
        const float w0 = (live && key <= p) ? fast_exp2(fmaf(s[nt][2 * r], scaleLog2, st.x)) * st.y : 0.f;
        const float w1 = (live && key + 1 <= p) ? fast_exp2(fmaf(s[nt][2 * r + 1], scaleLog2, st.x)) * st.y : 0.f;
        *reinterpret_cast<float2*>(wP + (g + 8 * r) * PLD + nt * 8 + 2 * t4) = make_float2(w0, w1);
      }
    }
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 16; ++r) {
      colAcc0 += wP[r * PLD + lane];
      colAcc1 += wP[r * PLD + lane + 32];
    }
    // Diagonal d = row - column (in tile coordinates, -63..15): offset o = (firstPos + i0 + warp·16 - k0) + d,
    // stored at sDiag[o - (firstPos - k0 - 63)] = sDiag[i0 + warp·16 + d + 63].
#pragma unroll
    for (int u0 = 0; u0 < 96; u0 += 32) {
      const int u = u0 + lane;
      if (u < 16 + BN - 1) {
        const int d = u - (BN - 1);
        float sum = 0.f;
        const int rFirst = max(0, d), rLast = min(15, BN - 1 + d);
        for (int r = rFirst; r <= rLast; ++r) sum += wP[r * PLD + r - d];
        // sum: at most min(16, A) weights, each <= 1 up to rounding, so sum·2^S < 2^63; the scaling by
        // a power of two is exact, the conversion rounds once.
        const u64 fixed = f32_to_u64_rn(sum * fixedScale);
        if (fixed != 0ull) atomicAdd(&sDiag[i0 + warp * 16 + u], fixed);
      }
    }
    __syncwarp();
  }

  sCol[warp * BN + lane] = colAcc0;
  sCol[warp * BN + lane + 32] = colAcc1;
  __syncthreads();
  if (tid < BN && k0 + tid < n) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) v += sCol[w * BN + tid];
    vertical[(size_t)h * n + k0 + tid] = v;
  }
  for (int i = tid; i < diagLen; i += THREADS) {
    const int o = firstPos - k0 - (BN - 1) + i;
    if (o >= 0 && o < n && sDiag[i] != 0ull) atomicAdd(&slashFixed[(size_t)h * n + o], sDiag[i]);
  }
}

// grid ceil(count / 256), 256 threads. slash[i] = slashFixed[i] · 2^-S, rounded once to fp32 (the
// integer -> float conversion rounds; scaling by a power of two is exact: the result is >= 2^-62).
extern "C" __global__ void vs_slash_from_fixed(const u64* __restrict__ slashFixed, float* __restrict__ slash, int count,
                                               float invFixedScale) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) slash[i] = u64_to_f32_rn(slashFixed[i]) * invFixedScale;
}
