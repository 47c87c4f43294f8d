// Pieces of the Hopper producer/consumer prefill loops shared by flash-prefill-wgmma.cu (dense) and
// block-sparse-prefill-wgmma.cu: mbarriers, named barriers, the warpgroup register split, and the
// online softmax split in two for loops whose P·V is still running when the next scores arrive.
// Needs common.cuh (u32, bf16_t, NEG_INF, fast_exp2, cp_async16_at), wgmma.cuh (swizzled_offset) and
// flash-tile.cuh (flash_softmax_row) included before it.
#pragma once

// mbarriers: 8-byte shared-memory objects counting arrivals per phase.
__device__ __forceinline__ void mbar_init(u32 bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialisations visible to the async proxy (cp.async arrivals) before first use.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Waits until the phase of the given parity has completed.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// One arrival on the barrier once all of this thread's earlier cp.async copies have landed.
__device__ __forceinline__ void cp_async_mbar_arrive_noinc(u32 bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(bar) : "memory");
}
// Thread 0's set-up of a producer/consumer stage ring: the Q barrier and, per stage, the K and V "full"
// barriers (the producer's copies arrive) and "empty" ones (the consumers release); fenced for the async
// proxy. The block synchronises after.
__device__ __forceinline__ void init_stage_ring_barriers(u32 fullQ, u32 fullK, u32 fullV, u32 emptyK, u32 emptyV, int stages,
                                                         int producerThreads, int emptyArrivals) {
  mbar_init(fullQ, producerThreads);
  for (int st = 0; st < stages; ++st) {
    mbar_init(fullK + 8 * st, producerThreads);
    mbar_init(fullV + 8 * st, producerThreads);
    mbar_init(emptyK + 8 * st, emptyArrivals);
    mbar_init(emptyV + 8 * st, emptyArrivals);
  }
  mbar_init_fence();
}
// The producer's copy of a CTA's ROWS query rows of head h ([T, qRowStride] queries, head h at h·D)
// into a 128-byte-swizzled tile: this thread's 16-byte column chunk of rows pr, pr + P_ROWS, ... (P_ROWS
// a multiple of 8: one swizzle phase per thread). Rows past T are zero-filled (source clamped to T - 1).
template <int ROWS, int P_ROWS, int D>
__device__ __forceinline__ void producer_copy_q(u32 sQ, const bf16_t* q, int h, int m0, int T, int qRowStride, int pr, int chunk) {
  const u32 dst0 = sQ + swizzled_offset(pr, chunk, ROWS);
  const bf16_t* src = q + (size_t)h * D + chunk * 8;
#pragma unroll
  for (int i = 0; i < ROWS / P_ROWS; ++i) {
    const int t = m0 + pr + i * P_ROWS;
    cp_async16_at(dst0 + i * P_ROWS * 128, src + (size_t)min(t, T - 1) * qRowStride, t < T ? 16 : 0);
  }
}
// S = Q·Kᵀ of one warpgroup's 64 rows over an N-key stage (N = 64 or 128; the first k-step overwrites
// S): Q and K K-major in shared memory, each D columns as 64-column halves of qHalf / kvHalf bytes.
template <int D, int N>
__device__ __forceinline__ void issue_qk_ss(float (&s)[N / 8][4], u32 qBase, u32 qHalf, u32 kStage, u32 kvHalf) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const u32 within = (kk & 3) * 32;  // k-step inside the 128-byte half
    if constexpr (N == 128) {
      wgmma_m64n128k16_ss(s, wgmma_desc_k_major(qBase + (kk >> 2) * qHalf + within),
                          wgmma_desc_k_major(kStage + (kk >> 2) * kvHalf + within), kk > 0 ? 1 : 0);
    } else {
      wgmma_m64n64k16_ss(s, wgmma_desc_k_major(qBase + (kk >> 2) * qHalf + within),
                         wgmma_desc_k_major(kStage + (kk >> 2) * kvHalf + within), kk > 0 ? 1 : 0);
    }
  }
}
// O += P·V over an N-key stage: P from registers (one m64k16 fragment per 16 keys), V MN-major in
// shared memory (D columns as 64-column halves of kvHalf bytes).
template <int D, int N>
__device__ __forceinline__ void issue_pv(float (&o)[D / 8][4], const u32 (&p)[N / 16][4], u32 vStage, u32 kvHalf) {
#pragma unroll
  for (int kk = 0; kk < N / 16; ++kk) {
    if constexpr (D == 128) {
      wgmma_m64n128k16_rs_tb(o, p[kk], wgmma_desc_mn_major(vStage + kk * 16 * 128, kvHalf), 1);
    } else {
      wgmma_m64n64k16_rs_tb(o, p[kk], wgmma_desc_mn_major(vStage + kk * 16 * 128, kvHalf), 1);
    }
  }
}
// A consumer warp's O [D/8][4] and S [N/8][4] accumulators zeroed before its first product.
template <int D, int N>
__device__ __forceinline__ void zero_accumulators(float (&o)[D / 8][4], float (&s)[N / 8][4]) {
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
#pragma unroll
  for (int i = 0; i < N / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
}
// Named barriers 1..15 among `count` threads (warp multiples): sync waits, arrive does not.
__device__ __forceinline__ void named_bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(count) : "memory");
}
// Moves this warpgroup's register budget to `regs` per thread (sm_90a; the kernel's entry cap must be
// set by __launch_bounds__(THREADS, 1)).
template <int REGS>
__device__ __forceinline__ void set_max_registers_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(REGS)); }
template <int REGS>
__device__ __forceinline__ void set_max_registers_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(REGS)); }

// The online softmax of flash-tile.cuh split in two for the overlapped loop: scores -> unnormalised
// probabilities in place with the running max and sum updated, the accumulator's factor alpha returned
// (applied later, once the P·V that is still running on the accumulator has finished).
template <int NT>
__device__ __forceinline__ void flash_softmax_scores(float (&s)[NT][4], float (&rowMax)[2], float (&rowSum)[2],
                                                     float (&alpha)[2], float scaleLog2) {
#pragma unroll
  for (int r = 0; r < 2; ++r) alpha[r] = flash_softmax_row(s, r, rowMax[r], rowSum[r], scaleLog2);
}
// o's rows g and g + 8 times alpha[0] and alpha[1]; skipped when no row max of the warp moved.
template <int DT>
__device__ __forceinline__ void flash_rescale_rows(float (&o)[DT][4], const float (&alpha)[2]) {
  if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt) {
      o[dt][0] *= alpha[0];
      o[dt][1] *= alpha[0];
      o[dt][2] *= alpha[1];
      o[dt][3] *= alpha[1];
    }
  }
}
