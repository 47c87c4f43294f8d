// One row's RMSNorm by one block of ROW_RMS_THREADS threads (8 warps), shared by elementwise.cu's
// rmsnorm / add_rmsnorm and model-ops.cu's gemv_fused_bf16 prologue. Thread t owns elements t, t + 256,
// ...; up to ROW_RMS_REGS of them (rows up to 8192 wide) are requested at once and held in registers,
// so a row costs one memory round trip: the loop form, which fed each load straight into the sum,
// waited for every load in turn (6.5 us for a 4096-wide row on an H100, session 10). The sum of squares
// keeps the loop form's order (each thread's elements ascending, warp sums, the 8 warps' partials in
// order), so the bits are the same. Needs common.cuh before it.
#define ROW_RMS_THREADS 256
#define ROW_RMS_REGS 32

__device__ __forceinline__ float row_rms_warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// 1 / sqrt(mean of squares + eps) of a row of C from each thread's sum of its own squares; partial: 8
// floats of shared memory (one call per kernel: the barrier inside is the only one).
__device__ __forceinline__ float row_inv_rms(float ss, float* partial, int C, float eps) {
  ss = row_rms_warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) total += partial[i];
  return rsqrtf(total / C + eps);
}

// The register form's three steps, shared by rmsnorm, add_rmsnorm and the GEMV's norm prologue. Thread t
// holds elements t + j * ROW_RMS_THREADS (j < REGS) of the row; past C its slots hold 0.

// Thread t's share of the row x[C] and of the weights w[C], every load issued before any is used.
template <int REGS>
__device__ __forceinline__ void row_rms_load(const bf16_t* x, const bf16_t* w, int C,
                                             float (&v)[REGS], float (&g)[REGS]) {
  const int t = threadIdx.x;
#pragma unroll
  for (int j = 0; j < REGS; ++j) {
    const int i = t + j * ROW_RMS_THREADS;
    v[j] = i < C ? bf16_to_f32(x[i]) : 0.f;
    g[j] = i < C ? bf16_to_f32(w[i]) : 0.f;
  }
}

// This thread's sum of squares, its elements in ascending order (the loop form's order).
template <int REGS>
__device__ __forceinline__ float row_rms_sum_squares(const float (&v)[REGS], int C) {
  const int t = threadIdx.x;
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < REGS; ++j) {
    if (t + j * ROW_RMS_THREADS < C) ss = fmaf(v[j], v[j], ss);
  }
  return ss;
}

// out[i] = bf16(v * inv * (g + weightOffset)) for this thread's elements below C.
template <int REGS>
__device__ __forceinline__ void row_rms_store(bf16_t* out, const float (&v)[REGS], const float (&g)[REGS],
                                              float inv, float weightOffset, int C) {
  const int t = threadIdx.x;
#pragma unroll
  for (int j = 0; j < REGS; ++j) {
    const int i = t + j * ROW_RMS_THREADS;
    if (i < C) out[i] = f32_to_bf16(v[j] * inv * (g[j] + weightOffset));
  }
}
