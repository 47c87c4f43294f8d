// Decode attention over a KV cache (one new token), split-K over the context:
//   decode_partial: block (split s, KV head hk) streams its chunk of rows once, K and V of a row loaded
//                   together, and serves all GROUP query heads of the KV head (the GQA group). Each
//                   row slot (D/8 lanes, 16 bytes each) keeps an online softmax (running max, sum and
//                   unnormalised output) over its rows; the slots merge in shared memory at the end
//                   and the block writes one partial output with its max and exp-sum (log2 domain).
//   decode_combine: block (query head h) merges the splits' partials into the final [H, D] output.
//   decode_combine_fold (v6, the launcher's default): the same merge with every thread folding its
//                   splits' (max, sum, output) online, one L2 round trip and one barrier.
// v3 adds register double buffering (the next step's rows are in flight during this step's math) and
// a combine whose loads are independent. v1 (docs/perf.md) made three passes (scores, softmax, P·V) with barriers between them and read V
// only after all of K: each block waited for memory twice as often, with half the bytes in flight.
// v5: the combine may be launched as a programmatic dependent of the partial grid (its blocks start
// while the partials finish and wait on griddepcontrol.wait), and it spreads the splits over the block (every partial it needs is requested before the
// first barrier, one L2 round trip instead of a serial walk over the splits), and the row count can
// come from device memory (lenDev) so that one captured graph serves every step of a decode: the
// launch then fixes only the split count, and each block derives the chunk from the length it reads.
//
// Layouts:
//   q     : [H, D] bf16                 out : [H, D] bf16
//   k, v  : [Hkv, kvStride, D] bf16     rows [0, len(hk)) valid (per-KV-head contiguous rows), where
//                                       len(hk) = headLen[hk] when headLen is given (heads evicted to
//                                       different lengths, Ada-SnapKV), else kvLen; each len >= 1
//   partO : [splits, H, D] fp32          partML : [splits, H, 2] fp32 (max, sum), log2 domain
// kvLen = *lenDev + lenOffset when lenDev is given (graph replay: the new token's position + 1), else
// the kvLen argument. A sliding window keeps rows [skip, kvLen) with skip = max(0, kvLen - window)
// (window = 2^30: none). Query head h reads KV head h / GROUP. Split s covers rows
// [skip + s * chunk, skip + min(len(hk), (s + 1) * chunk)) of the windowed rows, where chunk is the
// argument, or with lenDev the smallest multiple of a loop step that covers kvLen in gridDim.x splits.
//
// v6 (DECODE_FUSED=1 or 2): one launch. Each partial block, after writing its partial, takes a ticket
// from a per-KV-head counter (__threadfence before it, so its partials are visible first); the block
// that draws the last ticket (1), or each of the last GROUP (2), merges the partials of every split into
// `out`, and the counters are reset for the next launch (a captured graph replays the same counters).
// No combine kernel. Measured (docs/perf.md, decode v6): 1-2.5 us slower than the combine kernel in
// CUDA graphs at 8K-128K (faster only when each launch costs a host round trip).
//
// Codegen parameters (-D): HEAD_DIM (64, 128 or 256), GROUP (query heads per KV head, 1..8),
// DECODE_THREADS (threads per partial block, 128 or 256), DECODE_UNROLL (rows per slot per step, 2 or 4),
// DECODE_FUSED (0: partial + combine kernels; 1: the last block of each KV head merges its group;
// 2: the last GROUP blocks of each KV head merge one query head each), DECODE_STAGES (v7: 0, or 2..8
// shared-memory stages of the bulk-copy ring in split-k-decode.cuh that brings the rows in instead of
// register double buffering; measured slower than v6 at 8K and 32K, 0.3-0.9 points ahead at 128K, so
// not the launcher's default), DECODE_CLUSTER (v8: 0, or 2..16, a power of two: compile decode_cluster
// instead of the kernels above), DECODE_SUBSETS (v8: clusters per KV head, each serving GROUP of its
// query heads; GROUP is then the heads per block).
//
// v8 (DECODE_CLUSTER = C): one launch, no partials in global memory. decode_cluster runs as thread-block
// clusters of C blocks (Hopper; grid (C, Hkv · SUBSETS), cluster dims (C, 1, 1)), one cluster per KV head
// (or per subset of its query heads): block s streams split s of the context as decode_partial does and
// leaves its merged partial (output, max, sum) in its own shared memory; after a cluster barrier
// (release / acquire) block s merges elements [s · E / C, (s + 1) · E / C) of the GROUP · D outputs,
// reading every peer's partial through distributed shared memory (mapa + ld.shared::cluster), C lanes per
// element folding by shuffles; a second cluster barrier keeps each block's shared memory alive until
// its peers have read it. The slot buffers are dynamic shared memory (512 threads: 64 KB at GROUP 4).
// Measured (docs/perf.md, decode v8): slower than v6 everywhere. An H100 holds only 7 clusters of 16
// one-per-SM blocks at once, so Llama-8B's 8 KV heads run in two waves (8K 29.8 us against 16.5); even
// where the clusters fit one wave (7 KV heads, 112 SMs) 8K took 16.9 us against v6's 15.1.
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef GROUP
#define GROUP 4
#endif
#ifndef DECODE_THREADS
#define DECODE_THREADS 128
#endif
#ifndef DECODE_UNROLL
#define DECODE_UNROLL 4
#endif
#ifndef DECODE_FUSED
#define DECODE_FUSED 0
#endif
#ifndef DECODE_STAGES
#define DECODE_STAGES 0
#endif
#ifndef DECODE_CLUSTER
#define DECODE_CLUSTER 0
#endif
#ifndef DECODE_SUBSETS
#define DECODE_SUBSETS 1
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int THREADS = DECODE_THREADS;
constexpr int LANES_PER_ROW = D / 8;             // each lane holds 8 consecutive bf16 (16 bytes)
constexpr int SLOTS = THREADS / LANES_PER_ROW;   // rows in flight per step across the block
constexpr int UNROLL = DECODE_UNROLL;            // rows per slot per step (K and V: 2 x UNROLL loads)
constexpr int STEP_ROWS = SLOTS * UNROLL;
static_assert(D == 64 || D == 128 || D == 256, "HEAD_DIM must be 64, 128 or 256");
static_assert(GROUP >= 1 && GROUP <= 8, "GROUP must be 1..8");
static_assert(THREADS == 128 || THREADS == 256 || (DECODE_CLUSTER && THREADS == 512), "DECODE_THREADS must be 128 or 256 (512 with DECODE_CLUSTER)");
static_assert(UNROLL == 2 || UNROLL == 4, "DECODE_UNROLL must be 2 or 4");
constexpr int STAGES = DECODE_STAGES;  // v7: bulk-copy ring depth (0: register double buffering)
static_assert(STAGES == 0 || (STAGES >= 2 && STAGES <= 8), "DECODE_STAGES must be 0 or 2..8");
constexpr int CLUSTER = DECODE_CLUSTER;  // v8: blocks per cluster (= splits per KV head or subset)
constexpr int SUBSETS = DECODE_SUBSETS;
static_assert(CLUSTER == 0 || CLUSTER == 2 || CLUSTER == 4 || CLUSTER == 8 || CLUSTER == 16, "DECODE_CLUSTER must be 0, 2, 4, 8 or 16");
static_assert(SUBSETS >= 1 && SUBSETS <= 8, "DECODE_SUBSETS must be 1..8");
static_assert(CLUSTER == 0 || STAGES == 0, "DECODE_CLUSTER takes register double buffering (no DECODE_STAGES)");
}  // namespace

#define SPLIT_K_RING DECODE_STAGES
#define SPLIT_K_GLOBAL_PARTIALS (!DECODE_CLUSTER)
#include "split-k-decode.cuh"

#if !DECODE_STAGES  // the ring variants read rows from shared memory
namespace {
// One step's K and V rows of this slot from a contiguous chunk (row r at r·D): rows base + u·SLOTS +
// slot for u < UNROLL, zeros past `rows`. kRows and vRows point at row 0's 16-byte piece of this lane.
// The partial and cluster kernels' loadStep.
__device__ __forceinline__ void load_contiguous_step(const bf16_t* kRows, const bf16_t* vRows, int rows, int base, int slot,
                                                     Vec8* kd, Vec8* vd) {
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
}
}  // namespace
#endif

#if !DECODE_CLUSTER
namespace {
constexpr int COMBINE_THREADS = 256;

#if DECODE_FUSED

#if DECODE_FUSED == 2
__device__ __forceinline__ int load_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
#endif

// v6: called by every thread of a partial block after its partial is written; counters: [Hkv, 2]
// int32 (tickets, finished mergers), zero between launches.
//   DECODE_FUSED 1: the block that draws the last ticket of KV head hk merges all GROUP heads.
//   DECODE_FUSED 2: the blocks that draw the last M = min(GROUP, splits) tickets each merge every M-th
//                   head (one head each when splits >= GROUP), waiting until the last ticket is drawn;
//                   the last merger to finish resets both counters. Waiting is safe only when every
//                   block of the grid is resident at once (the launcher checks: at most one wave).
__device__ __forceinline__ void merge_if_last(const float* __restrict__ partO, const float* __restrict__ partML,
                                              bf16_t* __restrict__ out, int* __restrict__ counters, int H, int hk,
                                              float* scratch) {
  __shared__ int ticketShared;
  const int tid = threadIdx.x;
  const int splits = gridDim.x;
  int* tickets = counters + 2 * hk;
  // The grid-barrier pattern of cooperative groups: the block's stores are ordered before thread 0's
  // fence by the barrier, and the fence (cumulative) publishes them before the ticket. (The first v6
  // run fenced in every thread: 2.2-2.5 us slower than v5 at 8K.)
  __syncthreads();
  if (tid == 0) {
    __threadfence();
    ticketShared = atomicAdd(tickets, 1);
  }
  __syncthreads();
  const int ticket = ticketShared;
#if DECODE_FUSED == 1
  if (ticket != splits - 1) return;
  if (tid == 0) {
    *tickets = 0;     // every block of this launch has counted; ready for the next launch
    __threadfence();  // acquire: the partial reads below come after the ticket (the barrier passes it on)
  }
  __syncthreads();
  merge_heads<GROUP, THREADS>(partO, partML, out, H, splits, hk * GROUP, scratch);
#else
  const int mergers = min(GROUP, splits);
  const int role = ticket - (splits - mergers);
  if (role < 0) return;
  if (tid == 0) {
    if (ticket != splits - 1) {
      while (load_acquire(tickets) < splits) asm volatile("nanosleep.u32 32;");
    }
    __threadfence();  // acquire: the partial reads below come after every ticket
  }
  __syncthreads();
  for (int gh = role; gh < GROUP; gh += mergers) merge_heads<1, THREADS>(partO, partML, out, H, splits, hk * GROUP + gh, scratch);
  if (tid == 0) {
    // Every merger has left its wait before the last of them counts here, so the reset is safe.
    if (atomicAdd(tickets + 1, 1) == mergers - 1) {
      tickets[0] = 0;
      tickets[1] = 0;
    }
  }
#endif
}
#endif  // DECODE_FUSED

}  // namespace

// Rows of one step: STEP_ROWS; the launcher keeps `chunk` a multiple of it. With DECODE_STAGES the block
// needs max(STAGES · RingShape::STAGE_BYTES, slot buffers) bytes of dynamic shared memory: the slot buffers
// reuse the ring once every row is read.
extern "C" __global__ void __launch_bounds__(THREADS) decode_partial(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v,
    float* __restrict__ partO, float* __restrict__ partML, const int* __restrict__ headLen,
    const int* __restrict__ lenDev, int lenOffset, int H, int kvStride, int kvLen, int chunk, int window,
    float scaleLog2, bf16_t* __restrict__ out, int* __restrict__ counters) {
#if DECODE_STAGES
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

  const int split = blockIdx.x;
  const int hk = blockIdx.y;
  const int tid = threadIdx.x;
  const int sub = tid % LANES_PER_ROW;   // which 8-wide slice of the row
  const int slot = tid / LANES_PER_ROW;  // which row slot
  if (lenDev) kvLen = *lenDev + lenOffset;
  const int skip = max(0, kvLen - window);
  kvLen -= skip;
  if (lenDev) chunk = ((kvLen + gridDim.x - 1) / gridDim.x + STEP_ROWS - 1) / STEP_ROWS * STEP_ROWS;
  const int rowBase = split * chunk;
  const int len = headLen ? headLen[hk] : kvLen;
  const int rows = min(chunk, len - rowBase);
  if (rows <= 0) {  // a head shorter than the longest: this split is empty (weight 0 in the combine)
    write_empty_partials(partO, partML, split, H, hk * GROUP);
#if DECODE_FUSED
    merge_if_last(partO, partML, out, counters, H, hk, &slotO[0][0][0]);
#endif
    return;
  }

  const bf16_t* kChunk = k + ((size_t)hk * kvStride + skip + rowBase) * D;
  const bf16_t* vChunk = v + ((size_t)hk * kvStride + skip + rowBase) * D;
  float qv[GROUP][8];
  float m[GROUP], l[GROUP], acc[GROUP][8];

#if DECODE_STAGES
  // v7: thread 0 requests each step's K and V rows with two bulk copies into the ring.
  auto issue = [&](int step, u32 kDst, u32 vDst, u32 bar) {
    const int first = step * RingShape::STEP;
    const u32 bytes = (u32)min(RingShape::STEP, rows - first) * D * 2;
    mbar_arrive_expect_tx(bar, 2 * bytes);
    bulk_copy_g2s(kDst, kChunk + (size_t)first * D, bytes, bar);
    bulk_copy_g2s(vDst, vChunk + (size_t)first * D, bytes, bar);
  };
  const u32 ring = smem_addr(ringBytes);
  if (tid == 0) ring_start<STAGES>(bars, ring, rows, issue);  // the first rows in flight before the query's loads
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
  load_group_query(q, hk * GROUP, sub, scaleLog2, qv);
  __syncthreads();  // the barriers are initialised
  stream_rows_ring<STAGES>(rows, slot, sub, bars, reinterpret_cast<const bf16_t*>(ringBytes), ring, issue, qv, m, l, acc);
  __syncthreads();  // every thread has read its last stage: the slot buffers may overwrite the ring
#else
  const bf16_t* kRows = kChunk + sub * 8;
  const bf16_t* vRows = vChunk + sub * 8;

  // Register double buffering: the next step's K and V rows are requested before this step's math.
  Vec8 kr[UNROLL], vr[UNROLL];
  auto loadStep = [&](int base, Vec8* kd, Vec8* vd) { load_contiguous_step(kRows, vRows, rows, base, slot, kd, vd); };
  loadStep(0, kr, vr);  // first rows in flight before the query's own loads
#if __CUDA_ARCH__ >= 900
  // Launched with a programmatic dependency, the combine may now be scheduled; it waits for this grid.
  asm volatile("griddepcontrol.launch_dependents;");
#endif
  load_group_query(q, hk * GROUP, sub, scaleLog2, qv);
  stream_rows(rows, slot, loadStep, kr, vr, qv, m, l, acc);
#endif
  write_block_partials(slotO, slotM, slotL, slot, sub, m, l, acc, partO, partML, split, H, hk * GROUP);
#if DECODE_FUSED
  merge_if_last(partO, partML, out, counters, H, hk, &slotO[0][0][0]);
#endif
}

// grid (H), block (COMBINE_THREADS), dynamic shared memory splits * 4 bytes: merges the partials of
// query head h. Thread (slice, col) owns float4 column col of the output and the splits slice,
// slice + SLICES, ...; its first PREFETCH partial vectors are requested before the split weights are
// known, so the whole merge waits on one round of L2 latency. The slices' sums meet in shared memory.
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) decode_combine(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  constexpr int COLS = D / 4;                      // float4 columns of a row
  constexpr int SLICES = COMBINE_THREADS / COLS;   // splits merged side by side
  constexpr int PREFETCH = 8;
  constexpr int WARPS = COMBINE_THREADS / 32;
  extern __shared__ float weight[];  // [splits]
  __shared__ float red[WARPS];
  __shared__ float4 sliceSum[SLICES][COLS];
  const int h = blockIdx.x;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int slice = tid / COLS, col = tid % COLS;
#if __CUDA_ARCH__ >= 900
  // Programmatic dependent launch: wait until the partial grid has finished and its writes are visible
  // (a no-op when launched normally).
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif

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
    const float w = fast_exp2(ml[0] - m);
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
  for (int s = slice + PREFETCH * SLICES; s < splits; s += SLICES) {  // more splits than prefetched
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

// v6 combine ('fold'): grid (H), block (COMBINE_THREADS), no dynamic shared memory. The same merge as
// decode_combine with every thread folding its splits online: each (max, sum) pair is requested with
// its output vector, so the merge waits on one L2 round trip (per 8 splits of a slice) and one barrier
// instead of two round trips and three barriers.
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) decode_combine_fold(
    const float* __restrict__ partO, const float* __restrict__ partML, bf16_t* __restrict__ out, int H, int splits) {
  __shared__ float scratch[COMBINE_THREADS * 6];
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");  // a no-op unless launched as a programmatic dependent
#endif
  merge_heads<1, COMBINE_THREADS>(partO, partML, out, H, splits, blockIdx.x, scratch);
}
#endif  // !DECODE_CLUSTER

#if DECODE_CLUSTER
namespace {
__device__ __forceinline__ u32 cluster_rank() {
  u32 r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
// Every thread of every block of the cluster: the shared-memory writes before it (release) are visible
// to the reads after it in any block of the cluster (acquire).
__device__ __forceinline__ void cluster_barrier() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// The address of the same shared-memory variable in block `rank` of the cluster.
__device__ __forceinline__ u32 peer_addr(u32 local, u32 rank) {
  u32 r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(local), "r"(rank));
  return r;
}
__device__ __forceinline__ float load_peer_f32(u32 addr) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
__device__ __forceinline__ float2 load_peer_f2(u32 addr) {
  float2 v;
  asm volatile("ld.shared::cluster.v2.f32 {%0,%1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr) : "memory");
  return v;
}
}  // namespace

// grid (CLUSTER, Hkv · SUBSETS), cluster dims (CLUSTER, 1, 1), block (THREADS), dynamic shared memory
// SLOTS · GROUP · (D + 2) · 4 bytes (the slot buffers). Block (s, y) serves query heads
// y · GROUP .. y · GROUP + GROUP - 1 of KV head y / SUBSETS over split s of its rows (`chunk` rows, a
// multiple of STEP_ROWS; with lenDev derived from the length read) and writes part of `out`.
// Arguments as decode_partial's, without the partials' workspace.
extern "C" __global__ void __launch_bounds__(THREADS, 1) decode_cluster(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int* __restrict__ headLen, const int* __restrict__ lenDev, int lenOffset, int kvStride, int kvLen, int chunk, int window,
    float scaleLog2) {
  extern __shared__ __align__(16) unsigned char slotBytes[];
  auto& slotO = *reinterpret_cast<float(*)[SLOTS][GROUP][D]>(slotBytes);
  auto& slotM = *reinterpret_cast<float(*)[SLOTS][GROUP]>(slotBytes + sizeof(float) * SLOTS * GROUP * D);
  auto& slotL = *reinterpret_cast<float(*)[SLOTS][GROUP]>(slotBytes + sizeof(float) * SLOTS * GROUP * (D + 1));
  // This block's partial, read by the whole cluster after the first barrier.
  __shared__ __align__(16) float blockO[GROUP * D];
  __shared__ __align__(8) float2 blockML[GROUP];  // (max, sum), log2 domain

  const u32 split = cluster_rank();  // == blockIdx.x: the grid is one cluster wide
  const int hk = blockIdx.y / SUBSETS;
  const int h0 = blockIdx.y * GROUP;
  const int tid = threadIdx.x;
  const int sub = tid % LANES_PER_ROW;
  const int slot = tid / LANES_PER_ROW;
  if (lenDev) kvLen = *lenDev + lenOffset;
  const int skip = max(0, kvLen - window);
  kvLen -= skip;
  if (lenDev) chunk = ((kvLen + CLUSTER - 1) / CLUSTER + STEP_ROWS - 1) / STEP_ROWS * STEP_ROWS;
  const int rowBase = (int)split * chunk;
  const int len = headLen ? headLen[hk] : kvLen;
  const int rows = min(chunk, len - rowBase);

  // No early exit: every block of the cluster must reach both cluster barriers.
  if (rows > 0) {
    const bf16_t* kRows = k + ((size_t)hk * kvStride + skip + rowBase) * D + sub * 8;
    const bf16_t* vRows = v + ((size_t)hk * kvStride + skip + rowBase) * D + sub * 8;
    Vec8 kr[UNROLL], vr[UNROLL];
    auto loadStep = [&](int base, Vec8* kd, Vec8* vd) { load_contiguous_step(kRows, vRows, rows, base, slot, kd, vd); };
    loadStep(0, kr, vr);  // first rows in flight before the query's own loads
    float qv[GROUP][8];
    float m[GROUP], l[GROUP], acc[GROUP][8];
    load_group_query(q, h0, sub, scaleLog2, qv);
    stream_rows(rows, slot, loadStep, kr, vr, qv, m, l, acc);
    fold_block_slots(slotO, slotM, slotL, slot, sub, m, l, acc, [&](int gh, int d, float o, float mx, float sum) {
      blockO[gh * D + d] = o;
      if (d == 0) blockML[gh] = make_float2(mx, sum);
    });
  } else {  // past the head's rows: weight 0 in the merge
    for (int i = tid; i < GROUP * D; i += THREADS) blockO[i] = 0.f;
    if (tid < GROUP) blockML[tid] = make_float2(NEG_INF, 0.f);
  }
  cluster_barrier();

  // Thread (j, s): split s's value of element split · PER_BLOCK + base + j; the CLUSTER lanes of an
  // element (consecutive, inside one warp) fold by shuffles, lane s = 0 writes.
  constexpr int E = GROUP * D;
  constexpr int PER_BLOCK = (E + CLUSTER - 1) / CLUSTER;
  constexpr int PER_PASS = THREADS / CLUSTER;
  const u32 peer = (u32)(tid % CLUSTER);
  const int j = tid / CLUSTER;
  const u32 oBase = peer_addr(smem_addr(blockO), peer);
  const u32 mlBase = peer_addr(smem_addr(blockML), peer);
#pragma unroll
  for (int base = 0; base < PER_BLOCK; base += PER_PASS) {
    const int local = base + j;
    const int e = (int)split * PER_BLOCK + local;
    const bool valid = local < PER_BLOCK && e < E;
    float o = 0.f;
    float2 ml = make_float2(NEG_INF, 0.f);
    if (valid) {
      o = load_peer_f32(oBase + 4u * (u32)e);
      ml = load_peer_f2(mlBase + 8u * (u32)(e / D));
    }
    float mx = ml.x;
#pragma unroll
    for (int off = CLUSTER / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float w = fast_exp2(ml.x - (mx == NEG_INF ? 0.f : mx));
    float num = w * o, den = w * ml.y;
#pragma unroll
    for (int off = CLUSTER / 2; off > 0; off >>= 1) {
      num += __shfl_xor_sync(0xffffffffu, num, off);
      den += __shfl_xor_sync(0xffffffffu, den, off);
    }
    if (valid && peer == 0) out[(size_t)h0 * D + e] = f32_to_bf16(num / den);
  }
  cluster_barrier();  // peers may still be reading this block's partial
}
#endif  // DECODE_CLUSTER
