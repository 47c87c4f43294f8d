// Decode attention over a KV cache (one new token), split-K over the context:
//   decode_partial: block (split s, KV head hk) streams its chunk of rows once, K and V of a row loaded
//                   together, and serves all GROUP query heads of the KV head (the GQA group). Each
//                   row slot (D/8 lanes, 16 bytes each) keeps an online softmax (running max, sum and
//                   unnormalised output) over its rows; the slots merge in shared memory at the end
//                   and the block writes one partial output with its max and exp-sum (log2 domain).
//   decode_combine: block (query head h) merges the splits' partials into the final [H, D] output.
// v3 adds register double buffering (the next step's rows are in flight during this step's math) and
// a combine whose loads are independent. v1 (docs/perf.md) made three passes (scores, softmax, P·V) with barriers between them and read V
// only after all of K: each block waited for memory twice as often, with half the bytes in flight.
//
// Layouts:
//   q     : [H, D] bf16                 out : [H, D] bf16
//   k, v  : [Hkv, kvStride, D] bf16     rows [0, len(hk)) valid (per-KV-head contiguous rows), where
//                                       len(hk) = headLen[hk] when headLen is given (heads evicted to
//                                       different lengths, Ada-SnapKV), else kvLen; each len >= 1
//   partO : [splits, H, D] fp32          partML : [splits, H, 2] fp32 (max, sum), log2 domain
// Query head h reads KV head h / GROUP. Split s covers rows [s * chunk, min(len(hk), (s + 1) * chunk)).
//
// Codegen parameters (-D): HEAD_DIM (64, 128 or 256), GROUP (query heads per KV head, 1..8).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GROUP
#define GROUP 4
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int THREADS = 128;
constexpr int LANES_PER_ROW = D / 8;             // each lane holds 8 consecutive bf16 (16 bytes)
constexpr int SLOTS = THREADS / LANES_PER_ROW;   // rows in flight per step across the block
constexpr int UNROLL = 4;                        // rows per slot per step (K and V: 2 x UNROLL loads)
static_assert(D == 64 || D == 128 || D == 256, "HEAD_DIM must be 64, 128 or 256");
static_assert(GROUP >= 1 && GROUP <= 8, "GROUP must be 1..8");

struct alignas(16) Vec8 {
  u32 w[4];
};

__device__ __forceinline__ void unpack8(const Vec8& v, float* f) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(v.w[i] << 16);
    f[2 * i + 1] = __uint_as_float(v.w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ Vec8 load_stream(const bf16_t* p) {
  Vec8 v;
  // Read once: keep it out of L1.
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "l"(p));
  return v;
}
}  // namespace

// Rows of one step: SLOTS * UNROLL; the launcher keeps `chunk` a multiple of it.
extern "C" __global__ void __launch_bounds__(THREADS) decode_partial(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    float* __restrict__ partO, float* __restrict__ partML, const int* __restrict__ headLen, int H, int kvStride,
    int kvLen, int chunk, float scaleLog2) {
  __shared__ float slotO[SLOTS][GROUP][D];
  __shared__ float slotM[SLOTS][GROUP];
  __shared__ float slotL[SLOTS][GROUP];

  const int split = blockIdx.x;
  const int hk = blockIdx.y;
  const int tid = threadIdx.x;
  const int sub = tid % LANES_PER_ROW;   // which 8-wide slice of the row
  const int slot = tid / LANES_PER_ROW;  // which row slot
  const int rowBase = split * chunk;
  const int len = headLen ? headLen[hk] : kvLen;
  const int rows = min(chunk, len - rowBase);
  if (rows <= 0) {  // a head shorter than the longest: this split is empty (weight 0 in the combine)
    for (int i = tid; i < GROUP * D; i += THREADS) partO[((size_t)split * H + hk * GROUP) * D + i] = 0.f;
    if (tid < GROUP) {
      partML[((size_t)split * H + hk * GROUP + tid) * 2] = NEG_INF;
      partML[((size_t)split * H + hk * GROUP + tid) * 2 + 1] = 0.f;
    }
    return;
  }

  const bf16_t* kRows = k + ((size_t)hk * kvStride + rowBase) * D + sub * 8;
  const bf16_t* vRows = v + ((size_t)hk * kvStride + rowBase) * D + sub * 8;

  // This lane's slice of every query head of the group, pre-scaled into the log2 domain.
  float qv[GROUP][8];
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    const Vec8 raw = *reinterpret_cast<const Vec8*>(q + (size_t)(hk * GROUP + gh) * D + sub * 8);
    unpack8(raw, qv[gh]);
#pragma unroll
    for (int e = 0; e < 8; ++e) qv[gh][e] *= scaleLog2;
  }

  float m[GROUP], l[GROUP], acc[GROUP][8];
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    m[gh] = NEG_INF;
    l[gh] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[gh][e] = 0.f;
  }

  // Register double buffering: the next step's K and V rows are requested before this step's math.
  Vec8 kr[UNROLL], vr[UNROLL];
  auto loadStep = [&](int base, Vec8* kd, Vec8* vd) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * SLOTS + slot;
      if (r < rows) {
        kd[u] = load_stream(kRows + (size_t)r * D);
        vd[u] = load_stream(vRows + (size_t)r * D);
      } else {
        kd[u] = Vec8{{0u, 0u, 0u, 0u}};
        vd[u] = Vec8{{0u, 0u, 0u, 0u}};
      }
    }
  };
  loadStep(0, kr, vr);
  for (int base = 0; base < rows; base += SLOTS * UNROLL) {
    Vec8 kn[UNROLL], vn[UNROLL];
    loadStep(base + SLOTS * UNROLL, kn, vn);  // rows past the chunk load nothing
    float sc[UNROLL][GROUP];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * SLOTS + slot;
      float kf[8];
      unpack8(kr[u], kf);
#pragma unroll
      for (int gh = 0; gh < GROUP; ++gh) {
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot = fmaf(qv[gh][e], kf[e], dot);
        // Sum over the row's lanes; xor offsets below LANES_PER_ROW stay inside the slot.
#pragma unroll
        for (int off = LANES_PER_ROW / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        sc[u][gh] = (r < rows) ? dot : NEG_INF;
      }
    }
#pragma unroll
    for (int gh = 0; gh < GROUP; ++gh) {
      float mNew = m[gh];
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) mNew = fmaxf(mNew, sc[u][gh]);
      const float base2 = (mNew == NEG_INF) ? 0.f : mNew;  // nothing valid yet: keep zeros
      const float c = fast_exp2(m[gh] - base2);
      m[gh] = mNew;
      float psum = 0.f;
      float p[UNROLL];
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        p[u] = fast_exp2(sc[u][gh] - base2);
        psum += p[u];
      }
      l[gh] = l[gh] * c + psum;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[gh][e] *= c;
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        float vf[8];
        unpack8(vr[u], vf);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[gh][e] = fmaf(p[u], vf[e], acc[gh][e]);
      }
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      kr[u] = kn[u];
      vr[u] = vn[u];
    }
  }

  // Merge the slots: rescale each to the block max, sum.
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
#pragma unroll
    for (int e = 0; e < 8; ++e) slotO[slot][gh][sub * 8 + e] = acc[gh][e];
    if (sub == 0) {
      slotM[slot][gh] = m[gh];
      slotL[slot][gh] = l[gh];
    }
  }
  __syncthreads();
  for (int i = tid; i < GROUP * D; i += THREADS) {
    const int gh = i / D, d = i % D;
    float mx = NEG_INF;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) mx = fmaxf(mx, slotM[s][gh]);
    const float base2 = (mx == NEG_INF) ? 0.f : mx;
    float o = 0.f, sum = 0.f;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
      const float w = fast_exp2(slotM[s][gh] - base2);
      o = fmaf(w, slotO[s][gh][d], o);
      sum = fmaf(w, slotL[s][gh], sum);
    }
    const size_t row = (size_t)split * H + hk * GROUP + gh;
    partO[row * D + d] = o;
    if (d == 0) {
      partML[row * 2] = mx;
      partML[row * 2 + 1] = sum;
    }
  }
}

// grid (H), block (128), dynamic shared memory splits * 4 bytes: merges the partials of query head h.
// Split weights are computed once into shared memory; each thread then sums its output column over
// the splits with independent loads.
extern "C" __global__ void __launch_bounds__(128) decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  extern __shared__ float weight[];  // [splits]
  __shared__ float red[4];
  const int h = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  float m = NEG_INF;
  for (int s = tid; s < splits; s += 128) m = fmaxf(m, partML[((size_t)s * H + h) * 2]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
  __syncthreads();

  float total = 0.f;
  for (int s = tid; s < splits; s += 128) {
    const float* ml = partML + ((size_t)s * H + h) * 2;
    const float w = fast_exp2(ml[0] - m);
    weight[s] = w;
    total = fmaf(w, ml[1], total);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
  if (lane == 0) red[warp] = total;
  __syncthreads();
  total = red[0] + red[1] + red[2] + red[3];

  for (int d = tid; d < D; d += 128) {
    float acc = 0.f;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) acc = fmaf(weight[s], partO[((size_t)s * H + h) * D + d], acc);
    out[(size_t)h * D + d] = f32_to_bf16(acc / total);
  }
}
