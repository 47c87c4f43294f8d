// SnapKV and Ada-SnapKV compression on the device (src/methods/snapkv-importance.ts, snapkv.ts and
// ada-snapkv.ts are the reference), after prefill, once per layer:
//   snap_window_stats : softmax statistics (max, exp-sum; log2 domain) of every window query row
//                       (causal inside the window) over its split of the prompt keys.
//   snap_window_scores: the softmax weights again, now normalised, reduced per key over the block's
//                       queries (sum for 'mean', max for 'max'): one partial per (query block, key).
//   snap_reduce_partials: per KV head and key, partials summed (/ g: mean over the group's heads) or maxed.
//   snap_pool_force   : average pool (kernel K, stride 1, zeros counted), forced tokens set to +inf.
//   snap_select_rows  : per row of scores the top k (ties: lower index) in ascending order, as row
//                       indices, as a mask, or both; with a skip mask (Ada-SnapKV's second round).
//   snap_write_segments: the segment list [0, keep_h) per KV head for segment-decode.cu.
//   snap_gather_rows / snap_place_rows: kept rows of K and V into scratch, then into rows [0, keep_h)
//                       (two steps: an in-place gather would overwrite rows still to be read).
// Thread = one window query (row i of the window, query head h of the group); a block holds 128 of
// a KV head's g·W queries, row-major by window row then head, and streams 64-key tiles through
// shared memory (fp32); the grid also splits the keys so that a short window still fills the device.
//
// Layouts:
//   windowQ  : [W, H, D] bf16, row i at position n - W + i      k : [Hkv, kvStride, D] bf16
//   stats    : [keySplits, H, W] float2 (max, sum)              impPart : [qBlocks, Hkv, n] fp32
//   imp, pooled : [Hkv, n] fp32
// Codegen parameter (-D): HEAD_DIM (64 or 128).
#include "common.cuh"
#include "top-k.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif

namespace {
constexpr int D = HEAD_DIM;
constexpr int QUERIES = 128;  // window queries per block (threads)
constexpr int TILE = 64;      // keys per shared-memory tile
constexpr int SELECT_THREADS = 1024;
static_assert(D == 64 || D == 128, "HEAD_DIM must be 64 or 128");

struct QueryOfThread {
  bool valid;
  int row;   // window row
  int head;  // query head
  int pos;   // its position: keys [0, pos] are visible
};

__device__ __forceinline__ QueryOfThread query_of_thread(int g, int W, int n) {
  const int qi = blockIdx.x * QUERIES + threadIdx.x;
  QueryOfThread t;
  t.valid = qi < g * W;
  t.row = t.valid ? qi / g : 0;
  t.head = blockIdx.y * g + (t.valid ? qi % g : 0);
  t.pos = n - W + t.row;
  return t;
}

// Keys this block may need: its split's range, cut at the last visible key of its last query.
__device__ __forceinline__ void block_key_range(int g, int W, int n, int keyChunk, int& lo, int& hi) {
  const int lastQi = min(g * W, (blockIdx.x + 1) * QUERIES) - 1;
  const int lastPos = n - W + lastQi / g;
  lo = blockIdx.z * keyChunk;
  hi = min(min(n, lo + keyChunk), lastPos + 1);
}

__device__ __forceinline__ void load_query(const bf16_t* windowQ, const QueryOfThread& t, int H, float scaleLog2, float* qf) {
  const bf16_t* src = windowQ + ((size_t)t.row * H + t.head) * D;
#pragma unroll
  for (int d = 0; d < D; ++d) qf[d] = t.valid ? bf16_to_f32(src[d]) * scaleLog2 : 0.f;
}

// keys [tileStart, tileStart + TILE) of KV head hk into shared memory as fp32 (rows past hi: zeros).
__device__ __forceinline__ void load_tile(const bf16_t* k, int hk, int kvStride, int tileStart, int hi, float (*kt)[D]) {
  constexpr int VECS = TILE * D / 8;
  for (int c = threadIdx.x; c < VECS; c += QUERIES) {
    const int r = c / (D / 8), part = c % (D / 8);
    const int key = tileStart + r;
    uint4 raw = make_uint4(0u, 0u, 0u, 0u);
    if (key < hi) raw = *reinterpret_cast<const uint4*>(k + ((size_t)hk * kvStride + key) * D + part * 8);
    const u32 w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      kt[r][part * 8 + 2 * i] = __uint_as_float(w[i] << 16);
      kt[r][part * 8 + 2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
}

__device__ __forceinline__ float dot_row(const float* qf, const float* kr) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma unroll
  for (int d = 0; d < D; d += 4) {
    const float4 kv = *reinterpret_cast<const float4*>(kr + d);
    s0 = fmaf(qf[d], kv.x, s0);
    s1 = fmaf(qf[d + 1], kv.y, s1);
    s2 = fmaf(qf[d + 2], kv.z, s2);
    s3 = fmaf(qf[d + 3], kv.w, s3);
  }
  return (s0 + s1) + (s2 + s3);
}
}  // namespace

// grid (qBlocks, Hkv, keySplits), block (QUERIES).
extern "C" __global__ void __launch_bounds__(QUERIES) snap_window_stats(
    const bf16_t* __restrict__ windowQ, const bf16_t* __restrict__ k, float2* __restrict__ stats,
    int H, int g, int W, int n, int kvStride, int keyChunk, float scaleLog2) {
  __shared__ __align__(16) float kt[TILE][D];
  const QueryOfThread t = query_of_thread(g, W, n);
  float qf[D];
  load_query(windowQ, t, H, scaleLog2, qf);
  int lo, hi;
  block_key_range(g, W, n, keyChunk, lo, hi);
  float m = NEG_INF, l = 0.f;
  for (int tileStart = lo; tileStart < hi; tileStart += TILE) {
    __syncthreads();
    load_tile(k, blockIdx.y, kvStride, tileStart, hi, kt);
    __syncthreads();
    const int keys = min(TILE, min(hi, t.pos + 1) - tileStart);
    for (int j = 0; j < keys; ++j) {
      const float s = dot_row(qf, kt[j]);
      if (s > m) {
        l = l * fast_exp2(m - s) + 1.f;
        m = s;
      } else {
        l += fast_exp2(s - m);
      }
    }
  }
  if (t.valid) stats[((size_t)blockIdx.z * H + t.head) * W + t.row] = make_float2(m, l);
}

// grid (qBlocks, Hkv, keySplits), block (QUERIES). mode 0: sum ('mean'), 1: max.
extern "C" __global__ void __launch_bounds__(QUERIES) snap_window_scores(
    const bf16_t* __restrict__ windowQ, const bf16_t* __restrict__ k, const float2* __restrict__ stats, float* __restrict__ impPart,
    int H, int g, int W, int n, int kvStride, int keyChunk, int keySplits, float scaleLog2, int mode) {
  __shared__ __align__(16) float kt[TILE][D];
  __shared__ float red[QUERIES / 32][TILE];
  const QueryOfThread t = query_of_thread(g, W, n);
  float qf[D];
  load_query(windowQ, t, H, scaleLog2, qf);
  // The row's softmax statistics over all keys, merged from the splits.
  float m = NEG_INF, l = 0.f;
  if (t.valid) {
    for (int s = 0; s < keySplits; ++s) m = fmaxf(m, stats[((size_t)s * H + t.head) * W + t.row].x);
    for (int s = 0; s < keySplits; ++s) {
      const float2 st = stats[((size_t)s * H + t.head) * W + t.row];
      if (st.x != NEG_INF) l += st.y * fast_exp2(st.x - m);
    }
  }
  const float invL = t.valid ? 1.f / l : 0.f;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int lo, hi;
  block_key_range(g, W, n, keyChunk, lo, hi);
  for (int tileStart = lo; tileStart < hi; tileStart += TILE) {
    __syncthreads();
    load_tile(k, blockIdx.y, kvStride, tileStart, hi, kt);
    __syncthreads();
    const int keys = min(TILE, hi - tileStart);
    for (int j = 0; j < keys; ++j) {
      const float s = dot_row(qf, kt[j]);
      float w = (t.valid && tileStart + j <= t.pos) ? fast_exp2(s - m) * invL : 0.f;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        const float o = __shfl_xor_sync(0xffffffffu, w, off);
        w = mode == 0 ? w + o : fmaxf(w, o);
      }
      if (lane == 0) red[warp][j] = w;
    }
    __syncthreads();
    if (threadIdx.x < keys) {
      float w = red[0][threadIdx.x];
#pragma unroll
      for (int i = 1; i < QUERIES / 32; ++i) w = mode == 0 ? w + red[i][threadIdx.x] : fmaxf(w, red[i][threadIdx.x]);
      impPart[((size_t)blockIdx.x * gridDim.y + blockIdx.y) * n + tileStart + threadIdx.x] = w;
    }
  }
}

// grid (ceil(Hkv·n / 256)), block (256). Keys no block of a query block reached (past its last
// query's position) hold no partial: they get weight 0 there.
extern "C" __global__ void snap_reduce_partials(const float* __restrict__ impPart, float* __restrict__ imp, int Hkv, int n, int W, int g,
                                                int qBlocks, int mode) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Hkv * n) return;
  const int key = i % n;
  float acc = 0.f;
  for (int b = 0; b < qBlocks; ++b) {
    const int lastQi = min(g * W, (b + 1) * QUERIES) - 1;
    if (key > n - W + lastQi / g) continue;
    const float x = impPart[(size_t)b * Hkv * n + i];
    acc = mode == 0 ? acc + x : fmaxf(acc, x);
  }
  imp[i] = mode == 0 ? acc / (float)g : acc;
}

// grid (ceil(n / 256), Hkv), block (256).
extern "C" __global__ void snap_pool_force(const float* __restrict__ imp, float* __restrict__ pooled, int n, int kernelSize,
                                           int prefixTokens, int localWindow) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const float* row = imp + (size_t)blockIdx.y * n;
  float out;
  if (j < prefixTokens || j >= n - localWindow) {
    out = __int_as_float(0x7f800000);
  } else {
    const int half = kernelSize >> 1;
    float s = 0.f;
    for (int t = max(0, j - half); t < min(n, j + half + 1); ++t) s += row[t];
    out = s / (float)kernelSize;
  }
  pooled[(size_t)blockIdx.y * n + j] = out;
}

// grid (units), block (SELECT_THREADS). Row u: scores[u·scoreStride .. + n). Elements with
// skip[u·maskStride + i] == skipValue are not candidates (skip may be null). Takes the top k; writes
// idx[u·idxStride + rank] = i (if idx), setMask[u·maskStride + i] = 1 (if setMask), counts[u] (if counts).
extern "C" __global__ void __launch_bounds__(SELECT_THREADS) snap_select_rows(
    const float* __restrict__ scores, int scoreStride, int n, int k, const unsigned char* skip, int skipValue, unsigned char* setMask,
    int maskStride, int* __restrict__ idx, int idxStride, int* __restrict__ counts) {
  __shared__ TopKShared sh;
  const int u = blockIdx.x;
  const float* row = scores + (size_t)u * scoreStride;
  const unsigned char* skipRow = skip ? skip + (size_t)u * maskStride : nullptr;
  auto keyOf = [&](int i) -> u32 {
    if (skipRow && skipRow[i] == (unsigned char)skipValue) return 0u;
    return topk_order_key(row[i]);
  };
  auto emit = [&](int i, int rank) {
    if (idx) idx[(size_t)u * idxStride + rank] = i;
    if (setMask) setMask[(size_t)u * maskStride + i] = 1;
  };
  const TopKCut cut = topk_cut<SELECT_THREADS>(n, k, keyOf, sh);
  const int taken = topk_emit<SELECT_THREADS>(n, cut, keyOf, emit, sh);
  if (counts && threadIdx.x == 0) counts[u] = taken;
}

// grid (1), block (32·ceil(Hkv / 32)): list [0, counts[h]) per KV head.
extern "C" __global__ void snap_write_segments(const int* __restrict__ counts, int* __restrict__ segs, int segStride, int Hkv) {
  const int h = threadIdx.x;
  if (h >= Hkv) return;
  int* list = segs + (size_t)h * segStride;
  list[0] = 1;
  list[1] = counts[h];
  list[2] = counts[h];  // one segment: uniform
  list[3] = 0;
  list[4] = 0;
  list[5] = 0;
}

// grid (ceil(maxKeep·D/8 / 256), Hkv), block (256): scratch[h, r] = cache[h, idx[h, r]] for r < counts[h].
extern "C" __global__ void snap_gather_rows(const bf16_t* __restrict__ k, const bf16_t* __restrict__ v, const int* __restrict__ idx,
                                            const int* __restrict__ counts, bf16_t* __restrict__ sk, bf16_t* __restrict__ sv,
                                            int kvStride, int idxStride, int maxKeep) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int h = blockIdx.y;
  const int r = c / (D / 8), part = c % (D / 8);
  if (r >= counts[h]) return;
  const int src = idx[(size_t)h * idxStride + r];
  const size_t from = ((size_t)h * kvStride + src) * D + part * 8;
  const size_t to = ((size_t)h * maxKeep + r) * D + part * 8;
  *reinterpret_cast<uint4*>(sk + to) = *reinterpret_cast<const uint4*>(k + from);
  *reinterpret_cast<uint4*>(sv + to) = *reinterpret_cast<const uint4*>(v + from);
}

// Same grid: cache[h, r] = scratch[h, r] for r < counts[h].
extern "C" __global__ void snap_place_rows(bf16_t* __restrict__ k, bf16_t* __restrict__ v, const int* __restrict__ counts,
                                           const bf16_t* __restrict__ sk, const bf16_t* __restrict__ sv, int kvStride, int maxKeep) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int h = blockIdx.y;
  const int r = c / (D / 8), part = c % (D / 8);
  if (r >= counts[h]) return;
  const size_t from = ((size_t)h * maxKeep + r) * D + part * 8;
  const size_t to = ((size_t)h * kvStride + r) * D + part * 8;
  *reinterpret_cast<uint4*>(k + to) = *reinterpret_cast<const uint4*>(sk + from);
  *reinterpret_cast<uint4*>(v + to) = *reinterpret_cast<const uint4*>(sv + from);
}
