// Decode attention (one new token) over per-unit lists of row segments, split-K over the rows read:
//   segment_decode_partial: block (split s, unit u) streams its share of the unit's rows once, K and V
//                   of a row loaded together, for the GROUP query heads of the unit; each row slot
//                   (D/8 lanes of 16 bytes) keeps an online softmax over its rows, the slots merge in
//                   shared memory and the block writes one partial (output, max, exp-sum; log2 domain).
//   segment_decode_combine: block (query head h) merges the splits' partials into out[h].
// The structure is decode-attention.cu's (v3: register double buffering); what differs is where a row
// comes from. A unit reads "logical" rows 0, 1, ...: first those of its segment list, then a tail
// segment common to all units (kernel arguments: Quest's current page, the decode tokens after an
// evicted prompt, sink+local's window). Each thread walks its rows in increasing logical order and
// keeps a cursor into the list, so a row costs a compare or two, not a search.
//
// Units: unit u serves query heads [u·GROUP, (u+1)·GROUP) and reads KV head u / kvDiv. A GQA group
// sharing one selection: GROUP = H / Hkv, kvDiv = 1. One selection per query head: GROUP = 1,
// kvDiv = H / Hkv.
//
// Layouts:
//   q      : [H, D] bf16                 out : [H, D] bf16
//   k, v   : [Hkv, kvStride, D] bf16
//   segs   : int32 [units, segStride]: a header (count c, list rows L, uniform length u, unused),
//            then c pairs (first row, first logical row); segment i covers logical rows
//            [begin_i, begin_{i+1}) (begin_c = L) at rows first_i + (logical - begin_i). Empty
//            segments are allowed. u > 0 promises every segment is u rows long (Quest's pages, one
//            evicted prefix): then logical row r lies in segment r / u, and a block stages the first
//            rows of the segments it reads in shared memory, so a row's address costs one shared load
//            (v2; v1 walked the list per row with dependent global loads, 1.4x slower at equal bytes).
//   partO  : [splits, H, D] fp32          partML : [splits, H, 2] fp32 (max, sum), log2 domain
// Split s covers logical rows [s·chunk, min(L + tailRows, (s + 1)·chunk)) of each unit.
//
// v3: 256 threads x 2 rows per slot where the slot buffers fit (more warps, fewer registers each),
// the first rows requested before the query's own loads, a row's segment found by a shift for
// power-of-two lengths (pages) and not at all for a single segment (an evicted prefix) instead of a
// division per row, and a combine that requests its partials before the split weights are known.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), GROUP (1..8), SEG_THREADS (128 or 256),
// SEG_UNROLL (rows per slot per step, 2 or 4).
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GROUP
#define GROUP 4
#endif
#ifndef SEG_THREADS
#define SEG_THREADS 128
#endif
#ifndef SEG_UNROLL
#define SEG_UNROLL 4
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int THREADS = SEG_THREADS;
constexpr int LANES_PER_ROW = D / 8;
constexpr int SLOTS = THREADS / LANES_PER_ROW;
constexpr int UNROLL = SEG_UNROLL;
constexpr int HEADER = 4;          // int32 words before a unit's pairs
constexpr int STAGED_SEGMENTS = 512;  // segments a block stages (uniform lists)
constexpr int COMBINE_THREADS = 256;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(GROUP >= 1 && GROUP <= 8, "GROUP must be 1..8");
static_assert(THREADS == 128 || THREADS == 256, "SEG_THREADS must be 128 or 256");
static_assert(UNROLL == 2 || UNROLL == 4, "SEG_UNROLL must be 2 or 4");
static_assert(SLOTS * GROUP * D * 4 + STAGED_SEGMENTS * 4 <= 46 * 1024, "slot buffers exceed static shared memory: use 128 threads");

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
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.w[0]), "=r"(v.w[1]), "=r"(v.w[2]), "=r"(v.w[3]) : "l"(p));
  return v;
}

// A thread's walk through one unit's segment list, in increasing logical rows.
struct SegmentCursor {
  const int* list;  // the unit's pairs: list[2i] = first row, list[2i + 1] = first logical row
  int count;
  int listRows;
  int tailStart;
  int cur;

  __device__ __forceinline__ int begin(int i) const { return i < count ? __ldg(list + 2 * i + 1) : listRows; }

  // Positions the cursor at the segment holding logical row r (r < listRows): the last i with begin_i <= r.
  __device__ __forceinline__ void seek(int r) {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (__ldg(list + 2 * mid + 1) <= r) lo = mid; else hi = mid - 1;
    }
    cur = lo;
  }

  // Cache row of logical row r; r never decreases between calls.
  __device__ __forceinline__ int row(int r) {
    if (r >= listRows) return tailStart + (r - listRows);
    while (begin(cur + 1) <= r) ++cur;
    return __ldg(list + 2 * cur) + (r - __ldg(list + 2 * cur + 1));
  }
};

// Rows of a uniform list: the block's segments' first rows in shared memory (staged), else global.
struct UniformRows {
  const int* list;
  const int* staged;  // nullptr: not staged
  int length;         // u
  int shift;          // log2(u) when u is a power of two, else -1
  int firstSegment;   // segment of staged[0]
  int listRows;
  int tailStart;
  int single;         // one segment: its first row, else -1

  __device__ __forceinline__ int row(int r) const {
    if (r >= listRows) return tailStart + (r - listRows);
    if (single >= 0) return single + r;
    int seg, off;
    if (shift >= 0) {
      seg = r >> shift;
      off = r & (length - 1);
    } else {
      seg = r / length;
      off = r - seg * length;
    }
    const int first = staged ? staged[seg - firstSegment] : __ldg(list + 2 * seg);
    return first + off;
  }
};
}  // namespace

// 256-thread blocks are held to 128 registers so that two fit a multiprocessor (16 warps).
extern "C" __global__ void __launch_bounds__(THREADS, THREADS == 256 ? 2 : 1) segment_decode_partial(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    float* __restrict__ partO, float* __restrict__ partML, const int* __restrict__ segs, int segStride,
    int H, int kvDiv, int kvStride, int tailStart, int tailRows, int chunk, float scaleLog2) {
  __shared__ float slotO[SLOTS][GROUP][D];
  __shared__ float slotM[SLOTS][GROUP];
  __shared__ float slotL[SLOTS][GROUP];
  __shared__ int stagedFirst[STAGED_SEGMENTS];

  const int split = blockIdx.x;
  const int unit = blockIdx.y;
  const int hk = unit / kvDiv;
  const int h0 = unit * GROUP;
  const int tid = threadIdx.x;
  const int sub = tid % LANES_PER_ROW;
  const int slot = tid / LANES_PER_ROW;
  const int* unitSegs = segs + (size_t)unit * segStride;
  const int count = __ldg(unitSegs);
  const int listRows = __ldg(unitSegs + 1);
  const int uniform = __ldg(unitSegs + 2);
  const int rowBase = split * chunk;
  const int rows = min(chunk, listRows + tailRows - rowBase);
  if (rows <= 0) {  // a unit reading fewer rows than the longest: this split is empty
    for (int i = tid; i < GROUP * D; i += THREADS) partO[((size_t)split * H + h0) * D + i] = 0.f;
    if (tid < GROUP) {
      partML[((size_t)split * H + h0 + tid) * 2] = NEG_INF;
      partML[((size_t)split * H + h0 + tid) * 2 + 1] = 0.f;
    }
    return;
  }

  SegmentCursor cursor{unitSegs + HEADER, count, listRows, tailStart, 0};
  UniformRows pages{unitSegs + HEADER, nullptr, uniform, (uniform & (uniform - 1)) == 0 ? __ffs(uniform) - 1 : -1, 0, listRows, tailStart, -1};
  if (uniform > 0 && count == 1) {
    pages.single = __ldg(unitSegs + HEADER);
  } else if (uniform > 0) {
    // Block-uniform branch: stage the first rows of segments [first, last] this block reads.
    if (rowBase < listRows) {
      const int first = rowBase / uniform;
      const int last = (min(listRows, rowBase + rows) - 1) / uniform;
      if (last - first < STAGED_SEGMENTS) {
        for (int i = tid; i <= last - first; i += THREADS) stagedFirst[i] = __ldg(unitSegs + HEADER + 2 * (first + i));
        pages.staged = stagedFirst;
        pages.firstSegment = first;
      }
    }
    __syncthreads();
  } else if (rowBase + slot < listRows) {
    cursor.seek(rowBase + slot);
  }

  const bf16_t* kHead = k + (size_t)hk * kvStride * D + sub * 8;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D + sub * 8;

  Vec8 kr[UNROLL], vr[UNROLL];
  auto loadStep = [&](int base, Vec8* kd, Vec8* vd) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * SLOTS + slot;
      if (r < rows) {
        const size_t row = (size_t)(uniform > 0 ? pages.row(rowBase + r) : cursor.row(rowBase + r)) * D;
        kd[u] = load_stream(kHead + row);
        vd[u] = load_stream(vHead + row);
      } else {
        kd[u] = Vec8{{0u, 0u, 0u, 0u}};
        vd[u] = Vec8{{0u, 0u, 0u, 0u}};
      }
    }
  };
  loadStep(0, kr, vr);  // the first rows in flight before the query's own loads
  float qv[GROUP][8];
#pragma unroll
  for (int gh = 0; gh < GROUP; ++gh) {
    const Vec8 raw = *reinterpret_cast<const Vec8*>(q + (size_t)(h0 + gh) * D + sub * 8);
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

  for (int base = 0; base < rows; base += SLOTS * UNROLL) {
    Vec8 kn[UNROLL], vn[UNROLL];
    loadStep(base + SLOTS * UNROLL, kn, vn);
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
      const float base2 = (mNew == NEG_INF) ? 0.f : mNew;
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

// grid (H), block (COMBINE_THREADS), dynamic shared memory splits · 4 bytes: merges the partials of
// query head h. Thread (slice, col) owns float4 column col of the output and splits slice,
// slice + SLICES, ...; its first PREFETCH partials are requested before the split weights are known,
// so the merge waits on about one round of L2 latency; the slices' sums meet in shared memory.
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) segment_decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  constexpr int COLS = D / 4;
  constexpr int SLICES = COMBINE_THREADS / COLS;
  constexpr int PREFETCH = 8;
  constexpr int WARPS = COMBINE_THREADS / 32;
  extern __shared__ float weight[];  // [splits]
  __shared__ float red[WARPS];
  __shared__ float4 sliceSum[SLICES][COLS];
  const int h = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int slice = tid / COLS, col = tid % COLS;

  float4 pre[PREFETCH];
#pragma unroll
  for (int i = 0; i < PREFETCH; ++i) {
    const int s = slice + i * SLICES;
    pre[i] = s < splits ? reinterpret_cast<const float4*>(partO + ((size_t)s * H + h) * D)[col] : make_float4(0.f, 0.f, 0.f, 0.f);
  }

  float m = NEG_INF;
  for (int s = tid; s < splits; s += COMBINE_THREADS) m = fmaxf(m, partML[((size_t)s * H + h) * 2]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = red[0];
#pragma unroll
  for (int w = 1; w < WARPS; ++w) m = fmaxf(m, red[w]);
  __syncthreads();

  float total = 0.f;
  for (int s = tid; s < splits; s += COMBINE_THREADS) {
    const float* ml = partML + ((size_t)s * H + h) * 2;
    const float w = ml[0] == NEG_INF ? 0.f : fast_exp2(ml[0] - m);
    weight[s] = w;
    total = fmaf(w, ml[1], total);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
  if (lane == 0) red[warp] = total;
  __syncthreads();
  total = 0.f;
#pragma unroll
  for (int w = 0; w < WARPS; ++w) total += red[w];

  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int i = 0; i < PREFETCH; ++i) {
    const int s = slice + i * SLICES;
    const float w = s < splits ? weight[s] : 0.f;
    acc.x = fmaf(w, pre[i].x, acc.x);
    acc.y = fmaf(w, pre[i].y, acc.y);
    acc.z = fmaf(w, pre[i].z, acc.z);
    acc.w = fmaf(w, pre[i].w, acc.w);
  }
  for (int s = slice + PREFETCH * SLICES; s < splits; s += SLICES) {
    const float4 p = reinterpret_cast<const float4*>(partO + ((size_t)s * H + h) * D)[col];
    const float w = weight[s];
    acc.x = fmaf(w, p.x, acc.x);
    acc.y = fmaf(w, p.y, acc.y);
    acc.z = fmaf(w, p.z, acc.z);
    acc.w = fmaf(w, p.w, acc.w);
  }
  sliceSum[slice][col] = acc;
  __syncthreads();
  if (slice == 0) {
    float4 o = acc;
#pragma unroll
    for (int j = 1; j < SLICES; ++j) {
      const float4 p = sliceSum[j][col];
      o.x += p.x;
      o.y += p.y;
      o.z += p.z;
      o.w += p.w;
    }
    const float inv = 1.f / total;
    u32* dst = reinterpret_cast<u32*>(out + (size_t)h * D + col * 4);
    dst[0] = pack_bf16x2(o.x * inv, o.y * inv);
    dst[1] = pack_bf16x2(o.z * inv, o.w * inv);
  }
}
