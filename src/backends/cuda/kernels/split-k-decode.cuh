// Split-K decode attention pieces shared by decode-attention.cu (contiguous rows) and segment-decode.cu
// (rows from segment lists): 16-byte row loads, the per-slot online softmax over a block's rows with
// register double buffering, the merge of the block's slots into one partial (output, max, exp-sum;
// log2 domain), and the merge of the splits' partials into the output. The two kernels differ only in
// where a row comes from (their loadStep).
//
// Include after common.cuh and after defining, at namespace scope: D (head dim), GROUP (query heads
// served per block), THREADS, LANES_PER_ROW (= D / 8), SLOTS (= THREADS / LANES_PER_ROW), UNROLL (rows
// per slot per step).
//
// Layouts: partO [splits, H, D] fp32, partML [splits, H, 2] fp32 (max, sum); a block of split s writes
// rows s·H + h0 .. s·H + h0 + GROUP - 1.
namespace {
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

// Partials (written by other blocks or the previous grid): read from L2 (.cg), never from a stale L1 line.
__device__ __forceinline__ float4 load_l2_f4(const float* p) {
  float4 r;
  asm volatile("ld.global.cg.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w) : "l"(p));
  return r;
}
__device__ __forceinline__ float2 load_l2_f2(const float* p) {
  float2 r;
  asm volatile("ld.global.cg.v2.f32 {%0,%1}, [%2];" : "=f"(r.x), "=f"(r.y) : "l"(p));
  return r;
}

// Online merge of one split's (max, sum, output slice) into a running (M, L, acc), log2 domain.
__device__ __forceinline__ void fold_split(float& M, float& L, float4& acc, float2 ml, float4 o) {
  const float mNew = fmaxf(M, ml.x);
  const float base2 = (mNew == NEG_INF) ? 0.f : mNew;  // both empty so far: keep zeros
  const float a = fast_exp2(M - base2), b = fast_exp2(ml.x - base2);
  M = mNew;
  L = fmaf(L, a, ml.y * b);
  acc.x = fmaf(acc.x, a, o.x * b);
  acc.y = fmaf(acc.y, a, o.y * b);
  acc.z = fmaf(acc.z, a, o.z * b);
  acc.w = fmaf(acc.w, a, o.w * b);
}

__device__ __forceinline__ void store_bf16x4(bf16_t* dst, float4 o, float inv) {
  u32* d = reinterpret_cast<u32*>(dst);
  d[0] = pack_bf16x2(o.x * inv, o.y * inv);
  d[1] = pack_bf16x2(o.z * inv, o.w * inv);
}

// v6 merge of NH query heads (h0, h0 + 1, ...) over `splits` partials into out, by a whole block of NT
// threads. Thread (slice, pair) owns float4 column `pair % COLS` of head h0 + pair / COLS and the
// splits slice, slice + SLICES, ...: it requests PREFETCH splits' outputs and (max, sum) pairs at a
// time and folds them online (one L2 round trip per batch, no barrier before the weights are known;
// the loads are volatile, so the compiler would not overlap batches), and the slices meet in shared
// memory. scratch: NT * 24 bytes of shared memory nothing else reads any more.
template <int NH, int NT>
__device__ __forceinline__ void merge_heads(const float* __restrict__ partO, const float* __restrict__ partML,
                                            bf16_t* __restrict__ out, int H, int splits, int h0, float* scratch) {
  constexpr int COLS = D / 4;
  constexpr int PAIRS = NH * COLS;
  constexpr int SLICES = NT >= 2 * PAIRS ? NT / PAIRS : 1;
  constexpr int PREFETCH = 8;
  const int tid = threadIdx.x;
  if (SLICES > 1) __syncthreads();  // a previous call's slice-0 threads may still read scratch
  for (int idx = tid; idx < SLICES * PAIRS; idx += NT) {
    const int slice = idx / PAIRS, pair = idx % PAIRS;
    const int h = h0 + pair / COLS, col = pair % COLS;
    float M = NEG_INF, L = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s0 = slice; s0 < splits; s0 += PREFETCH * SLICES) {
      float4 pre[PREFETCH];
      float2 preML[PREFETCH];
#pragma unroll
      for (int i = 0; i < PREFETCH; ++i) {
        const int s = s0 + i * SLICES;
        if (s < splits) {
          pre[i] = load_l2_f4(partO + ((size_t)s * H + h) * D + col * 4);
          preML[i] = load_l2_f2(partML + ((size_t)s * H + h) * 2);
        } else {
          pre[i] = make_float4(0.f, 0.f, 0.f, 0.f);
          preML[i] = make_float2(NEG_INF, 0.f);
        }
      }
#pragma unroll
      for (int i = 0; i < PREFETCH; ++i) fold_split(M, L, acc, preML[i], pre[i]);
    }
    if (SLICES == 1) {
      store_bf16x4(out + (size_t)h * D + col * 4, acc, 1.f / L);
    } else {  // SLICES > 1: every thread has at most one idx; slice 0 finishes after the barrier
      float* e = scratch + (slice * PAIRS + pair) * 6;
      e[0] = acc.x; e[1] = acc.y; e[2] = acc.z; e[3] = acc.w; e[4] = M; e[5] = L;
    }
  }
  if (SLICES > 1) {
    __syncthreads();
    for (int pair = tid; pair < PAIRS; pair += NT) {
      const float* own = scratch + pair * 6;
      float M = own[4], L = own[5];
      float4 acc = make_float4(own[0], own[1], own[2], own[3]);
#pragma unroll
      for (int j = 1; j < SLICES; ++j) {
        const float* e = scratch + (j * PAIRS + pair) * 6;
        fold_split(M, L, acc, make_float2(e[4], e[5]), make_float4(e[0], e[1], e[2], e[3]));
      }
      const int h = h0 + pair / COLS, col = pair % COLS;
      store_bf16x4(out + (size_t)h * D + col * 4, acc, 1.f / L);
    }
  }
}

__device__ __forceinline__ Vec8 load_stream(const bf16_t* p) {
  Vec8 v;
  // Read once: keep it out of L1.
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "l"(p));
  return v;
}

// This lane's slice of query heads h0 .. h0 + GROUP - 1, pre-scaled into the log2 domain.
__device__ __forceinline__ void load_group_query(const bf16_t* __restrict__ q, int h0, int sub, float scaleLog2, float (&qv)[GROUP][8]) {
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    const Vec8 raw = *reinterpret_cast<const Vec8*>(q + (size_t)(h0 + gh) * D + sub * 8);
    unpack8(raw, qv[gh]);
#pragma unroll
    for (int e = 0; e < 8; ++e) qv[gh][e] *= scaleLog2;
  }
}

// A split with no rows for these heads: weight 0 in the merge.
__device__ __forceinline__ void write_empty_partials(float* __restrict__ partO, float* __restrict__ partML, int split, int H, int h0) {
  const int tid = threadIdx.x;
  for (int i = tid; i < GROUP * D; i += THREADS) partO[((size_t)split * H + h0) * D + i] = 0.f;
  if (tid < GROUP) {
    partML[((size_t)split * H + h0 + tid) * 2] = NEG_INF;
    partML[((size_t)split * H + h0 + tid) * 2 + 1] = 0.f;
  }
}

// The block's `rows` rows, SLOTS · UNROLL per step: row r of a step goes to slot r % SLOTS. kr/vr hold
// the first step's rows, already requested; loadStep(base, k, v) requests the step starting at row
// base (zeros past `rows`), issued one step ahead of the math (register double buffering). Leaves each
// slot's running max m, exp-sum l and unnormalised output acc (log2 domain).
template <typename LoadStep>
__device__ __forceinline__ void stream_rows(int rows, int slot, const LoadStep& loadStep, Vec8 (&kr)[UNROLL], Vec8 (&vr)[UNROLL],
                                            const float (&qv)[GROUP][8], float (&m)[GROUP], float (&l)[GROUP], float (&acc)[GROUP][8]) {
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    m[gh] = NEG_INF;
    l[gh] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[gh][e] = 0.f;
  }

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
}

// Merges the block's slots (each rescaled to the block max, then summed, through the shared slot
// buffers) and writes the block's partial for heads h0 .. h0 + GROUP - 1 of split `split`.
__device__ __forceinline__ void write_block_partials(float (&slotO)[SLOTS][GROUP][D], float (&slotM)[SLOTS][GROUP], float (&slotL)[SLOTS][GROUP],
                                                     int slot, int sub, const float (&m)[GROUP], const float (&l)[GROUP],
                                                     const float (&acc)[GROUP][8], float* __restrict__ partO,
                                                     float* __restrict__ partML, int split, int H, int h0) {
  const int tid = threadIdx.x;
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
    const size_t row = (size_t)split * H + h0 + gh;
    partO[row * D + d] = o;
    if (d == 0) {
      partML[row * 2] = mx;
      partML[row * 2 + 1] = sum;
    }
  }
}
}  // namespace
