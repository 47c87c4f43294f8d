// Split-K decode attention pieces shared by decode-attention.cu (contiguous rows) and segment-decode.cu
// (rows from segment lists): 16-byte row loads, the per-slot online softmax over a block's rows with
// register double buffering, the merge of the block's slots into one partial (output, max, exp-sum;
// log2 domain), and the merge of the splits' partials into the output. The two kernels differ only in
// where a row comes from (their loadStep, or with the v7 ring their bulk-copy issue function).
//
// Include after common.cuh and after defining, at namespace scope: D (head dim), GROUP (query heads
// served per block), THREADS, LANES_PER_ROW (= D / 8), SLOTS (= THREADS / LANES_PER_ROW), UNROLL (rows
// per slot per step); and the macro SPLIT_K_RING (nonzero: the bulk-copy ring's pieces are compiled).
// SPLIT_K_GLOBAL_PARTIALS (default 1; 0 for decode_cluster, whose partials stay in shared memory) compiles
// the pieces that write and merge partials in global memory.
//
// Layouts: partO [splits, H, D] fp32, partML [splits, H, 2] fp32 (max, sum); a block of split s writes
// rows s·H + h0 .. s·H + h0 + GROUP - 1.
#ifndef SPLIT_K_GLOBAL_PARTIALS
#define SPLIT_K_GLOBAL_PARTIALS 1
#endif
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

#if SPLIT_K_GLOBAL_PARTIALS
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

#endif  // SPLIT_K_GLOBAL_PARTIALS

#if !SPLIT_K_RING  // the ring reads rows from shared memory
__device__ __forceinline__ Vec8 load_stream(const bf16_t* p) {
  Vec8 v;
  // Read once: keep it out of L1.
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "l"(p));
  return v;
}
#endif

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

#if SPLIT_K_GLOBAL_PARTIALS
// A split with no rows for these heads: weight 0 in the merge.
__device__ __forceinline__ void write_empty_partials(float* __restrict__ partO, float* __restrict__ partML, int split, int H, int h0) {
  const int tid = threadIdx.x;
  for (int i = tid; i < GROUP * D; i += THREADS) partO[((size_t)split * H + h0) * D + i] = 0.f;
  if (tid < GROUP) {
    partML[((size_t)split * H + h0 + tid) * 2] = NEG_INF;
    partML[((size_t)split * H + h0 + tid) * 2 + 1] = 0.f;
  }
}

#endif  // SPLIT_K_GLOBAL_PARTIALS

__device__ __forceinline__ void init_slot_state(float (&m)[GROUP], float (&l)[GROUP], float (&acc)[GROUP][8]) {
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    m[gh] = NEG_INF;
    l[gh] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[gh][e] = 0.f;
  }
}

// One step's math for this thread's slot: rows base + u·SLOTS + slot (u < UNROLL), whose 16-byte K and V
// slices are kr[u], vr[u] (rows >= `rows` are masked), folded into the slot's online softmax.
__device__ __forceinline__ void consume_step(int base, int rows, int slot, const Vec8 (&kr)[UNROLL], const Vec8 (&vr)[UNROLL],
                                             const float (&qv)[GROUP][8], float (&m)[GROUP], float (&l)[GROUP], float (&acc)[GROUP][8]) {
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
}

// The block's `rows` rows, SLOTS · UNROLL per step: row r of a step goes to slot r % SLOTS. kr/vr hold
// the first step's rows, already requested; loadStep(base, k, v) requests the step starting at row
// base (zeros past `rows`), issued one step ahead of the math (register double buffering). Leaves each
// slot's running max m, exp-sum l and unnormalised output acc (log2 domain).
template <typename LoadStep>
__device__ __forceinline__ void stream_rows(int rows, int slot, const LoadStep& loadStep, Vec8 (&kr)[UNROLL], Vec8 (&vr)[UNROLL],
                                            const float (&qv)[GROUP][8], float (&m)[GROUP], float (&l)[GROUP], float (&acc)[GROUP][8]) {
  init_slot_state(m, l, acc);
  for (int base = 0; base < rows; base += SLOTS * UNROLL) {
    Vec8 kn[UNROLL], vn[UNROLL];
    loadStep(base + SLOTS * UNROLL, kn, vn);  // rows past the chunk load nothing
    consume_step(base, rows, slot, kr, vr, qv, m, l, acc);
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      kr[u] = kn[u];
      vr[u] = vn[u];
    }
  }
}

#if SPLIT_K_RING
// ---- v7: a ring of shared-memory stages filled by Hopper bulk copies (cp.async.bulk, 1-D, no tensor
// map). Thread 0 requests a whole step's K and V rows (STEP rows = SLOTS · UNROLL, 16 KB at 256 threads
// x 2) with a few copy instructions; each stage completes on its own mbarrier ("full", transaction
// bytes), and every warp reports on a second one ("empty") when it has read the stage, after which
// thread 0 refills it with the step STAGES ahead. So a block keeps up to STAGES steps in flight from its
// first instant, with no registers held for them.
//
// Stage layout: [STEP][D] bf16 of K, then [STEP][D] of V, rows in the block's logical order.
struct RingShape {
  static constexpr int STEP = SLOTS * UNROLL;           // rows per stage
  static constexpr int STAGE_BYTES = STEP * D * 2 * 2;  // K and V of those rows
  static constexpr int WARPS = THREADS / 32;            // arrivals that free a stage
};

__device__ __forceinline__ void mbar_init(u32 bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// Makes barrier initialisation visible to the copy engine (async proxy) and the other threads.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  asm volatile(
      "{\n\t.reg .pred done;\n"
      "RING_WAIT:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n\t"
      "@!done bra RING_WAIT;\n\t}" ::"r"(bar), "r"(parity) : "memory");
}
// bytes (a multiple of 16) from global src (16-byte aligned) to shared dst, completing on bar.
__device__ __forceinline__ void bulk_copy_g2s(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// The ring's barriers: full[STAGES] then empty[STAGES], 8 bytes each, in static shared memory.
template <int STAGES>
struct RingBarriers {
  unsigned long long full[STAGES];
  unsigned long long empty[STAGES];
};

// Thread 0 only: initialises the barriers and requests the first min(STAGES, steps) steps.
// issue(step, kDst, vDst, bar) requests the step's rows (K to kDst, V to vDst, shared addresses) with
// bulk copies completing on bar, after announcing their bytes with mbar_arrive_expect_tx.
template <int STAGES, typename Issue>
__device__ __forceinline__ void ring_start(RingBarriers<STAGES>& bars, u32 ring, int rows, const Issue& issue) {
#pragma unroll
  for (int s = 0; s < STAGES; ++s) {
    mbar_init(smem_addr(&bars.full[s]), 1);
    mbar_init(smem_addr(&bars.empty[s]), RingShape::WARPS);
  }
  mbar_init_fence();
  const int steps = (rows + RingShape::STEP - 1) / RingShape::STEP;
  for (int s = 0; s < STAGES && s < steps; ++s) {
    const u32 k = ring + s * RingShape::STAGE_BYTES;
    issue(s, k, k + RingShape::STEP * D * 2, smem_addr(&bars.full[s]));
  }
}

// The ring's consumer loop (every thread; the barriers initialised and a __syncthreads passed since
// ring_start): the same per-slot online softmax as stream_rows, rows read from the stages.
template <int STAGES, typename Issue>
__device__ __forceinline__ void stream_rows_ring(int rows, int slot, int sub, RingBarriers<STAGES>& bars, const bf16_t* ringPtr, u32 ring,
                                                 const Issue& issue, const float (&qv)[GROUP][8], float (&m)[GROUP], float (&l)[GROUP],
                                                 float (&acc)[GROUP][8]) {
  init_slot_state(m, l, acc);
  const int steps = (rows + RingShape::STEP - 1) / RingShape::STEP;
  const int tid = threadIdx.x;
  for (int i = 0; i < steps; ++i) {
    // Refill the stage the previous step used with the step STAGES after it, once every warp has read it.
    if (tid == 0 && i > 0 && i - 1 + STAGES < steps) {
      const int s = (i - 1) % STAGES;
      mbar_wait(smem_addr(&bars.empty[s]), ((i - 1) / STAGES) & 1);
      const u32 k = ring + s * RingShape::STAGE_BYTES;
      issue(i - 1 + STAGES, k, k + RingShape::STEP * D * 2, smem_addr(&bars.full[s]));
    }
    const int s = i % STAGES;
    mbar_wait(smem_addr(&bars.full[s]), (i / STAGES) & 1);
    const bf16_t* kS = ringPtr + (size_t)s * (RingShape::STAGE_BYTES / 2) + sub * 8;
    const bf16_t* vS = kS + RingShape::STEP * D;
    const int base = i * RingShape::STEP;
    Vec8 kr[UNROLL], vr[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int local = u * SLOTS + slot;
      if (base + local < rows) {  // the rest of a last, partial stage holds older rows
        kr[u] = *reinterpret_cast<const Vec8*>(kS + local * D);
        vr[u] = *reinterpret_cast<const Vec8*>(vS + local * D);
      } else {
        kr[u] = Vec8{{0u, 0u, 0u, 0u}};
        vr[u] = Vec8{{0u, 0u, 0u, 0u}};
      }
    }
    __syncwarp();
    if ((tid & 31) == 0) mbar_arrive(smem_addr(&bars.empty[s]));
    consume_step(base, rows, slot, kr, vr, qv, m, l, acc);
  }
}

#endif  // SPLIT_K_RING

// Merges the block's slots (each rescaled to the block max, then summed, through the shared slot
// buffers) and hands each element of the block's partial to sink(gh, d, o, max, sum): o is element d of
// query head gh's unnormalised output, max and sum that head's (log2 domain). Every thread calls it.
template <typename Sink>
__device__ __forceinline__ void fold_block_slots(float (&slotO)[SLOTS][GROUP][D], float (&slotM)[SLOTS][GROUP], float (&slotL)[SLOTS][GROUP],
                                                 int slot, int sub, const float (&m)[GROUP], const float (&l)[GROUP],
                                                 const float (&acc)[GROUP][8], const Sink& sink) {
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
    sink(gh, d, o, mx, sum);
  }
}

#if SPLIT_K_GLOBAL_PARTIALS
// The block's partial for heads h0 .. h0 + GROUP - 1 of split `split`, written to partO / partML.
__device__ __forceinline__ void write_block_partials(float (&slotO)[SLOTS][GROUP][D], float (&slotM)[SLOTS][GROUP], float (&slotL)[SLOTS][GROUP],
                                                     int slot, int sub, const float (&m)[GROUP], const float (&l)[GROUP],
                                                     const float (&acc)[GROUP][8], float* __restrict__ partO,
                                                     float* __restrict__ partML, int split, int H, int h0) {
  fold_block_slots(slotO, slotM, slotL, slot, sub, m, l, acc, [&](int gh, int d, float o, float mx, float sum) {
    const size_t row = (size_t)split * H + h0 + gh;
    partO[row * D + d] = o;
    if (d == 0) {
      partML[row * 2] = mx;
      partML[row * 2 + 1] = sum;
    }
  });
}
#endif  // SPLIT_K_GLOBAL_PARTIALS
}  // namespace
