// The small per-token kernels of a transformer layer (bf16 in and out, fp32 arithmetic):
//   rmsnorm         out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * (w + weightOffset)
//   rope_rotate_half in place on x[t, h, :]: pairs (i, i + D/2) rotated by angle pos[t] * invFreq[i]
//   swiglu          out = silu(gate) * up
//   add             out = a + b              (residual)
//   add_rmsnorm     x += r, then out = rmsnorm(x): add and rmsnorm in one pass, bit for bit the same
//                   values as the two kernels (the same rounding of the sum, the same reduction order)
//   argmax_rows     index of the largest of each fp32 row (lowest index on ties)
// No codegen parameters: one module serves every shape.
#include "common.cuh"
#include "row-rms.cuh"

// grid (T), block (256). x, out: [T, C]; w: [C]. Gemma's (1 + w) norm passes weightOffset = 1.
// release (both norms): 1 lets a programmatic dependent launched after this kernel (a GEMV that waits
// for this grid before reading its input) start now; 0 as before.
extern "C" __global__ void __launch_bounds__(256) rmsnorm(
    const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int C, float eps,
    float weightOffset, int release) {
  if (release) asm volatile("griddepcontrol.launch_dependents;");
  __shared__ float partial[8];
  const size_t row = blockIdx.x;
  const bf16_t* xr = x + row * C;
  const int t = threadIdx.x;
  if (C <= ROW_RMS_REGS * ROW_RMS_THREADS) {
    // The row and the weights requested at once (row-rms.cuh), the same sums as the loop below.
    float v[ROW_RMS_REGS], g[ROW_RMS_REGS];
    row_rms_load(xr, w, C, v, g);
    const float inv = row_inv_rms(row_rms_sum_squares(v, C), partial, C, eps);
    row_rms_store(out + row * C, v, g, inv, weightOffset, C);
    return;
  }
  float ss = 0.f;
  for (int i = t; i < C; i += blockDim.x) {
    const float v = bf16_to_f32(xr[i]);
    ss = fmaf(v, v, ss);
  }
  const float inv = row_inv_rms(ss, partial, C, eps);
  for (int i = t; i < C; i += blockDim.x) {
    out[row * C + i] = f32_to_bf16(bf16_to_f32(xr[i]) * inv * (bf16_to_f32(w[i]) + weightOffset));
  }
}

// grid (T), block (256). x: [T, C] residual stream, in place x = bf16(x + r); r: [T, C]; w: [C]; out:
// [T, C] = rmsnorm(x) as the rmsnorm kernel computes it from the stored (rounded) sum: each thread sums
// the squares of the same elements in the same order, so both kernels give identical bits.
extern "C" __global__ void __launch_bounds__(256) add_rmsnorm(
    bf16_t* __restrict__ x, const bf16_t* __restrict__ r, const bf16_t* __restrict__ w, bf16_t* __restrict__ out, int C,
    float eps, float weightOffset, int release) {
  if (release) asm volatile("griddepcontrol.launch_dependents;");
  __shared__ float partial[8];
  const size_t row = blockIdx.x;
  bf16_t* xr = x + row * C;
  const bf16_t* rr = r + row * C;
  const int t = threadIdx.x;
  if (C <= ROW_RMS_REGS * ROW_RMS_THREADS) {
    // Every load first (the row, the residual, the weights), then the rounded sums stored back.
    float v[ROW_RMS_REGS], d[ROW_RMS_REGS], g[ROW_RMS_REGS];
#pragma unroll
    for (int j = 0; j < ROW_RMS_REGS; ++j) {
      const int i = t + j * ROW_RMS_THREADS;
      v[j] = i < C ? bf16_to_f32(xr[i]) : 0.f;
      d[j] = i < C ? bf16_to_f32(rr[i]) : 0.f;
      g[j] = i < C ? bf16_to_f32(w[i]) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < ROW_RMS_REGS; ++j) {
      const int i = t + j * ROW_RMS_THREADS;
      const bf16_t rounded = f32_to_bf16(v[j] + d[j]);
      v[j] = bf16_to_f32(rounded);
      if (i < C) xr[i] = rounded;
    }
    const float inv = row_inv_rms(row_rms_sum_squares(v, C), partial, C, eps);
    row_rms_store(out + row * C, v, g, inv, weightOffset, C);
    return;
  }
  float ss = 0.f;
  for (int i = t; i < C; i += blockDim.x) {
    const bf16_t sum = f32_to_bf16(bf16_to_f32(xr[i]) + bf16_to_f32(rr[i]));
    xr[i] = sum;
    const float v = bf16_to_f32(sum);
    ss = fmaf(v, v, ss);
  }
  const float inv = row_inv_rms(ss, partial, C, eps);
  // Each thread reads back only the elements it wrote itself.
  for (int i = t; i < C; i += blockDim.x) {
    out[row * C + i] = f32_to_bf16(bf16_to_f32(xr[i]) * inv * (bf16_to_f32(w[i]) + weightOffset));
  }
}

// One thread per rotated pair. x: [T, heads, D]; positions: [T] int32; invFreq: [D/2] fp32.
extern "C" __global__ void __launch_bounds__(256) rope_rotate_half(
    bf16_t* __restrict__ x, const int* __restrict__ positions, const float* __restrict__ invFreq, int T, int heads,
    int D) {
  const int half = D >> 1;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)T * heads * half) return;
  const int i = idx % half;
  const size_t th = idx / half;  // t * heads + h
  const int t = th / heads;
  float s, c;
  sincosf((float)positions[t] * invFreq[i], &s, &c);
  bf16_t* v = x + th * D;
  const float x1 = bf16_to_f32(v[i]);
  const float x2 = bf16_to_f32(v[i + half]);
  v[i] = f32_to_bf16(x1 * c - x2 * s);
  v[i + half] = f32_to_bf16(x2 * c + x1 * s);
}

extern "C" __global__ void __launch_bounds__(256) swiglu(
    const bf16_t* __restrict__ gate, const bf16_t* __restrict__ up, bf16_t* __restrict__ out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = bf16_to_f32(gate[i]);
  out[i] = f32_to_bf16(g / (1.f + __expf(-g)) * bf16_to_f32(up[i]));
}

extern "C" __global__ void __launch_bounds__(256) add(
    const bf16_t* __restrict__ a, const bf16_t* __restrict__ b, bf16_t* __restrict__ out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

// grid (rows), block (1024). logits: [rows, V] fp32; out: [rows] int32.
extern "C" __global__ void __launch_bounds__(1024) argmax_rows(const float* __restrict__ logits, int* __restrict__ out,
                                                               int V) {
  __shared__ float bestVal[32];
  __shared__ int bestIdx[32];
  const float* row = logits + (size_t)blockIdx.x * V;
  float bv = NEG_INF;
  int bi = 0x7fffffff;
  // Strided ascending scan: the first maximum this thread sees is its lowest index; the first
  // element is taken even when it is -inf, so an all -inf row still answers an index.
  auto see = [&](float v, int i) {
    if (v > bv || bi == 0x7fffffff) {
      bv = v;
      bi = i;
    }
  };
  if ((V & 3) == 0 && (reinterpret_cast<size_t>(row) & 15) == 0) {
    // 16-byte loads, eight requested at once per thread (one block reads the whole row: bytes in
    // flight set its pace); each thread still sees its indices in ascending order.
    const float4* row4 = reinterpret_cast<const float4*>(row);
    const int n4 = V >> 2;
#pragma unroll 8
    for (int c = threadIdx.x; c < n4; c += blockDim.x) {
      const float4 q = row4[c];
      see(q.x, 4 * c);
      see(q.y, 4 * c + 1);
      see(q.z, 4 * c + 2);
      see(q.w, 4 * c + 3);
    }
  } else {
    for (int i = threadIdx.x; i < V; i += blockDim.x) see(row[i], i);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (ov > bv || (ov == bv && oi < bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) {
    bestVal[warp] = bv;
    bestIdx[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    bv = lane < warps ? bestVal[lane] : NEG_INF;
    bi = lane < warps ? bestIdx[lane] : 0x7fffffff;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (ov > bv || (ov == bv && oi < bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) out[blockIdx.x] = bi;
  }
}
