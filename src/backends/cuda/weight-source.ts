/**
 * Where the GPU model's weights come from. The model asks for each HF tensor by name and shape and
 * a device address to write it to as bf16 (fused matrices are filled part by part at offsets).
 *   StoreWeightSource   a checkpoint's WeightStore: stored bf16 bytes go up as they are; f16/f32
 *                       tensors are converted to bf16 once on the host
 *   RandomWeightSource  uniform random values made on the device (benchmarks of 7-8B shapes without
 *                       writing or reading 16 GB of files)
 */
import type { RawTensor } from '../../engine/safetensors.js';
import type { WeightStore } from '../../engine/weights.js';
import { toBf16 } from './bf16.js';
import type { DevicePtr } from './context.js';
import { ModelOpsKernels } from './kernels/model-ops.js';
import type { CudaRuntime } from './runtime.js';

export interface DeviceWeightSource {
  has(name: string): boolean;
  /** Writes tensor `name`, which must have `shape`, as bf16 at `dst` (queued or done on rt's stream). */
  write(name: string, shape: number[], dst: DevicePtr): void;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A store that can hand out tensors in their stored dtype (SafetensorsWeights). */
interface RawCapableStore extends WeightStore {
  getRaw(name: string): RawTensor;
}

function hasRaw(store: WeightStore): store is RawCapableStore {
  return typeof (store as Partial<RawCapableStore>).getRaw === 'function';
}

export class StoreWeightSource implements DeviceWeightSource {
  /** Tensors uploaded without conversion (stored bf16), and converted from f16/f32. */
  readonly counts = { raw: 0, converted: 0 };

  constructor(private readonly rt: CudaRuntime, private readonly store: WeightStore) {}

  has(name: string): boolean {
    return this.store.has(name);
  }

  write(name: string, shape: number[], dst: DevicePtr): void {
    if (hasRaw(this.store)) {
      const raw = this.store.getRaw(name);
      if (!sameShape(raw.shape, shape)) throw new Error(`tensor ${name} has shape [${raw.shape}], the config implies [${shape}]`);
      if (raw.dtype === 'BF16') {
        this.rt.cuda.upload(dst, raw.bytes);
        this.counts.raw++;
        return;
      }
    }
    const t = this.store.get(name);
    if (!sameShape(t.shape, shape)) throw new Error(`tensor ${name} has shape [${t.shape}], the config implies [${shape}]`);
    this.rt.cuda.upload(dst, toBf16(t.data));
    this.counts.converted++;
  }
}

/** Uniform random weights with the spreads the tiny test checkpoints use: unit-variance projections, norms near identity. */
export class RandomWeightSource implements DeviceWeightSource {
  private readonly ops: ModelOpsKernels;
  private next = 0;

  constructor(rt: CudaRuntime, private readonly seed: number, private readonly options: { normMean: number; hasLmHead: boolean }) {
    this.ops = new ModelOpsKernels(rt);
  }

  has(name: string): boolean {
    return name === 'lm_head.weight' ? this.options.hasLmHead : true;
  }

  write(name: string, shape: number[], dst: DevicePtr): void {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = name.endsWith('norm.weight');
    const isBias = name.endsWith('.bias');
    const std = isNorm ? 0.1 : isBias ? 0.1 : 1 / Math.sqrt(shape[shape.length - 1]);
    const mean = isNorm ? this.options.normMean : 0;
    this.ops.fillUniform({ x: dst, n, seed: (this.seed + 7919 * this.next++) | 0, mean, halfWidth: std * Math.sqrt(3) });
  }
}
