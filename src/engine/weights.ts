/**
 * Named weight tensors of a checkpoint, as the model code reads them: HF tensor names
 * (model.layers.0.self_attn.q_proj.weight, ...), values converted to float32 on read.
 * Implementations read lazily from safetensors files (see safetensors.ts) or hold tensors in memory
 * (tests build random ones).
 */
export interface WeightTensor {
  /** Row-major shape, as stored (Linear weights are [out_features, in_features]). */
  shape: number[];
  data: Float32Array;
}

export interface WeightStore {
  names(): string[];
  has(name: string): boolean;
  /** The tensor as float32; throws an error naming the tensor when it is missing. */
  get(name: string): WeightTensor;
}

/** A WeightStore over tensors already in memory. */
export class InMemoryWeights implements WeightStore {
  constructor(private readonly tensors: Map<string, WeightTensor>) {}
  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  get(name: string): WeightTensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`missing tensor in checkpoint: ${name}`);
    return t;
  }
}
