// Per-warp pieces of a FlashAttention-2 style tile loop (mma.sync m16n8k16, bf16 operands, fp32
// accumulators), for kernels where one warp owns a 16-row query tile: the online-softmax update of a
// row pair, the P fragment hand-off from the QK^T accumulators to the PV product, and the final
// normalise-and-store. The numerics are those of flash-prefill.cu (log2-domain exponent with the
// scale folded into one FMA, accumulator rescale skipped when no row max moved).
//
// Needs common.cuh first. kernel-source.ts inlines only the .cu file's own includes, so this header
// includes nothing itself: a kernel writes `#include "common.cuh"` then `#include "flash-tile.cuh"`.
//
// Fragment layout (per lane, g = lane / 4, t4 = lane % 4): an accumulator s[nt][0..3] of an 8-key
// column tile nt holds rows g (elements 0, 1) and g + 8 (elements 2, 3), keys 8·nt + 2·t4 + {0, 1}.
#pragma once

// Online softmax over NT 8-key column tiles for the row pair (g, g + 8) of one 16-row tile: turns the
// One row (r = 0: row g, r = 1: row g + 8) of the online softmax: the row's scores in s into
// unnormalised probabilities in place, its max and its sum (this lane's share of the quad's) updated;
// returns the factor alpha by which the row's output accumulator must be rescaled. Masked scores must
// be NEG_INF; a row with nothing visible so far keeps max NEG_INF and gets zeros.
template <int NT>
__device__ __forceinline__ float flash_softmax_row(float (&s)[NT][4], int r, float& rowMax, float& rowSum, float scaleLog2) {
  float mx = rowMax;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float negBase = (mx == NEG_INF) ? 0.f : -mx * scaleLog2;
  const float alpha = fast_exp2(fmaf(rowMax, scaleLog2, negBase));
  rowMax = mx;
  float sum = 0.f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const float p0 = fast_exp2(fmaf(s[nt][2 * r], scaleLog2, negBase));
    const float p1 = fast_exp2(fmaf(s[nt][2 * r + 1], scaleLog2, negBase));
    s[nt][2 * r] = p0;
    s[nt][2 * r + 1] = p1;
    sum += p0 + p1;
  }
  rowSum = rowSum * alpha + sum;
  return alpha;
}

// scores s into unnormalised probabilities in place, updates rowMax / rowSum (this lane's share of the
// quad's sum) and rescales the DT 8-wide column tiles of the output accumulator o when a max moved.
template <int NT, int DT>
__device__ __forceinline__ void flash_online_softmax(float (&s)[NT][4], float (&o)[DT][4], float (&rowMax)[2],
                                                     float (&rowSum)[2], float scaleLog2) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float alpha = flash_softmax_row(s, r, rowMax[r], rowSum[r], scaleLog2);
    // Warp-uniform test, so the skip costs no divergence.
    if (__any_sync(0xffffffffu, alpha != 1.f)) {
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        o[dt][2 * r] *= alpha;
        o[dt][2 * r + 1] *= alpha;
      }
    }
  }
}

// The fp32 accumulators of two adjacent 8-key tiles (2·kk, 2·kk + 1) are exactly the A fragment of one
// 16-key step of P·V: packed to bf16, P never leaves registers.
template <int NT>
__device__ __forceinline__ void flash_p_fragment(const float (&s)[NT][4], int kk, u32 (&a)[4]) {
  a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
  a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
  a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// Sets scores of keys right of the query's position or past the cache to NEG_INF, for the 16-key
// column pair (2·kk, 2·kk + 1) whose first key is n0. qPos: position of row g; rows g + 8 are 8 later.
template <int NT>
__device__ __forceinline__ void flash_causal_mask16(float (&s)[NT][4], int kk, int n0, int qPos, int kvLen, int t4) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int key = n0 + half * 8 + 2 * t4 + (e & 1);
      const int qp = qPos + (e < 2 ? 0 : 8);
      if (key > qp || key >= kvLen) s[2 * kk + half][e] = NEG_INF;
    }
  }
}

// Normalises the accumulator by the quad-summed row sums and stores rows g and g + 8 of the tile whose
// first query index is row0 (rows at or past T are not stored). out: [T, H, D], head h. A row whose
// sum is 0 (nothing attended) is stored as zeros.
template <int DT>
__device__ __forceinline__ void flash_store_rows(const float (&o)[DT][4], const float (&rowSum)[2], bf16_t* out, int row0,
                                                 int g, int t4, int T, int H, int h) {
  constexpr int D = DT * 8;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = rowSum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int t = row0 + g + 8 * r;
    if (t < T) {
      bf16_t* dst = out + ((size_t)t * H + h) * D + 2 * t4;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        *reinterpret_cast<u32*>(dst + dt * 8) = pack_bf16x2(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
      }
    }
  }
}
