// Block-sparse causal flash-attention prefill on Hopper's warpgroup MMA (wgmma, sm_90a): same inputs,
// index format and results as block-sparse-prefill.cu (its header describes the tensors and the chunk
// lists), built on the loop of flash-prefill-wgmma.cu v3 (producer warpgroup, cp.async into
// 128-byte-swizzled stages completing on mbarriers, two consumer warpgroups of 64 rows taking turns).
// Two kernels:
//
// block_sparse_wgmma_steps: one block per attention CTA (128 query rows of one query head = 8 slots of
//   16 rows; warpgroup w owns slots 4w .. 4w + 3, warp l of it slot 4w + l). It collects the 16-key tiles
//   any slot attends (tiles right of a slot's diagonal or past the cache dropped), each with its 8-bit
//   slot mask, and lays them out as STEPS of SUB = BLOCK_N / 16 entries keyTile | slotMask << 24, grouped
//   by which warpgroups need them: first the tiles both warpgroups use, then steps of tiles only
//   warpgroup 0 uses alternating with steps of tiles only warpgroup 1 uses, then the longer class's
//   remainder. Each class's last step is padded with entry 0 (mask 0: nothing loaded, V zero-filled).
//   Online softmax does not care about key order, so grouping by warpgroup costs nothing, and a
//   warpgroup skips every step none of its rows selected: for uncorrelated selections most steps are
//   one warpgroup's, and the two run them side by side.
// block_sparse_prefill_wgmma: the producer warpgroup gathers each step's sub-tiles (arbitrary key tiles)
//   into a K and a V stage (and the step's entries into a small stage of their own, by cp.async too, so
//   the consumers read them behind the same full barrier). A consumer warpgroup whose rows selected
//   nothing in the step releases it untouched; otherwise it runs S = Q·Kᵀ (m64 × BLOCK_N) on wgmma,
//   masks to -inf every sub-tile its warp's slot did not select and applies the exact causal mask where
//   a selected sub-tile reaches the slot's diagonal or the cache end, and runs O += P·V one step later
//   (under the next step's softmax, as dense v3). Every P·V k-step runs: thanks to the grouping, a
//   step a warpgroup computes holds only sub-tiles some row of it selected (padding aside), and a
//   wgmma left out under a condition, branch or predicate, makes ptxas serialise the whole chain
//   (C7515, tried). The warpgroups take turns to issue (named barriers, as dense v3) only in the leading
//   steps both compute; in steps of one warpgroup's own tiles they run side by side. A skipped step
//   flushes the pending P·V first, so a warpgroup never holds a V stage for more than one step (the
//   producer, filling K_j after V_{j-1}, could otherwise wait on a release that waits on K_j).
//
// Layouts: as block-sparse-prefill.cu (q [T, qRowStride], out [T, H, D], k/v [Hkv, kvStride, D],
//   lists [H, numChunks, listStride] + counts [H, numChunks]); steps [H, numCtaRows, stepStride] entries,
//   stepCounts [H, numCtaRows, 2] (steps, not entries; then how many of them lead with tiles all the
//   warpgroups use). A query row whose list is empty writes zeros.
//
// Three consumer warpgroups (CONSUMERS = 3: 192-row CTAs, 12 slots; docs/perf.md, "More query rows per
// CTA"): each gathered K/V tile then serves up to 12 query chunks instead of 8. What changes: entries are
// keyTile | slotMask << 20 (12 mask bits; key tiles < 2^20); the steps kernel keeps 16-bit masks and
// seven classes, one per set of warpgroups using a tile, in tiers: the tiles all three use, then the
// three pair classes round-robin, then the three single-warpgroup classes round-robin (at two consumers
// the same rule gives the order above: both, then the two own classes alternating); turns in the
// leading all-three steps go round a ring of three named barriers (warpgroup w waits on 1 + w and
// arrives on 1 + (w + 1) % 3); consumers get 152 registers (3 × 128 × 152 + 128 × 56 = 65,536), which
// fits 64-key steps only (128-key steps serialise there).
//
// CTA order (CTA_ORDER; docs/perf.md, "Session 5"): 0 (default) is prefill_block_coords<1>, longest-first
// row blocks with all heads of a row block in a row, so the CTAs resident at once read all KV heads'
// K/V; 1 is KV-head-major: one KV head's CTAs (its query heads interleaved, row blocks longest-first)
// before the next KV head's, so the resident CTAs gather from one KV head's K/V, which fits the L2 up to
// 64K tokens, where random selections otherwise miss it on 12-50% of the gathered tiles (work model).
// The step lists stay indexed by (head, CTA row), so only the block -> (CTA row, head) map changes.
//
// Codegen parameters (-D): HEAD_DIM (64 or 128), BLOCK_N (64 or 128 keys per step: 4 or 8 sub-tiles),
// KV_STAGES (2 to 4), CONSUMERS (2 or 3; 3 with BLOCK_N 64 only), CTA_ORDER (0 or 1).
//
// Ablation flags (session 7, docs/perf.md "Block-sparse prefill"; each 0 by default, where the code is
// what it was, and each changes one thing of the step; results stay exact):
//   DEFER_PV   a skipped step keeps the pending P·V (and its V stage) while that P·V's step is fewer
//              than KV_STAGES steps back, so the next computed step issues it beside its Q·Kᵀ as the
//              leading steps do; it is flushed only where the producer's next fill of its V stage (step
//              pending + KV_STAGES) would wait for it. (The plain rule flushes before every skip.)
//   LEAN_MASK  no per-sub-tile mask loop in a step whose every sub-tile this warp's slot selected and
//              whose keys all lie left of the warp's first row and inside the cache (one warp-uniform test
//              on the last, largest tile: a class's steps are ascending).
//   OWN_TURNS  (two consumers) turns also in the paired own steps (warpgroup 0's and 1's alternating
//              steps after the shared ones), so the two issue in strict alternation there too; the steps
//              kernel adds the paired count to stepCounts' second word (stepsBoth | paired << 16).
//   IDLE_WARPS a warp whose slot selected none of a computed step's sub-tiles skips the masks and the
//              softmax (P = 0, running max and sum unchanged; its warpgroup's wgmma still runs).
//   KV_SKEW    the producer fills K of step i + 1 before V of step i (the order the consumers use them:
//              P·V runs one step late), so a K fill no longer waits behind the release of an older V
//              stage (session 7's round 1: holding V stages longer (DEFER_PV) cost 7-39%).
//   EARLY_K    a skipped step releases its K stage before flushing the pending P·V (the plain order
//              holds it until that P·V is done, so the producer's next K fill into it waits for it).
//   CONTIG_FILL (session 7, bs2) a step whose SUB entries are consecutive key tiles, each selected by some
//              slot, is filled as dense flash fills a tile: the rows' addresses from the first tile alone
//              (key = first key + row), with no per-row entry select and mask test (one warp-uniform test
//              per step; other steps are gathered as before).
//   ENT_GLOBAL (session 7, bs2) the consumers read each step's entries from global memory (L2), loaded
//              one step ahead into registers, instead of from the shared-memory entry stage behind the K
//              stage's full barrier; the producer no longer copies them (no per-step 4-byte cp.async).
//   ENT_AHEAD  (session 7, bs2) the producer prefetches step i + 1's entries into L1 (prefetch.global.L1,
//              no register: holding them in registers spilled the 56-register producer) before it fills
//              step i, so the next fill's entry loads hit L1 instead of waiting for L2.
//   MASK_SELECT (session 8, bsmask) one warp-uniform test per step: does any entry of the step reach
//              the warp's first row or the cache end (the largest entry's tile; padding entries are tile
//              0)? Only then the per-sub-tile loop runs as before; otherwise no causal compare is needed,
//              and the sub-tiles the warp's slot did not select are set to -inf by selects, with no
//              branch per sub-tile (the plain loop takes two branches per sub-tile on every step). With
//              LEAN_MASK, its clean steps (every sub-tile selected) skip the selects too.
//   MASK_FIRST (session 8, bsmask, round 2; not with MASK_SELECT or LEAN_MASK) the selection mask by
//              selects on every computed step, outside any branch, then the causal compares (every
//              sub-tile, no per-sub-tile branch) only in a step whose largest tile reaches the warp's first
//              row or the cache end. No branch around the selects: the SASS of the plain loop, -lm and -ms
//              shows ptxas moving the 64 scores out of the wgmma accumulators wherever a branch joins
//              paths that wrote them (8 moves a sub-tile in the plain loop, 64 before -lm's branch).
//   ENT_BALLOT (session 8, bsmask; with MASK_SELECT or MASK_FIRST) lane e of each consumer warp reads entry e (lanes
//              past SUB a copy of entry lane % SUB), and two warp votes and one max reduction give the
//              warpgroup's and the warp's selection bits and the step's largest tile, instead of every
//              lane reading all SUB entries and folding them bit by bit (about 5 instructions per entry)
//              and a shuffle, all between the K stage's arrival and the wgmma issue. The tiles' keys are
//              shuffled out only in the steps that take the causal loop.
//   STEPS_FLAT (session 9, bs; the steps kernel only, the step lists it writes are the same) the block's
//              threads walk one flat index over every slot's (list entry, key tile) pairs, four loads in
//              flight a thread, after one warp has read all the slots' counts at once. The plain loop
//              walks the slots one after another (a count load, then the slot's entries, then the next
//              slot's count), so each slot costs at least two dependent global-load latencies: at 12
//              slots and few entries a slot (c = 64, or s >= 0.9) the kernel waits on ~24 latencies a block.
//   FLAT_CAUSAL (session 9, bs; with MASK_SELECT) MASK_SELECT's causal steps (a tile reaches the warp's first
//              row or the cache end: at c = 64 a warpgroup's own diagonal chunk, 1 / t of its steps) without
//              a branch per sub-tile: the selection by selects, then the causal compares on every sub-tile,
//              as MASK_FIRST's causal block (the plain loop branches twice a sub-tile, and ptxas copies the
//              scores at each join).
//   PERSISTENT (session 9, bs; KV-head-major order only, not with KV_SKEW, OWN_TURNS, ALL_COMPUTE, ENT_GLOBAL,
//              DEFER_PV) a grid of at most one CTA per SM, each CTA running the work items (CTA row, head)
//              blockIdx.x, blockIdx.x + gridDim.x, ... of the launch's block order one after another, with two
//              Q tiles: the producer loads item j + 1's Q (into the tile item j - 1 used, once the consumers
//              have released it) and gathers its first steps while the consumers finish item j and store
//              its rows. One CTA an SM otherwise runs a CTA's start, Q load and output store with nothing to
//              overlap them: at high s, where an item has few steps, that is a large share of the kernel.
//              The stage ring, its barriers' phases and the step order carry on across items; every item's
//              arithmetic is the plain kernel's, so results are the same bit for bit.
//   WORK_COUNTER (session 10, bs; with PERSISTENT) the persistent CTAs draw their items from an atomic ticket
//              instead of the static round-robin (item j on CTA j mod gridDim.x): each CTA's first item is
//              blockIdx.x, every later one gridDim.x + atomicAdd(ticket) in the launch's block order
//              (KV-head-major, each KV head's rows longest first, so the last items drawn are the shortest).
//              So a CTA whose items were long draws fewer of them, as the hardware's block scheduler
//              balances the non-persistent grid (session 9: static -ps was +8 % at s = 0, where an item
//              runs 1 to 86 steps along its row). The producer's thread 0 draws the next item when it
//              starts its Q load (S steps ahead of the consumers) and hands it to the producer and the
//              consumer warps through a shared word behind an mbarrier of one arrival per Q tile; a
//              drawn ticket past the last item ends the CTA. The launcher passes a zeroed pair of ints
//              (ticket, CTAs done): the last CTA to finish sets both back to 0 for the next launch.
//   ALL_COMPUTE (a diagnostic, not a candidate) every warpgroup computes every step, taking turns in all
//              (what it did not select masked to -inf): the same gathers with more compute, so the time
//              it adds says whether the skipped steps were compute- or gather-bound.
#include "common.cuh"
#include "flash-tile.cuh"
#include "wgmma.cuh"
#include "wgmma-pipeline.cuh"
#include "wgmma-consumer-step.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef BLOCK_N
#define BLOCK_N 64
#endif
#ifndef KV_STAGES
#define KV_STAGES 3
#endif
#ifndef CONSUMERS
#define CONSUMERS 2
#endif
#ifndef CTA_ORDER
#define CTA_ORDER 0
#endif
#ifndef DEFER_PV
#define DEFER_PV 0
#endif
#ifndef LEAN_MASK
#define LEAN_MASK 0
#endif
#ifndef OWN_TURNS
#define OWN_TURNS 0
#endif
#ifndef IDLE_WARPS
#define IDLE_WARPS 0
#endif
#ifndef ALL_COMPUTE
#define ALL_COMPUTE 0
#endif
#ifndef KV_SKEW
#define KV_SKEW 0
#endif
#ifndef EARLY_K
#define EARLY_K 0
#endif
#ifndef CONTIG_FILL
#define CONTIG_FILL 0
#endif
#ifndef ENT_GLOBAL
#define ENT_GLOBAL 0
#endif
#ifndef ENT_AHEAD
#define ENT_AHEAD 0
#endif
#ifndef MASK_SELECT
#define MASK_SELECT 0
#endif
#ifndef ENT_BALLOT
#define ENT_BALLOT 0
#endif
#ifndef MASK_FIRST
#define MASK_FIRST 0
#endif
#ifndef STEPS_FLAT
#define STEPS_FLAT 0
#endif
#ifndef FLAT_CAUSAL
#define FLAT_CAUSAL 0
#endif
#ifndef PERSISTENT
#define PERSISTENT 0
#endif
#ifndef WORK_COUNTER
#define WORK_COUNTER 0
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int BN = BLOCK_N;
constexpr int BM = 64 * CONSUMERS;       // query rows per CTA: consumer warpgroups of 64
constexpr int TILE = 16;                 // rows of a slot = keys of a sub-tile (the chunk grain)
constexpr int SLOTS = BM / TILE;         // 8 or 12
constexpr int SUB = BN / TILE;           // sub-tiles (entries) per step
constexpr int S = KV_STAGES;
constexpr int THREADS = 128 * (CONSUMERS + 1);  // the consumer warpgroups, then the producer warpgroup
constexpr int CONSUMER_THREADS = 128 * CONSUMERS;
constexpr int PRODUCER_THREADS = 128;
constexpr int TURN_THREADS = 256;        // a turn barrier: the warpgroup waiting and the one releasing it
constexpr int PRODUCER_REGS = 56;        // flash-prefill-wgmma.cu v3's split
constexpr int CONSUMER_REGS = CONSUMERS == 2 ? 224 : 152;  // 65,536 registers in all at three
constexpr int CHUNKS_PER_ROW = D / 8;    // 16-byte chunks
constexpr int P_ROWS = PRODUCER_THREADS / CHUNKS_PER_ROW;  // rows one producer pass copies (8 or 16)
constexpr u32 Q_HALF = BM * 128;
constexpr u32 KV_HALF = BN * 128;
constexpr u32 Q_BYTES = (D / 64) * Q_HALF;
constexpr u32 KV_TILE = (D / 64) * KV_HALF;
constexpr int UNION_THREADS = 256;
constexpr int MASK_BITS = CONSUMERS == 2 ? 8 : 16;  // a key tile's slot mask in the steps kernel's table
constexpr int TILES_PER_WORD = 32 / MASK_BITS;
constexpr u32 MASK_FIELD = (1u << MASK_BITS) - 1u;
constexpr int MASK_SHIFT = 32 - SLOTS;   // entry = keyTile | slotMask << MASK_SHIFT (24, or 20 at three)
constexpr u32 KEY_MASK = (1u << MASK_SHIFT) - 1u;
constexpr int CLASSES = (1 << CONSUMERS) - 1;  // one per non-empty set of warpgroups
constexpr int PACKS = (CLASSES + 2) / 3;  // 64-bit words of three 21-bit class counts
static_assert(CONSUMERS == 2 || CONSUMERS == 3, "CONSUMERS must be 2 or 3");
static_assert(CONSUMERS == 2 || BN == 64, "three consumers take 64-key steps only (128-key steps serialise at 152 registers)");
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");
static_assert(BN == 64 || BN == 128, "BLOCK_N must be 64 or 128");
static_assert(S >= 2 && S <= 4, "KV_STAGES must be 2, 3 or 4");
static_assert(CTA_ORDER == 0 || CTA_ORDER == 1, "CTA_ORDER must be 0 (heads of a row block together) or 1 (KV-head-major)");
static_assert((DEFER_PV == 0 || DEFER_PV == 1) && (LEAN_MASK == 0 || LEAN_MASK == 1) && (OWN_TURNS == 0 || OWN_TURNS == 1) &&
              (IDLE_WARPS == 0 || IDLE_WARPS == 1) && (ALL_COMPUTE == 0 || ALL_COMPUTE == 1) && (KV_SKEW == 0 || KV_SKEW == 1) &&
              (EARLY_K == 0 || EARLY_K == 1) && (CONTIG_FILL == 0 || CONTIG_FILL == 1) && (ENT_GLOBAL == 0 || ENT_GLOBAL == 1) &&
              (ENT_AHEAD == 0 || ENT_AHEAD == 1) && (MASK_SELECT == 0 || MASK_SELECT == 1) && (ENT_BALLOT == 0 || ENT_BALLOT == 1) &&
              (MASK_FIRST == 0 || MASK_FIRST == 1) && (STEPS_FLAT == 0 || STEPS_FLAT == 1) && (FLAT_CAUSAL == 0 || FLAT_CAUSAL == 1) && (PERSISTENT == 0 || PERSISTENT == 1),
              "ablation flags are 0 or 1");
static_assert(ALL_COMPUTE == 0 || (OWN_TURNS == 0 && DEFER_PV == 0), "ALL_COMPUTE skips no step: it takes neither OWN_TURNS nor DEFER_PV");
static_assert(OWN_TURNS == 0 || CONSUMERS == 2, "OWN_TURNS pairs two consumers' own steps");
static_assert(ENT_AHEAD == 0 || KV_SKEW == 0, "ENT_AHEAD is written for the plain fill order (KV_SKEW keeps its own)");
static_assert(ENT_BALLOT == 0 || ((MASK_SELECT == 1 || MASK_FIRST == 1) && ENT_GLOBAL == 0),
              "ENT_BALLOT reads the shared entry stage and needs a step-level causal test (MASK_SELECT or MASK_FIRST: no per-sub-tile keys outside the causal loop)");
static_assert(MASK_FIRST == 0 || (MASK_SELECT == 0 && LEAN_MASK == 0), "MASK_FIRST replaces the mask code that MASK_SELECT and LEAN_MASK change");
static_assert(FLAT_CAUSAL == 0 || MASK_SELECT == 1, "FLAT_CAUSAL changes MASK_SELECT's causal path");
static_assert(PERSISTENT == 0 || (CTA_ORDER == 1 && KV_SKEW == 0 && OWN_TURNS == 0 && ALL_COMPUTE == 0 && ENT_GLOBAL == 0 && DEFER_PV == 0),
              "PERSISTENT is written for the KV-head-major order and the plain fill, turn and flush rules");
static_assert(WORK_COUNTER == 0 || (WORK_COUNTER == 1 && PERSISTENT == 1), "WORK_COUNTER (0 or 1) hands out a persistent CTA's items: it needs PERSISTENT");
static_assert(P_ROWS % 8 == 0 && TILE % P_ROWS == 0, "a producer thread's rows share a swizzle phase and split the sub-tiles evenly");

#if !ENT_GLOBAL  // the entry stage's copy (ENT_GLOBAL has no entry stage)
__device__ __forceinline__ void cp_async4(u32 dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst), "l"(src));
}
#endif




// x[i] and x[i]++ for a runtime i: plain indexing for the two-consumer kernel's three classes (as it
// was), a select over constant indices for seven (a runtime index puts the array in local memory).
template <int N>
__device__ __forceinline__ int element_of(const int (&x)[N], int i) {
  if constexpr (N == 3) {
    return x[i];
  } else {
    int v = x[0];
#pragma unroll
    for (int j = 1; j < N; ++j) v = j == i ? x[j] : v;
    return v;
  }
}
template <int N>
__device__ __forceinline__ int increment_element(int (&x)[N], int i) {
  if constexpr (N == 3) {
    return x[i]++;
  } else {
    const int v = element_of(x, i);
#pragma unroll
    for (int j = 0; j < N; ++j) x[j] += j == i ? 1 : 0;
    return v;
  }
}
template <int N>
__device__ __forceinline__ int sum_of(const int (&x)[N]) {
  if constexpr (N == 3) {
    return x[0] + x[1] + x[2];
  } else {
    return x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + x[6];
  }
}
#if !PERSISTENT  // (a persistent CTA's items have block_sparse_item)
// (CTA row, head) of this block in the [CTA rows, H] grid (see CTA order in the header); read afresh
// from the special registers, so the epilogue calls it again instead of keeping them live.
__device__ __forceinline__ void block_sparse_cta_coords(int H, int Hkv, int& cr, int& h) {
  if constexpr (CTA_ORDER == 0) {
    prefill_block_coords<1>(H, cr, h);
  } else {
    const int group = H / Hkv;
    const int perKvHead = gridDim.x * group;  // CTAs of one KV head
    const int linear = ctaid_y() * gridDim.x + ctaid_x();
    const int hk = linear / perKvHead, r = linear - hk * perKvHead;
    cr = gridDim.x - 1 - r / group;
    h = hk * group + r % group;
  }
}
#endif
// Class of a tile by its slot mask: two consumers: 0 both warpgroups, 1 warpgroup 0 only, 2 warpgroup 1
// only; three: 0 all, 1..3 the pairs {0,1} {0,2} {1,2}, 4..6 warpgroup 0, 1, 2 only.
__device__ __forceinline__ int class_of(u32 mask) {
  if constexpr (CONSUMERS == 2) {
    return (mask & 0x0fu) && (mask & 0xf0u) ? 0 : (mask & 0x0fu) ? 1 : 2;
  } else {
    const u32 set = (mask & 0x00fu ? 1u : 0u) | (mask & 0x0f0u ? 2u : 0u) | (mask & 0xf00u ? 4u : 0u);
    return (int)((0x03261540u >> (4 * set)) & 0xfu);  // set -> class, a nibble each
  }
}
// step_of at two consumers (its first form, kept so that variant's code stays the same).
__device__ __forceinline__ int step_of_two(int cls, int k, int stepsBoth, int stepsA, int stepsB) {
  if (cls == 0) return k;
  const int paired = min(stepsA, stepsB);
  return stepsBoth + (k < paired ? 2 * k + (cls - 1) : paired + k);
}
// Step of the k-th step of a class. Classes come in tiers (all warpgroups; two consumers: then the own
// classes; three: the pairs, then the singles), each tier round-robin over its classes: step k of
// class c follows every class's first min(n, k) steps of its tier and the k-th steps of the tier's
// earlier classes that have one.
__device__ __forceinline__ int step_of(int cls, int k, const int (&n)[CLASSES]) {
  if constexpr (CONSUMERS == 2) {
    return step_of_two(cls, k, n[0], n[1], n[2]);
  } else {
    // Constant indices only (a runtime index would put n in local memory).
    auto tier = [](int c) { return c == 0 ? 0 : c < 4 ? 1 : 2; };
    if (cls == 0) return k;
    int at = 0;
#pragma unroll
    for (int c = 0; c < CLASSES; ++c) {
      if (tier(c) < tier(cls)) at += n[c];
      else if (tier(c) == tier(cls)) at += min(n[c], k) + (c < cls && n[c] > k ? 1 : 0);
    }
    return at;
  }
}
#if MASK_SELECT || MASK_FIRST  // (an unused function in this namespace is a warning)
// s [BN / 8][4]: a warp's scores of one step (sub-tile e in s[2e], s[2e + 1]). -inf in every sub-tile whose
// bit in mineBits is clear, by selects, no branch (MASK_SELECT's no-causal path and MASK_FIRST's every step).
__device__ __forceinline__ void select_mine(float (&s)[BN / 8][4], u32 mineBits) {
#pragma unroll
  for (int e = 0; e < SUB; ++e) {
    const bool mine = (mineBits >> e) & 1u;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
#pragma unroll
      for (int j = 0; j < 4; ++j) s[2 * e + half][j] = mine ? s[2 * e + half][j] : NEG_INF;
    }
  }
}
#endif
#if PERSISTENT
struct BlockSparseItem {
  int cr, h, numSteps, turnEnd;
};
// Work item `item` of the launch's block order (KV-head-major: block_sparse_cta_coords with CTA_ORDER 1 and
// numCtaRows blocks along x), its step count and the leading steps all warpgroups use.
__device__ __forceinline__ BlockSparseItem block_sparse_item(int item, int numCtaRows, int H, int Hkv, const int* stepCounts) {
  const int group = H / Hkv;
  const int perKvHead = numCtaRows * group;  // items of one KV head
  const int hk = item / perKvHead, r = item - hk * perKvHead;
  BlockSparseItem it;
  it.cr = numCtaRows - 1 - r / group;
  it.h = hk * group + r % group;
  const int cta = it.h * numCtaRows + it.cr;
  it.numSteps = stepCounts[2 * cta];
  it.turnEnd = stepCounts[2 * cta + 1];
  return it;
}
#endif
#if WORK_COUNTER
// The shared word that hands a drawn item from the producer's thread 0 to the CTA's other threads (read
// after the item barrier's phase completes: its arrive releases the store, the wait acquires it).
__device__ __forceinline__ void store_shared_int(u32 addr, int x) {
  asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(x) : "memory");
}
__device__ __forceinline__ int load_shared_int(u32 addr) {
  int x;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(x) : "r"(addr) : "memory");
  return x;
}
#endif
#if ENT_BALLOT
// ENT_BALLOT: lane e holds the first key of the step's tile e; every lane gets all SUB of them (n0 [SUB]),
// only in steps that take the causal loop.
__device__ __forceinline__ void tile_first_keys(int (&n0)[SUB], int entKey) {
#pragma unroll
  for (int e = 0; e < SUB; ++e) n0[e] = __shfl_sync(0xffffffffu, entKey, e);
}
#endif
}  // namespace

extern "C" __global__ void __launch_bounds__(UNION_THREADS) block_sparse_wgmma_steps(
    const int* __restrict__ lists, const int* __restrict__ counts, int* __restrict__ steps, int* __restrict__ stepCounts,
    int listStride, int numChunks, int chunkTiles, int numQueryTiles, int kvLen, int stepStride) {
  extern __shared__ u32 slotMasks[];  // one slot mask per key tile, TILES_PER_WORD a word
  constexpr int WARPS = UNION_THREADS / 32;
  __shared__ unsigned long long warpTotals[PACKS * WARPS];
  const int tid = threadIdx.x;
  const int cr = blockIdx.x, h = blockIdx.y;
  const int cta = h * gridDim.x + cr;
  const int qt0 = cr * SLOTS;
  const int lastTile = min(numQueryTiles, qt0 + SLOTS) - 1;  // no key tile lies right of it
  const int words = lastTile / TILES_PER_WORD + 1;
  for (int i = tid; i < words; i += UNION_THREADS) slotMasks[i] = 0u;
#if STEPS_FLAT
  // slotEnd[s]: end of slot s's run of (entry, tile) pairs in the flat index (an inclusive scan of the
  // slots' pair counts; a slot past the prompt has none).
  __shared__ int slotEnd[SLOTS];
  if (tid < 32) {
    const int qt = qt0 + tid;
    int pairs = tid < SLOTS && qt < numQueryTiles ? counts[h * numChunks + qt / chunkTiles] * chunkTiles : 0;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, pairs, d);
      if (tid >= d) pairs += y;
    }
    if (tid < SLOTS) slotEnd[tid] = pairs;
  }
  __syncthreads();
  const int totalPairs = slotEnd[SLOTS - 1];
  constexpr int IN_FLIGHT = 4;  // list loads a thread issues before it uses them
  int slot = 0;  // a thread's indices only grow, so its slot only moves forward
  for (int base = 0; base < totalPairs; base += IN_FLIGHT * UNION_THREADS) {
    int kt[IN_FLIGHT], slotOf[IN_FLIGHT];
#pragma unroll
    for (int r = 0; r < IN_FLIGHT; ++r) {
      const int j = base + r * UNION_THREADS + tid;
      kt[r] = -1;
      slotOf[r] = 0;
      if (j < totalPairs) {
        while (j >= slotEnd[slot]) ++slot;
        const int i = j - (slot == 0 ? 0 : slotEnd[slot - 1]);
        const int* list = lists + ((size_t)h * numChunks + (qt0 + slot) / chunkTiles) * listStride;
        kt[r] = __ldg(list + i / chunkTiles) * chunkTiles + i % chunkTiles;
        slotOf[r] = slot;
      }
    }
#pragma unroll
    for (int r = 0; r < IN_FLIGHT; ++r) {
      const int lastQuery = (qt0 + slotOf[r]) * TILE + TILE - 1;
      if (kt[r] >= 0 && kt[r] * TILE <= lastQuery && kt[r] * TILE < kvLen) {
        atomicOr(&slotMasks[kt[r] / TILES_PER_WORD], (1u << slotOf[r]) << (MASK_BITS * (kt[r] % TILES_PER_WORD)));
      }
    }
  }
#else
  __syncthreads();
  for (int slot = 0; slot < SLOTS; ++slot) {
    const int qt = qt0 + slot;
    if (qt >= numQueryTiles) break;  // same for every thread
    const int m = qt / chunkTiles;
    const int count = counts[h * numChunks + m];
    const int* list = lists + ((size_t)h * numChunks + m) * listStride;
    const int lastQuery = qt * TILE + TILE - 1;
    for (int i = tid; i < count * chunkTiles; i += UNION_THREADS) {
      const int kt = list[i / chunkTiles] * chunkTiles + i % chunkTiles;
      if (kt >= 0 && kt * TILE <= lastQuery && kt * TILE < kvLen) {
        atomicOr(&slotMasks[kt / TILES_PER_WORD], (1u << slot) << (MASK_BITS * (kt % TILES_PER_WORD)));
      }
    }
  }
#endif
  __syncthreads();

  // Per-class counts of each thread's run of words, scanned block-wide as 21-bit fields, three a word.
  auto classOf = [](u32 mask) { return class_of(mask); };
  const int per = (words + UNION_THREADS - 1) / UNION_THREADS;
  const int wb = min(words, tid * per), we = min(words, wb + per);
  unsigned long long mine[PACKS];
#pragma unroll
  for (int p = 0; p < PACKS; ++p) mine[p] = 0ull;
  for (int i = wb; i < we; ++i) {
    const u32 x = slotMasks[i];
#pragma unroll
    for (int e = 0; e < TILES_PER_WORD; ++e) {
      const u32 mask = (x >> (MASK_BITS * e)) & MASK_FIELD;
      if (mask != 0u) {
        const int c = classOf(mask);
        if constexpr (PACKS == 1) {
          mine[0] += 1ull << (21 * c);
        } else {
          const unsigned long long one = 1ull << (21 * (c % 3));
#pragma unroll
          for (int p = 0; p < PACKS; ++p) mine[p] += c >= 3 * p && c < 3 * p + 3 ? one : 0ull;  // no runtime index
        }
      }
    }
  }
  const int lane = tid & 31, warp = tid >> 5;
  unsigned long long incl[PACKS];
#pragma unroll
  for (int p = 0; p < PACKS; ++p) {
    incl[p] = mine[p];
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const unsigned long long y = __shfl_up_sync(0xffffffffu, incl[p], d);
      if (lane >= d) incl[p] += y;
    }
  }
  if (lane == 31) {
#pragma unroll
    for (int p = 0; p < PACKS; ++p) warpTotals[p * WARPS + warp] = incl[p];
  }
  __syncthreads();
  unsigned long long pos[PACKS], total[PACKS];
#pragma unroll
  for (int p = 0; p < PACKS; ++p) {
    pos[p] = incl[p] - mine[p];
    total[p] = 0ull;
  }
  for (int w = 0; w < WARPS; ++w) {
#pragma unroll
    for (int p = 0; p < PACKS; ++p) {
      if (w < warp) pos[p] += warpTotals[p * WARPS + w];
      total[p] += warpTotals[p * WARPS + w];
    }
  }
  constexpr unsigned long long FIELD = (1ull << 21) - 1ull;
  int n[CLASSES], stepsOf[CLASSES];
#pragma unroll
  for (int c = 0; c < CLASSES; ++c) {
    n[c] = (int)((total[c / 3] >> (21 * (c % 3))) & FIELD);
    stepsOf[c] = (n[c] + SUB - 1) / SUB;
  }
  const int numSteps = sum_of(stepsOf);
  int* dst = steps + (size_t)cta * stepStride;
  int next[CLASSES];
#pragma unroll
  for (int c = 0; c < CLASSES; ++c) next[c] = (int)((pos[c / 3] >> (21 * (c % 3))) & FIELD);
  for (int i = wb; i < we; ++i) {
    const u32 x = slotMasks[i];
    if (x == 0u) continue;
#pragma unroll
    for (int e = 0; e < TILES_PER_WORD; ++e) {
      const u32 mask = (x >> (MASK_BITS * e)) & MASK_FIELD;
      if (mask == 0u) continue;
      const int c = classOf(mask);
      const int k = increment_element(next, c);
      const int at = step_of(c, k / SUB, stepsOf) * SUB + k % SUB;
      if (at < stepStride) dst[at] = (int)((u32)(i * TILES_PER_WORD + e) | (mask << MASK_SHIFT));
    }
  }
  // Padding of each class's last step: entry 0 (mask 0) loads nothing and is masked for every row.
  if (tid < CLASSES * SUB) {
    const int c = tid / SUB, k = element_of(n, c) + tid % SUB;
    if (k < element_of(stepsOf, c) * SUB) {
      const int at = step_of(c, k / SUB, stepsOf) * SUB + k % SUB;
      if (at < stepStride) dst[at] = 0;
    }
  }
  if (tid == 0) {
    stepCounts[2 * cta] = min(numSteps, stepStride / SUB);
#if OWN_TURNS
    // The launcher keeps step counts below 2^16 for this variant.
    stepCounts[2 * cta + 1] = min(stepsOf[0], stepStride / SUB) | (min(stepsOf[1], stepsOf[2]) << 16);
#else
    stepCounts[2 * cta + 1] = min(stepsOf[0], stepStride / SUB);
#endif
  }
}

extern "C" __global__ void __launch_bounds__(THREADS, 1) block_sparse_prefill_wgmma(
    const bf16_t* __restrict__ q, const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
    const int* __restrict__ steps, const int* __restrict__ stepCounts, int T, int H, int Hkv, int qRowStride, int kvStride,
    int kvLen, int stepStride, float scaleLog2
#if WORK_COUNTER
    , int* __restrict__ workCounters  // [2]: the next ticket past the first items, CTAs finished; 0 at launch
#endif
    ) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms need 1024-byte alignment; the launcher asks for 1 KB of slack.
#if PERSISTENT
  const u32 sQ2 = (smem_addr(smem_raw) + 1023u) & ~1023u;  // [2][Q_BYTES]: the Q tiles of even and odd items
  const u32 sK = sQ2 + 2 * Q_BYTES;          // [S][KV_TILE]
  const u32 sV = sK + S * KV_TILE;           // [S][KV_TILE]
  const u32 bars = sV + S * KV_TILE;         // fullQ[2], fullK[S], fullV[S], emptyK[S], emptyV[S], emptyQ[2]
  const u32 fullQ2 = bars, fullK = bars + 16, fullV = fullK + 8 * S, emptyK = fullV + 8 * S, emptyV = emptyK + 8 * S;
  const u32 emptyQ2 = emptyV + 8 * S;
#if WORK_COUNTER
  const u32 itemFull2 = emptyQ2 + 16;        // [2]: the item of a Q tile's round drawn (one arrival)
  const u32 sItem2 = itemFull2 + 16;         // [2] ints: that item (past the last: the CTA is done)
  const u32 sEnt = sItem2 + 8;               // [S][SUB] entries of the step in each stage
#else
  const u32 sEnt = emptyQ2 + 16;             // [S][SUB] entries of the step in each stage
#endif
  const int numCtaRows = (T + BM - 1) / BM;
  const int numItems = numCtaRows * H;
#else
  const u32 sQ = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const u32 sK = sQ + Q_BYTES;               // [S][KV_TILE]
  const u32 sV = sK + S * KV_TILE;           // [S][KV_TILE]
  const u32 bars = sV + S * KV_TILE;         // fullQ, fullK[S], fullV[S], emptyK[S], emptyV[S]
  const u32 fullQ = bars, fullK = bars + 8, fullV = fullK + 8 * S, emptyK = fullV + 8 * S, emptyV = emptyK + 8 * S;
  const u32 sEnt = emptyV + 8 * S;           // [S][SUB] entries of the step in each stage
#endif
#if ENT_GLOBAL
  (void)sEnt;  // the entries come from global memory in this variant
#endif

  const int tid = threadIdx.x;
  // Warp-uniform through a shuffle, so ptxas sees the role branch as uniform (flash-prefill-wgmma.cu).
  const int warp = __shfl_sync(0xffffffffu, tid >> 5, 0);
  const int lane = tid & 31;
  const int wg = warp >> 2;  // 0 .. CONSUMERS - 1: consumers of rows 64·wg ..; CONSUMERS: producer
  const int wl = warp & 3;

#if !PERSISTENT  // (a persistent CTA's items set these up one by one)
  int cr, h;
  block_sparse_cta_coords(H, Hkv, cr, h);
  const int hk = h / (H / Hkv);
  const int m0 = cr * BM;
  const int cta = h * gridDim.x + cr;
  const int numSteps = stepCounts[2 * cta];
#if OWN_TURNS
  const int stepsBoth = stepCounts[2 * cta + 1] & 0xffff;  // the leading steps of tiles all warpgroups use
  // Turns run through the shared steps and the paired own steps after them (warpgroup 0's first).
  const int turnEnd = stepsBoth + 2 * (stepCounts[2 * cta + 1] >> 16);
#elif ALL_COMPUTE
  const int turnEnd = numSteps;  // every warpgroup computes every step
#else
  const int stepsBoth = stepCounts[2 * cta + 1];  // the leading steps of tiles all warpgroups use
  const int turnEnd = stepsBoth;
#endif
  const int* entries = steps + (size_t)cta * stepStride;
#endif

  constexpr int EMPTY_ARRIVALS = CONSUMER_THREADS / 32;  // one per consumer warp
#if PERSISTENT
  if (tid == 0) {
    mbar_init(fullQ2 + 8, PRODUCER_THREADS);
    mbar_init(emptyQ2, EMPTY_ARRIVALS);
    mbar_init(emptyQ2 + 8, EMPTY_ARRIVALS);
#if WORK_COUNTER
    mbar_init(itemFull2, 1);
    mbar_init(itemFull2 + 8, 1);
#endif
    init_stage_ring_barriers(fullQ2, fullK, fullV, emptyK, emptyV, S, PRODUCER_THREADS, EMPTY_ARRIVALS);  // fences all
  }
#else
  if (tid == 0) init_stage_ring_barriers(fullQ, fullK, fullV, emptyK, emptyV, S, PRODUCER_THREADS, EMPTY_ARRIVALS);
#endif
  __syncthreads();

  if (wg == CONSUMERS) {
    set_max_registers_dec<PRODUCER_REGS>();
    const int pt = tid - CONSUMER_THREADS, pr = pt / CHUNKS_PER_ROW, chunk = pt % CHUNKS_PER_ROW;
#if PERSISTENT
    int st = 0;
    u32 use = 0;  // how many times stage st was filled before (the ring carries on across items)
#if WORK_COUNTER
    for (int round = 0;; ++round) {
    // The tile's previous item (round - 2) released by every consumer warp, and with it the tile's item word.
    if (round >= 2) mbar_wait(emptyQ2 + 8 * (round & 1), ((round >> 1) - 1) & 1);
    if (pt == 0) {
      store_shared_int(sItem2 + 4 * (round & 1), round == 0 ? (int)blockIdx.x : (int)gridDim.x + atomicAdd(workCounters, 1));
      mbar_arrive(itemFull2 + 8 * (round & 1));
    }
    mbar_wait(itemFull2 + 8 * (round & 1), (round >> 1) & 1);
    const int item = load_shared_int(sItem2 + 4 * (round & 1));
    if (item >= numItems) break;
#else
    for (int item = blockIdx.x, round = 0; item < numItems; item += gridDim.x, ++round) {
#endif
    const BlockSparseItem it = block_sparse_item(item, numCtaRows, H, Hkv, stepCounts);
    const int h = it.h, hk = h / (H / Hkv), m0 = it.cr * BM, numSteps = it.numSteps;
    const int* entries = steps + (size_t)(h * numCtaRows + it.cr) * stepStride;
    const u32 sQ = sQ2 + (round & 1) * Q_BYTES, fullQ = fullQ2 + 8 * (round & 1);
#if !WORK_COUNTER
    // The tile's previous item (round - 2) released by every consumer warp.
    if (round >= 2) mbar_wait(emptyQ2 + 8 * (round & 1), ((round >> 1) - 1) & 1);
#endif
#endif
    producer_copy_q<BM, P_ROWS, D>(sQ, q, h, m0, T, qRowStride, pr, chunk);  // Q rows past T zero-filled, never stored
    cp_async_mbar_arrive_noinc(fullQ);
    const bf16_t* kHead = k + (size_t)hk * kvStride * D + chunk * 8;
    const bf16_t* vHead = v + (size_t)hk * kvStride * D + chunk * 8;
    const u32 rowDst = swizzled_offset(pr, chunk, BN);
    // Gathers the step's rows of one tensor: row r of the stage is key (entry r / 16) · 16 + r % 16.
    // Rows of padding entries and past the cache are zero-filled (0·V must stay 0) and read nothing.
    auto gather = [&](u32 stage, const bf16_t* head, const int (&ent)[SUB]) {
#if CONTIG_FILL
      // SUB consecutive key tiles, each selected by some slot: dense flash's copy (rows past the cache
      // still zero-filled). Uniform across the producer: every thread holds the same entries.
      const int first = ent[0] & (int)KEY_MASK;
      bool contiguous = true;
#pragma unroll
      for (int e = 0; e < SUB; ++e) contiguous = contiguous && (ent[e] >> MASK_SHIFT) != 0 && (ent[e] & (int)KEY_MASK) == first + e;
      if (contiguous) {
        const int key0 = first * TILE + pr;
#pragma unroll
        for (int i = 0; i < BN / P_ROWS; ++i) {
          const int key = key0 + i * P_ROWS;
          const bool inside = key < kvLen;
          cp_async16_at(stage + rowDst + i * P_ROWS * 128, head + (inside ? (size_t)key * D : 0), inside ? 16 : 0);
        }
        return;
      }
#endif
#pragma unroll
      for (int i = 0; i < BN / P_ROWS; ++i) {
        const int e = ent[(i * P_ROWS) / TILE];
        const int key = (e & (int)KEY_MASK) * TILE + (i * P_ROWS) % TILE + pr;
        const bool inside = (e >> MASK_SHIFT) != 0 && key < kvLen;
        cp_async16_at(stage + rowDst + i * P_ROWS * 128, head + (inside ? (size_t)key * D : 0), inside ? 16 : 0);
      }
    };
#if !PERSISTENT
    int st = 0;
    u32 use = 0;  // how many times stage st was filled before
#endif
#if KV_SKEW
    // K_i, then V_{i-1}: the fills in the order the consumers use them.
    int vst = 0;
    u32 vuse = 0;
    int prev[SUB];  // entries of step i - 1, whose V comes after K_i
    for (int i = 0; i <= numSteps; ++i) {
      int ent[SUB];
#pragma unroll
      for (int e = 0; e < SUB; ++e) ent[e] = i < numSteps ? __ldg(entries + i * SUB + e) : 0;
      if (i < numSteps) {
        if (use > 0) mbar_wait(emptyK + 8 * st, (use - 1) & 1);
  #if !ENT_GLOBAL
      if (pt < SUB) cp_async4(sEnt + (st * SUB + pt) * 4, entries + i * SUB + pt);
#endif
        gather(sK + st * KV_TILE, kHead, ent);
        cp_async_mbar_arrive_noinc(fullK + 8 * st);
        if (++st == S) { st = 0; ++use; }
      }
      if (i > 0) {
        if (vuse > 0) mbar_wait(emptyV + 8 * vst, (vuse - 1) & 1);
        gather(sV + vst * KV_TILE, vHead, prev);
        cp_async_mbar_arrive_noinc(fullV + 8 * vst);
        if (++vst == S) { vst = 0; ++vuse; }
      }
#pragma unroll
      for (int e = 0; e < SUB; ++e) prev[e] = ent[e];
    }
#else
    for (int i = 0; i < numSteps; ++i) {
      int ent[SUB];
#pragma unroll
      for (int e = 0; e < SUB; ++e) ent[e] = __ldg(entries + i * SUB + e);
#if ENT_AHEAD
      // The next step's SUB entries (one 16- or 32-byte span: steps start at multiples of SUB entries).
      if (i + 1 < numSteps) asm volatile("prefetch.global.L1 [%0];" ::"l"(entries + (i + 1) * SUB));
#endif
      if (use > 0) mbar_wait(emptyK + 8 * st, (use - 1) & 1);
#if !ENT_GLOBAL
      if (pt < SUB) cp_async4(sEnt + (st * SUB + pt) * 4, entries + i * SUB + pt);
#endif
      gather(sK + st * KV_TILE, kHead, ent);
      cp_async_mbar_arrive_noinc(fullK + 8 * st);
      if (use > 0) mbar_wait(emptyV + 8 * st, (use - 1) & 1);
      gather(sV + st * KV_TILE, vHead, ent);
      cp_async_mbar_arrive_noinc(fullV + 8 * st);
      if (++st == S) { st = 0; ++use; }
    }
#endif
#if PERSISTENT
    }  // items
#endif
#if WORK_COUNTER
    // Every CTA has drawn its last ticket once all have counted themselves done: the last one resets the pair
    // for the next launch (the fence orders this CTA's ticket draws before its count).
    if (pt == 0) {
      __threadfence();
      if (atomicAdd(workCounters + 1, 1) == (int)gridDim.x - 1) {
        atomicExch(workCounters, 0);
        atomicExch(workCounters + 1, 0);
      }
    }
#endif
    cp_async_wait<0>();  // leave no copy in flight behind an exited thread
  } else {
    set_max_registers_inc<CONSUMER_REGS>();
    const int g = lane >> 2, t4 = lane & 3;
    const int slot = 4 * wg + wl;
#if PERSISTENT
    int st = 0, pst = 0;   // stages of step i and of the pending P·V (the ring carries on across items)
    u32 use = 0, puse = 0; // how many times those stages were filled before
#if WORK_COUNTER
    for (int round = 0;; ++round) {
    mbar_wait(itemFull2 + 8 * (round & 1), (round >> 1) & 1);
    const int item = load_shared_int(sItem2 + 4 * (round & 1));
    if (item >= numItems) break;
#else
    for (int item = blockIdx.x, round = 0; item < numItems; item += gridDim.x, ++round) {
#endif
    const BlockSparseItem it = block_sparse_item(item, numCtaRows, H, Hkv, stepCounts);
    const int m0 = it.cr * BM, numSteps = it.numSteps, turnEnd = it.turnEnd;
    const u32 sQ = sQ2 + (round & 1) * Q_BYTES, fullQ = fullQ2 + 8 * (round & 1);
    const u32 qParity = (round >> 1) & 1;  // the tile's fill of this item
#else
    constexpr u32 qParity = 0;
#endif
    const int warpFirstPos = m0 + 64 * wg + 16 * wl;  // position of this warp's first row
    const u32 qBase = sQ + wg * 64 * 128;
    float o[D / 8][4];
    float s[BN / 8][4];
    u32 p[BN / 16][4];
    zero_accumulators<D, BN>(o, s);
    float rowMax[2] = {NEG_INF, NEG_INF}, rowSum[2] = {0.f, 0.f};

    auto release = [&](u32 bar) {
      if (lane == 0) mbar_arrive(bar);
    };
    auto issueQK = [&](u32 kStage) { issue_qk_ss<D, BN>(s, qBase, Q_HALF, kStage, KV_HALF); };
    // O += P·V over all the step's sub-tiles (P is zero in those this warp did not select).
    auto issuePV = [&](u32 vStage) { issue_pv<D, BN>(o, p, vStage, KV_HALF); };

    // Turns are taken in the steps all warpgroups compute (the first stepsBoth), as in dense v3, so one's
    // softmax runs under the others' products; in the other steps the warpgroups that compute them run
    // side by side without them (turns there would make each wait for the other's softmax). The turn
    // goes round the ring 0 -> 1 (-> 2) -> 0: warpgroup w waits on barrier 1 + w and hands the turn on.
    // (The two-consumer forms are written as they were, so that variant's code stays the same.)
    const int nextTurn = CONSUMERS == 2 ? 2 - wg : 1 + (wg + 1) % CONSUMERS;
    if (wg == CONSUMERS - 1 && turnEnd > 0) named_bar_arrive(1, TURN_THREADS);  // warpgroup 0 issues first
    mbar_wait(fullQ, qParity);
#if !PERSISTENT
    int st = 0, pst = 0;   // stages of step i and of the pending P·V
    u32 use = 0, puse = 0; // how many times those stages were filled before
#endif
    bool pending = false;  // a P·V (of step i - 1) waits to be issued
#if DEFER_PV
    int pstep = 0;         // the step of the pending P·V
#endif
    // The pending P·V alone (a skipped step, or the end), waited for, its V stage released.
    auto flushPV = [&]() {
      consumer_last_pv(fullV + 8 * pst, puse & 1, [&, pst] { issuePV(sV + pst * KV_TILE); }, o);
      release(emptyV + 8 * pst);
    };
#if ENT_GLOBAL
    // Step i's entries, loaded during step i - 1 (their latency under that step's work).
    u32 ahead[SUB];
#pragma unroll
    for (int e = 0; e < SUB; ++e) ahead[e] = numSteps > 0 ? (u32)__ldg(entries + e) : 0u;
#endif
    for (int i = 0; i < numSteps; ++i) {
#if ENT_GLOBAL
      u32 cur[SUB];
#pragma unroll
      for (int e = 0; e < SUB; ++e) {
        cur[e] = ahead[e];
        ahead[e] = i + 1 < numSteps ? (u32)__ldg(entries + (i + 1) * SUB + e) : 0u;
      }
#endif
      mbar_wait(fullK + 8 * st, use & 1);
#if ENT_BALLOT
      // Lane l holds entry l % SUB; the votes are warp-uniform by construction.
      u32 x;
      asm volatile("ld.shared.u32 %0, [%1];" : "=r"(x) : "r"(sEnt + (st * SUB + (lane & (SUB - 1))) * 4) : "memory");
      const int entKey = (int)(x & KEY_MASK) * TILE;  // first key of this lane's tile
      constexpr u32 STEP_BITS = (1u << SUB) - 1u;
      u32 wgBits = __ballot_sync(0xffffffffu, ((x >> (MASK_SHIFT + 4 * wg)) & 0xfu) != 0u) & STEP_BITS;
      const u32 mineBits = __ballot_sync(0xffffffffu, ((x >> (MASK_SHIFT + slot)) & 1u) != 0u) & STEP_BITS;
      const int maxN0 = (int)__reduce_max_sync(0xffffffffu, (u32)entKey);  // padding entries are tile 0
#else
      // wgBits bit e: some slot of this warpgroup selected sub-tile e; mineBits: this warp's slot did.
      u32 wgBits = 0u, mineBits = 0u;
      int n0[SUB];
#if MASK_SELECT || MASK_FIRST
      int maxN0 = 0;  // first key of the step's largest tile (padding entries are tile 0)
#endif
#pragma unroll
      for (int e = 0; e < SUB; ++e) {
#if ENT_GLOBAL
        const u32 x = cur[e];
#else
        u32 x;
        asm volatile("ld.shared.u32 %0, [%1];" : "=r"(x) : "r"(sEnt + (st * SUB + e) * 4) : "memory");
#endif
        n0[e] = (int)(x & KEY_MASK) * TILE;
        wgBits |= (((x >> MASK_SHIFT) >> (4 * wg)) & 0xfu ? 1u : 0u) << e;
        mineBits |= ((x >> (MASK_SHIFT + slot)) & 1u) << e;
#if MASK_SELECT || MASK_FIRST
        maxN0 = max(maxN0, n0[e]);
#endif
      }
      wgBits = __shfl_sync(0xffffffffu, wgBits, 0);  // uniform in the warp's eyes (and in fact the group's)
#endif
#if ALL_COMPUTE
      wgBits = 1u;
#endif
      const bool turns = i < turnEnd;  // all warpgroups compute this step (or, OWN_TURNS, it is a paired own step): take turns
      if (wgBits != 0u) {
        if (pending) mbar_wait(fullV + 8 * pst, puse & 1);
        if (turns) named_bar_sync(1 + wg, TURN_THREADS);  // this warpgroup's turn to issue
        fence_proxy_async_shared();
        consumer_issue_products([&, st] { issueQK(sK + st * KV_TILE); }, pending, [&, pst] { issuePV(sV + pst * KV_TILE); });
        // The next one's turn (the last warpgroup's last arrival would have no matching wait).
        if (turns && ((CONSUMERS == 2 ? wg == 0 : wg != CONSUMERS - 1) || i + 1 < turnEnd)) named_bar_arrive(nextTurn, TURN_THREADS);
        float alpha[2];
        wgmma_wait<1>();
        wgmma_fence_operands(s);
        release(emptyK + 8 * st);
#if IDLE_WARPS
        // Warp-uniform (one slot per warp); the wgmma issues and waits stay outside the branch (a wait
        // in one of two correlated branches serialises the chain, C7514).
        const bool idle = mineBits == 0u;
        if (idle) {
          alpha[0] = alpha[1] = 1.f;
        } else {
#endif
#if MASK_FIRST
        // The selection, by selects on every step (no branch joins paths that wrote the scores).
        select_mine(s, mineBits);
        // Warp-uniform: some key of the step lies right of the warp's first row or past the cache. Then
        // the causal compares on every sub-tile: those left of the diagonal and inside the cache keep
        // their scores, unselected ones are -inf already.
        if (maxN0 + TILE - 1 > warpFirstPos || maxN0 + TILE > kvLen) {
#if ENT_BALLOT
          int n0[SUB];
          tile_first_keys(n0, entKey);
#endif
#pragma unroll
          for (int e = 0; e < SUB; ++e) flash_causal_mask16<BN / 8>(s, e, n0[e], warpFirstPos + g, kvLen, t4);
        }
#else
#if MASK_SELECT
        // Warp-uniform: some key of the step lies right of the warp's first row or past the cache.
        const bool causal = maxN0 + TILE - 1 > warpFirstPos || maxN0 + TILE > kvLen;
#endif
#if LEAN_MASK
        // Every sub-tile selected, the last (largest) one left of the warp's first row and inside the
        // cache: nothing to mask.
#if MASK_SELECT
        const bool clean = mineBits == (1u << SUB) - 1u && !causal;
#else
        const bool clean = mineBits == (1u << SUB) - 1u && n0[SUB - 1] + TILE - 1 <= warpFirstPos && n0[SUB - 1] + TILE <= kvLen;
#endif
        if (!clean) {
#endif
#if MASK_SELECT
        if (!causal) {
          // The selection alone: -inf where the warp's slot did not select the sub-tile, by selects.
          select_mine(s, mineBits);
        } else {
#if ENT_BALLOT
          int n0[SUB];  // the tiles' first keys, only where the causal loop needs them
          tile_first_keys(n0, entKey);
#endif
#endif
#if FLAT_CAUSAL
          // The causal step without a branch per sub-tile: the selection by selects, then the causal
          // compares on every sub-tile (they change nothing left of the warp's diagonal inside the cache).
          select_mine(s, mineBits);
#pragma unroll
          for (int e = 0; e < SUB; ++e) flash_causal_mask16<BN / 8>(s, e, n0[e], warpFirstPos + g, kvLen, t4);
#else
#pragma unroll
        for (int e = 0; e < SUB; ++e) {
          if ((mineBits >> e) & 1u) {
            if (n0[e] + TILE - 1 > warpFirstPos || n0[e] + TILE > kvLen) flash_causal_mask16<BN / 8>(s, e, n0[e], warpFirstPos + g, kvLen, t4);
          } else {
#pragma unroll
            for (int half = 0; half < 2; ++half) s[2 * e + half][0] = s[2 * e + half][1] = s[2 * e + half][2] = s[2 * e + half][3] = NEG_INF;
          }
        }
#endif
#if MASK_SELECT
        }
#endif
#if LEAN_MASK
        }
#endif
#endif  // MASK_FIRST
        flash_softmax_scores<BN / 8>(s, rowMax, rowSum, alpha, scaleLog2);
#if IDLE_WARPS
        }
#endif
        wgmma_wait<0>();
        wgmma_fence_operands(o);
        if (pending) release(emptyV + 8 * pst);
        flash_rescale_rows<D / 8>(o, alpha);
#if IDLE_WARPS
        if (idle) {
#pragma unroll
          for (int kk = 0; kk < BN / 16; ++kk) p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
        } else {
#pragma unroll
          for (int kk = 0; kk < BN / 16; ++kk) flash_p_fragment(s, kk, p[kk]);
        }
#else
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) flash_p_fragment(s, kk, p[kk]);
#endif
        pending = true;
        pst = st;
        puse = use;
#if DEFER_PV
        pstep = i;
#endif
      } else {
        // Nothing of this warpgroup here (a step of the others' tiles: no turns): the pending P·V
        // goes now (see the header), the stages are released once filled (an early arrival would
        // count towards the previous fill's release).
#if EARLY_K
        release(emptyK + 8 * st);  // K_i was waited for above; the flush below reads only V
#endif
#if DEFER_PV
        // Kept while the producer's next fill of its V stage (step pstep + S) is not this step's.
        if (pending && i - pstep >= S) {
          flushPV();
          pending = false;
        }
#else
        if (pending) flushPV();
        pending = false;
#endif
#if !EARLY_K
        release(emptyK + 8 * st);
#endif
        mbar_wait(fullV + 8 * st, use & 1);
        release(emptyV + 8 * st);
      }
      if (++st == S) { st = 0; ++use; }
    }
    if (pending) flushPV();
#if PERSISTENT
    // Every wgmma that read this item's Q tile has finished (flushPV and the steps' waits): free it.
    release(emptyQ2 + 8 * (round & 1));
    const int crE = it.cr, hE = it.h;
#else
    int crE, hE;
    block_sparse_cta_coords(H, Hkv, crE, hE);
#endif
    flash_store_rows<D / 8>(o, rowSum, out, crE * BM + 64 * wg + 16 * wl, g, t4, T, H, hE);
#if PERSISTENT
    }  // items
#endif
  }  // consumers (setmaxnreg needs the two roles as the two branches of one if/else)
}
