/**
 * Dense causal attention behind the GPU method contract (contract.ts): the baseline every GPU method
 * is timed against, and the method a plan runs in the phase a sparse method does not cover. The
 * kernels are DenseDeviceAttention's (flash prefill, split-K decode, the small-head kernel for other
 * head dims); the counts are the CPU dense method's (src/methods/dense.ts): every visible pair is
 * attended, so attended = dense and achieved sparsity is 0.
 */
import { type HeadCounts, denseKeyCount, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { DenseDeviceAttention } from '../device-attention.js';
import type { CudaRuntime } from '../runtime.js';
import type {
  DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod, DeviceMethodOptions, DevicePrefillCall, DevicePrefillFactory,
  DevicePrefillMethod,
} from './contract.js';

/**
 * Per-head counts of dense causal attention for T queries at positions queryStart .. queryStart + T − 1
 * (`slidingWindow`: keys within the window only): attended = dense = Σ_t visible keys of query t.
 */
export function denseHeadCounts(numHeads: number, queryStart: number, numQueries: number, slidingWindow: number | null): HeadCounts {
  let pairs = 0;
  if (slidingWindow === null) {
    // Σ_{p = a}^{b} (p + 1) in closed form: long prompts need no loop.
    const a = queryStart, b = queryStart + numQueries - 1;
    pairs = ((b + 1) * (b + 2) - a * (a + 1)) / 2;
  } else {
    for (let t = 0; t < numQueries; t++) pairs += denseKeyCount(queryStart + t, slidingWindow);
  }
  const counts = emptyCounts(numHeads);
  counts.attended.fill(pairs);
  counts.dense.fill(pairs);
  return counts;
}

/** The rows attended must be exactly the positions so far: dense attention reads rows [0, kvLen). */
function checkCacheRows(what: string, layer: number, rows: number, expected: number): void {
  if (rows !== expected) {
    throw new Error(`dense ${what} (layer ${layer}): the cache holds ${rows} rows, expected ${expected} (a dense phase cannot follow eviction)`);
  }
}

export class DenseDevicePrefill implements DevicePrefillMethod {
  readonly id = 'dense';
  readonly requiresWholePrompt = false;

  constructor(private readonly kernels: DenseDeviceAttention) {}

  prefill(call: DevicePrefillCall): HeadCounts {
    checkCacheRows('prefill', call.layer, call.cache.length, call.queryStart + call.numQueries);
    this.kernels.attend({
      layer: call.layer, sliding: false, q: call.q, qRowStride: call.qRowStride, numQueries: call.numQueries,
      queryStart: call.queryStart, cache: call.cache, out: call.out,
    });
    return denseHeadCounts(call.shape.numHeads, call.queryStart, call.numQueries, null);
  }
}

export class DenseDeviceDecode implements DeviceDecodeMethod {
  readonly id = 'dense';
  readonly observationWindow = 0;

  constructor(private readonly kernels: DenseDeviceAttention) {}

  decode(call: DeviceDecodeCall): HeadCounts {
    checkCacheRows('decode', call.layer, call.cache.length, call.position + 1);
    const H = call.shape.numHeads;
    this.kernels.attend({
      layer: call.layer, sliding: false, q: call.q, qRowStride: H * call.shape.headDim, numQueries: 1,
      queryStart: call.position, cache: call.cache, out: call.out,
    });
    return denseHeadCounts(H, call.position, 1, null);
  }
}

/** Dense takes no parameters and sparsity 0 only (the CPU registry's resolution checked that). */
function checkDenseOptions(options: DeviceMethodOptions): void {
  if (options.sparsity !== undefined && options.sparsity !== 0) throw new Error(`dense: sparsity must be 0 (got ${options.sparsity})`);
  const names = Object.keys(options.params ?? {});
  if (names.length > 0) throw new Error(`dense: takes no parameters (got ${names.join(', ')})`);
}

export const densePrefillDeviceFactory: DevicePrefillFactory = {
  methodId: 'dense',
  unsupported: () => null, // the small-head kernel covers every head dim the model itself accepts
  create(rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions): DevicePrefillMethod {
    checkDenseOptions(options);
    return new DenseDevicePrefill(new DenseDeviceAttention(rt, config));
  },
};

export const denseDecodeDeviceFactory: DeviceDecodeFactory = {
  methodId: 'dense',
  unsupported: () => null,
  create(rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions): DeviceDecodeMethod {
    checkDenseOptions(options);
    return new DenseDeviceDecode(new DenseDeviceAttention(rt, config));
  },
};
