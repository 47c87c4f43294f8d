/**
 * Factories for the GPU methods that run on a shared kernel family: a model that family's kernels
 * cannot run is refused by every method over it for the same reason (unsupported), and create()
 * refuses it again, naming the method, before anything is allocated.
 *   segment-list decode:  quest, snapkv, ada_snapkv, sink_local_decode
 *   vertical-slash prefill kernels: vertical_and_slash, flexprefill, sink_local_prefill
 */
import type { ModelConfig } from '../../../engine/model-config.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import { segmentDecodeUnsupported } from '../kernels/segment-decode.js';
import { verticalSlashShapeProblem } from '../kernels/vertical-slash-estimate.js';
import type { CudaRuntime } from '../runtime.js';
import type {
  DeviceDecodeFactory, DeviceDecodeMethod, DeviceMethodOptions, DevicePrefillFactory, DevicePrefillMethod,
} from './contract.js';

/** A decode method over the segment-list decode kernel (build runs only for a model it supports). */
export function segmentDecodeFactory(
  methodId: string, build: (rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions) => DeviceDecodeMethod,
): DeviceDecodeFactory {
  return {
    methodId,
    unsupported(config) {
      return segmentDecodeUnsupported(config);
    },
    create(rt, config, options) {
      const problem = segmentDecodeUnsupported(config);
      if (problem) throw new Error(`${methodId} on the GPU: ${problem}`);
      return build(rt, config, options);
    },
  };
}

/** Why the vertical-slash estimate/index/attention kernels cannot run this model, or null. */
export function verticalSlashKernelsUnsupported(config: ModelConfig): string | null {
  if (config.attnLogitSoftcap !== null) return 'attention logit softcapping is not implemented in the vertical-slash kernels';
  return verticalSlashShapeProblem(prefillShapeOf(config));
}

/** A prefill method over the vertical-slash kernels (build runs only for a model they support). */
export function verticalSlashFamilyFactory(
  methodId: string, build: (rt: CudaRuntime, shape: PrefillShape, options: DeviceMethodOptions) => DevicePrefillMethod,
): DevicePrefillFactory {
  return {
    methodId,
    unsupported: verticalSlashKernelsUnsupported,
    create(rt, config, options) {
      const problem = verticalSlashKernelsUnsupported(config);
      if (problem) throw new Error(`${methodId}: ${problem}`);
      return build(rt, prefillShapeOf(config), options);
    },
  };
}

function prefillShapeOf(config: ModelConfig): PrefillShape {
  return { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim };
}
