/**
 * Ada-SnapKV on the device (the CPU AdaSnapKvDecode, src/methods/ada-snapkv.ts, is the reference):
 * importance is the max over window queries and the group's heads; every KV head keeps its top
 * minimumPerHead rows, the rest of the layer budget goes to the highest remaining scores across heads
 * (adaptiveSelection's rule and tie order), so heads keep different counts. Compression and decode
 * are SnapKV's (EvictedDeviceDecode): the per-head counts come back to the host once per layer.
 */
import { adaSnapKvMethod, minimumPerHead } from '../../../methods/ada-snapkv.js';
import { resolveOptions } from '../../../methods/options.js';
import { type SnapKvSettings, parseSnapKv } from '../../../methods/snapkv-importance.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import type { CudaRuntime } from '../runtime.js';
import type { KeptRows } from '../kernels/snapkv.js';
import type { DeviceCompressCall, DeviceDecodeFactory } from './contract.js';
import { segmentDecodeFactory } from './kernel-family-factories.js';
import { EvictedDeviceDecode } from './snapkv.js';

export class AdaSnapKvDeviceDecode extends EvictedDeviceDecode {
  readonly id = 'ada_snapkv';

  constructor(rt: CudaRuntime, config: ModelConfig, settings: SnapKvSettings, readonly minHeadCapacityRatio: number) {
    super(rt, config, settings);
  }

  protected chooseRows(call: DeviceCompressCall, capacity: number): KeptRows {
    const n = call.promptLength;
    const minimum = minimumPerHead(this.settings, capacity, this.minHeadCapacityRatio, n);
    const pooled = this.importance(call, 'max');
    const kept = this.kernels.selectAdaptive(pooled.ptr, n, capacity, minimum);
    this.rt.pool.release(pooled);
    return kept;
  }
}

export const adaSnapKvDeviceFactory: DeviceDecodeFactory = segmentDecodeFactory('ada_snapkv', (rt, config, options) => {
  const resolved = resolveOptions(adaSnapKvMethod, options);
  return new AdaSnapKvDeviceDecode(rt, config, parseSnapKv('ada_snapkv', resolved), resolved.params.minHeadCapacityRatio as number);
});
