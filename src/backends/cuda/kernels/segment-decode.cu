// Decode attention (one new token) over per-unit lists of row segments, split-K over the rows read:
//   segment_decode_partial: block (split s, unit u) streams its share of the unit's rows once, K and V
//                   of a row loaded together, for the GROUP query heads of the unit; each row slot
//                   (D/8 lanes of 16 bytes) keeps an online softmax over its rows, the slots merge in
//                   shared memory and the block writes one partial (output, max, exp-sum; log2 domain).
//   segment_decode_combine: block (query head h) merges the splits' partials into out[h].
// The row streaming, the slot merge and the split merge are decode-attention.cu's, shared through
// split-k-decode.cuh; what differs is where a row comes from. A unit reads "logical" rows 0, 1, ...: first those of its segment list, then a tail
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
// v5: SEG_STAGES > 0 brings the rows in through split-k-decode.cuh's bulk-copy ring (thread 0 issues
// one copy of K and one of V per run of consecutive cache rows into shared-memory stages); the launcher
// takes it for chunks of 4+ loop steps (90% of copy against 82% at 128K s = 0.5) and keeps the register
// path for shorter ones, where there is nothing to pipeline.
//
// Device tail (SEG_DEVICE_TAIL=1, issue 9): for decode steps replayed from one captured CUDA graph the
// tail and the chunk come from device memory. The kernel takes four more arguments (position, tailStarts,
// maxListRows, targetSplits) and ignores its tailRows and chunk: with p = *position (the new token's
// row), the tail is [tailStart, p] where tailStart = tailStarts[p] when tailStarts is given (a per-position
// rule, sink+local's sliding window), else the tailStart argument (SnapKV's prompt end); the chunk is
// the launcher's planSegmentDecode for maxListRows + tail rows over targetSplits, so the splits are the
// eager launch's and the grid (fixed at capture, the most splits of any step) only adds empty ones.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), GROUP (1..8), SEG_THREADS (128 or 256),
// SEG_UNROLL (rows per slot per step, 2 or 4), SEG_STAGES (0, or 2..8 ring stages), SEG_DEVICE_TAIL (0 or 1).
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
#ifndef SEG_STAGES
#define SEG_STAGES 0
#endif
#ifndef SEG_DEVICE_TAIL
#define SEG_DEVICE_TAIL 0
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
constexpr int STAGES = SEG_STAGES;  // v5: bulk-copy ring depth (0: register double buffering)
static_assert(STAGES == 0 || (STAGES >= 2 && STAGES <= 8), "SEG_STAGES must be 0 or 2..8");
static_assert(STAGES > 0 || SLOTS * GROUP * D * 4 + STAGED_SEGMENTS * 4 <= 46 * 1024, "slot buffers exceed static shared memory: use 128 threads");

}  // namespace

#define SPLIT_K_RING SEG_STAGES
#include "split-k-decode.cuh"

namespace {
#if SEG_DEVICE_TAIL
// The tail start read on the device, kept in shared memory and re-read where a tail row is addressed:
// a register live across the row loop spilled the 256-thread register path at d = 128 (128 registers).
__shared__ int deviceTailStart;
#define TAIL_START (*reinterpret_cast<volatile int*>(&deviceTailStart))
#else
#define TAIL_START tailStart
#endif

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
    if (r >= listRows) return TAIL_START + (r - listRows);
    while (begin(cur + 1) <= r) ++cur;
    return __ldg(list + 2 * cur) + (r - __ldg(list + 2 * cur + 1));
  }

#if SEG_STAGES
  // The same, and in `run` how many of the logical rows r, r + 1, ... (at most maxRun) follow it in the cache.
  __device__ __forceinline__ int rowRun(int r, int maxRun, int& run) {
    const int first = row(r);
    run = r >= listRows ? maxRun : min(maxRun, begin(cur + 1) - r);
    return first;
  }
#endif
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
    if (r >= listRows) return TAIL_START + (r - listRows);
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

#if SEG_STAGES
  // The same, and in `run` how many of the logical rows r, r + 1, ... (at most maxRun) follow it in the cache.
  __device__ __forceinline__ int rowRun(int r, int maxRun, int& run) const {
    if (r >= listRows) {
      run = maxRun;
      return TAIL_START + (r - listRows);
    }
    const int inSegment = single >= 0 ? listRows - r : length - (shift >= 0 ? (r & (length - 1)) : r % length);
    run = min(maxRun, inSegment);
    return row(r);
  }
#endif
};
}  // namespace

// 256-thread blocks are held to 128 registers so that two fit a multiprocessor (16 warps). With
// SEG_STAGES the block needs max(STAGES · RingShape::STAGE_BYTES, slot buffers) bytes of dynamic shared
// memory: the slot buffers reuse the ring once every row is read.
extern "C" __global__ void __launch_bounds__(THREADS, THREADS == 256 ? 2 : 1) segment_decode_partial(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    float* __restrict__ partO, float* __restrict__ partML, const int* __restrict__ segs, int segStride,
    int H, int kvDiv, int kvStride, int tailStart, int tailRows, int chunk, float scaleLog2
#if SEG_DEVICE_TAIL
    , const int* __restrict__ position, const int* __restrict__ tailStarts, int maxListRows, int targetSplits
#endif
    ) {
#if SEG_STAGES
  extern __shared__ __align__(128) unsigned char ringBytes[];
  __shared__ RingBarriers<STAGES> bars;
  auto& slotO = *reinterpret_cast<float(*)[SLOTS][GROUP][D]>(ringBytes);
  auto& slotM = *reinterpret_cast<float(*)[SLOTS][GROUP]>(ringBytes + sizeof(float) * SLOTS * GROUP * D);
  auto& slotL = *reinterpret_cast<float(*)[SLOTS][GROUP]>(ringBytes + sizeof(float) * SLOTS * GROUP * (D + 1));
#else
  __shared__ float slotO[SLOTS][GROUP][D];
  __shared__ float slotM[SLOTS][GROUP];
  __shared__ float slotL[SLOTS][GROUP];
#endif
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
#if SEG_DEVICE_TAIL
  {
    constexpr int STEP_ROWS = SLOTS * UNROLL;  // segmentRowsPerStep on the host
    const int p = *position;
    if (tailStarts) tailStart = tailStarts[p];
    if (threadIdx.x == 0) deviceTailStart = tailStart;
    __syncthreads();
    tailRows = p + 1 - tailStart;
    const int maxRows = maxListRows + tailRows;
    chunk = max(STEP_ROWS, ((maxRows + targetSplits - 1) / targetSplits + STEP_ROWS - 1) / STEP_ROWS * STEP_ROWS);
  }
#endif
  const int rowBase = split * chunk;
  const int rows = min(chunk, listRows + tailRows - rowBase);
  if (rows <= 0) {  // a unit reading fewer rows than the longest: this split is empty
    write_empty_partials(partO, partML, split, H, h0);
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
  } else if (STAGES > 0 ? (tid == 0 && rowBase < listRows) : (rowBase + slot < listRows)) {
    cursor.seek(STAGES > 0 ? rowBase : rowBase + slot);  // with the ring, thread 0 alone walks the list
  }

  const bf16_t* kHead = k + (size_t)hk * kvStride * D;
  const bf16_t* vHead = v + (size_t)hk * kvStride * D;
  float qv[GROUP][8];
  float m[GROUP], l[GROUP], acc[GROUP][8];

#if SEG_STAGES
  // v5: thread 0 requests each step's rows into the ring, one bulk copy of K and one of V per run of
  // consecutive cache rows (a Quest page: 16 rows, 4 KB each at d = 128).
  auto issue = [&](int step, u32 kDst, u32 vDst, u32 bar) {
    const int first = step * RingShape::STEP;
    const int end = min(first + RingShape::STEP, rows);
    mbar_arrive_expect_tx(bar, (u32)(end - first) * D * 4);
    for (int r = first; r < end;) {
      int run;
      const int row = uniform > 0 ? pages.rowRun(rowBase + r, end - r, run) : cursor.rowRun(rowBase + r, end - r, run);
      const u32 offset = (u32)(r - first) * D * 2, bytes = (u32)run * D * 2;
      bulk_copy_g2s(kDst + offset, kHead + (size_t)row * D, bytes, bar);
      bulk_copy_g2s(vDst + offset, vHead + (size_t)row * D, bytes, bar);
      r += run;
    }
  };
  const u32 ring = smem_addr(ringBytes);
  if (tid == 0) ring_start<STAGES>(bars, ring, rows, issue);  // the first rows in flight before the query's loads
  load_group_query(q, h0, sub, scaleLog2, qv);
  __syncthreads();  // the barriers are initialised
  stream_rows_ring<STAGES>(rows, slot, sub, bars, reinterpret_cast<const bf16_t*>(ringBytes), ring, issue, qv, m, l, acc);
  __syncthreads();  // every thread has read its last stage: the slot buffers may overwrite the ring
#else
  Vec8 kr[UNROLL], vr[UNROLL];
  auto loadStep = [&](int base, Vec8* kd, Vec8* vd) {
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int r = base + u * SLOTS + slot;
      if (r < rows) {
        const size_t row = (size_t)(uniform > 0 ? pages.row(rowBase + r) : cursor.row(rowBase + r)) * D;
        kd[u] = load_stream(kHead + sub * 8 + row);
        vd[u] = load_stream(vHead + sub * 8 + row);
      } else {
        kd[u] = Vec8{{0u, 0u, 0u, 0u}};
        vd[u] = Vec8{{0u, 0u, 0u, 0u}};
      }
    }
  };
  loadStep(0, kr, vr);  // the first rows in flight before the query's own loads
  load_group_query(q, h0, sub, scaleLog2, qv);
  stream_rows(rows, slot, loadStep, kr, vr, qv, m, l, acc);
#endif
  write_block_partials(slotO, slotM, slotL, slot, sub, m, l, acc, partO, partML, split, H, h0);
}

// grid (H), block (COMBINE_THREADS), no dynamic shared memory: merges the partials of query head h
// into out[h] (decode-attention.cu's v6 'fold' merge: each thread folds its splits online, one L2 round
// trip per batch of splits).
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) segment_decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  __shared__ float scratch[COMBINE_THREADS * 6];
  merge_heads<1, COMBINE_THREADS>(partO, partML, out, H, splits, blockIdx.x, scratch);
}
