// One warpgroup's products in exactly the two forms flash-prefill-wgmma.cu uses, on small matrices, so a
// test can check wgmma's operand layouts and the shared-memory descriptors against a host product
// (test/cuda/wgmma-probe.test.ts). Leading and stride byte offsets are run-time arguments: one launch
// per candidate setting; negative values mean "the production descriptor of wgmma.cuh".
//
//   wgmma_probe_qk: C[64][64] = A[64][128] · B[64][128]ᵀ   (both K-major from shared memory, 8 k-steps)
//   wgmma_probe_pv: C[64][128] = P[64][64] · V[64][128]     (P from registers, V MN-major from shared)
// Inputs are row-major bf16 in global memory, C row-major fp32. One block of 128 threads.
#include "common.cuh"
#include "wgmma.cuh"

namespace {
// Copies a row-major [rows][128] bf16 matrix into the swizzled-halves layout at dst (128 threads).
__device__ void load_swizzled(u32 dst, const bf16_t* src, int rows) {
  for (int c = threadIdx.x; c < rows * 16; c += 128) {
    const int r = c / 16, chunk = c % 16;
    cp_async16_at(dst + swizzled_offset(r, chunk, rows), src + r * 128 + chunk * 8, 16);
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
}

// Stores the accumulator of a 64 x (8·N) product row-major.
template <int N>
__device__ void store_acc(const float (&d)[N][4], float* c) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int cols = 8 * N;
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = warp * 16 + g + (e < 2 ? 0 : 8);
      c[row * cols + 8 * i + 2 * t4 + (e & 1)] = d[i][e];
    }
  }
}

__device__ __forceinline__ u64 desc_or(u32 addr, int lead, int stride, u64 production) {
  return lead < 0 ? production : wgmma_desc(addr, (u32)lead, (u32)stride);
}
}  // namespace

extern "C" __global__ void __launch_bounds__(128) wgmma_probe_qk(const bf16_t* a, const bf16_t* b, float* c, int lead,
                                                                 int stride, int kStepBytes) {
  __shared__ __align__(1024) unsigned char smem[2 * 64 * 256];
  const u32 sA = smem_addr(smem), sB = sA + 64 * 256;
  load_swizzled(sA, a, 64);
  load_swizzled(sB, b, 64);
  float d[8][4];
#pragma unroll
  for (int i = 0; i < 8; ++i) d[i][0] = d[i][1] = d[i][2] = d[i][3] = 0.f;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    const u32 off = (kk >> 2) * 64 * 128 + (kk & 3) * kStepBytes;
    wgmma_m64n64k16_ss(d, desc_or(sA + off, lead, stride, wgmma_desc_k_major(sA + off)),
                       desc_or(sB + off, lead, stride, wgmma_desc_k_major(sB + off)), kk > 0 ? 1 : 0);
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(d);
  store_acc(d, c);
}

extern "C" __global__ void __launch_bounds__(128) wgmma_probe_pv(const bf16_t* p, const bf16_t* v, float* c, int lead,
                                                                 int stride, int unused) {
  __shared__ __align__(1024) unsigned char smem[64 * 256];
  const u32 sV = smem_addr(smem);
  load_swizzled(sV, v, 64);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  // P's A fragments straight from global: rows g and g + 8 of this warp's 16, keys 2·t4 (+8) of a k-step.
  const unsigned* pw = reinterpret_cast<const unsigned*>(p);  // [64][32] bf16 pairs
  u32 a[4][4];
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const int r0 = warp * 16 + g, col = kk * 8 + t4;  // pair index of keys 16·kk + 2·t4
    a[kk][0] = pw[r0 * 32 + col];
    a[kk][1] = pw[(r0 + 8) * 32 + col];
    a[kk][2] = pw[r0 * 32 + col + 4];
    a[kk][3] = pw[(r0 + 8) * 32 + col + 4];
  }
  float d[16][4];
#pragma unroll
  for (int i = 0; i < 16; ++i) d[i][0] = d[i][1] = d[i][2] = d[i][3] = 0.f;
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    const u32 addr = sV + kk * 16 * 128;
    wgmma_m64n128k16_rs_tb(d, a[kk], desc_or(addr, lead, stride, wgmma_desc_mn_major(addr, 64 * 128)), 1);
  }
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(d);
  store_acc(d, c);
  (void)unused;
}
