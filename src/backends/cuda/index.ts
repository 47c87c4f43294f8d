/**
 * The CUDA backend's public surface. Import from here; nothing else in the project needs the driver
 * layer. Every entry point needs a device: check isCudaAvailable() (and cudaUnavailableReason())
 * first, or catch CudaUnavailableError.
 *
 * Tensors live in device memory as raw bf16 words, row-major, shapes stated at each launcher:
 *   attention q/out [T, H, D], KV cache [Hkv, kvStride, D] (per-KV-head contiguous rows, as
 *   src/engine/kv-cache.ts), linear weights [N, K] (HF layout).
 */
export { cudaUnavailableReason, isCudaAvailable, probeCuda } from './availability.js';
export { CudaError, CudaUnavailableError } from './driver/check.js';
export { CudaRuntime } from './runtime.js';
export type { DeviceInfo, DevicePtr, StreamHandle } from './context.js';
export type { DeviceBuffer } from './memory-pool.js';
export { FlashPrefill, DEFAULT_PREFILL_TILING, causalPrefillFlops } from './kernels/flash-prefill.js';
export type { FlashPrefillArgs, PrefillShape, PrefillTiling } from './kernels/flash-prefill.js';
export { DecodeAttentionKernel, decodeBytes } from './kernels/decode-attention.js';
export type { DecodeArgs, DecodePlan, DecodeShape } from './kernels/decode-attention.js';
export { ElementwiseKernels } from './kernels/elementwise.js';
export { DeviceLayerKvCache } from './kv-cache.js';
export type { KvSource } from './kv-cache.js';
export { Cublas } from './cublas.js';
export type { LinearArgs } from './cublas.js';
export { downloadBf16, downloadF32, poisonedBf16, poisonedF32, uploadAsBf16 } from './transfer.js';
export { timeGraphOnDevice, timeOnDevice } from './timing.js';
export { fromBf16, toBf16 } from './bf16.js';
export { ModelOpsKernels } from './kernels/model-ops.js';
export type { GatedActivation } from './kernels/model-ops.js';
export { SmallHeadAttention } from './kernels/small-head-attention.js';
export { CudaTransformerModel, CudaSequence } from './model.js';
export type { DeviceLogitRows } from './model.js';
export { DenseDeviceAttention } from './device-attention.js';
export type { DeviceAttention, DeviceAttentionCall } from './device-attention.js';
export { RandomWeightSource, StoreWeightSource } from './weight-source.js';
export type { DeviceWeightSource } from './weight-source.js';
export { generateTextOnDevice, generateTokensOnDevice } from './generate.js';
export type { DeviceGenerateOptions } from './generate.js';
