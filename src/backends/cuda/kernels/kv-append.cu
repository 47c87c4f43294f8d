// Appends T tokens' keys and values to a per-KV-head cache (the layout every attention kernel here
// reads, and the engine's LayerKvCache uses on the CPU): token t of head h lands in row startRow + t.
//   kSrc, vSrc     : rows srcRowStride elements apart; token t's key of head h at kSrc[t * srcRowStride
//                    + h * D], its value likewise in vSrc (pointers into fused qkv projection rows, or
//                    packed [T, Hkv, D] arrays with stride Hkv * D)
//   kCache, vCache : [Hkv, capacity, D] bf16
// One thread per 16 bytes; strides and offsets are multiples of 8 elements (the launcher checks).
// model-ops.cu's rope_append_at does a decode step's bias, RoPE and append in one launch.
#include "common.cuh"

namespace {
struct alignas(16) Chunk16 {
  u32 w[4];
};
}  // namespace

extern "C" __global__ void __launch_bounds__(256) kv_append(
    const bf16_t* __restrict__ kSrc, const bf16_t* __restrict__ vSrc, bf16_t* __restrict__ kCache,
    bf16_t* __restrict__ vCache, int T, int Hkv, int D, int srcRowStride, int capacity, int startRow) {
  const int chunks = D >> 3;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)T * Hkv * chunks) return;
  const int c = idx % chunks;
  const size_t th = idx / chunks;
  const int h = th % Hkv;
  const int t = th / Hkv;
  const size_t from = (size_t)t * srcRowStride + (size_t)h * D + c * 8;
  const size_t to = ((size_t)h * capacity + startRow + t) * D + c * 8;
  *reinterpret_cast<Chunk16*>(kCache + to) = *reinterpret_cast<const Chunk16*>(kSrc + from);
  *reinterpret_cast<Chunk16*>(vCache + to) = *reinterpret_cast<const Chunk16*>(vSrc + from);
}

// One token (a decode step inside a captured graph): as kv_append with T = 1, the row read on the
// device from *rowDev (the new token's position), so one graph serves every step. Grid covers
// Hkv * D / 8 threads.
extern "C" __global__ void __launch_bounds__(256) kv_append_at(
    const bf16_t* __restrict__ kSrc, const bf16_t* __restrict__ vSrc, bf16_t* __restrict__ kCache,
    bf16_t* __restrict__ vCache, const int* __restrict__ rowDev, int Hkv, int D, int capacity) {
  const int chunks = D >> 3;
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= Hkv * chunks) return;
  const int row = *rowDev;
  if (row < 0 || row >= capacity) return;  // the host checks capacity before each replay
  const int c = idx % chunks, h = idx / chunks;
  const size_t from = (size_t)h * D + c * 8;
  const size_t to = ((size_t)h * capacity + row) * D + c * 8;
  *reinterpret_cast<Chunk16*>(kCache + to) = *reinterpret_cast<const Chunk16*>(kSrc + from);
  *reinterpret_cast<Chunk16*>(vCache + to) = *reinterpret_cast<const Chunk16*>(vSrc + from);
}
