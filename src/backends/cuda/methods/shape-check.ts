/** A call's attention shape must be the one the method object was built for. */
import type { ModelConfig } from '../../../engine/model-config.js';
import type { PrefillShape } from '../kernels/flash-prefill.js';
import type { DeviceAttentionShape } from './contract.js';

export function assertShape(methodId: string, shape: DeviceAttentionShape, config: ModelConfig): void {
  if (shape.numHeads !== config.numHeads || shape.numKvHeads !== config.numKvHeads || shape.headDim !== config.headDim) {
    throw new Error(
      `${methodId}: call shape H=${shape.numHeads} Hkv=${shape.numKvHeads} D=${shape.headDim} differs from the model's ` +
      `H=${config.numHeads} Hkv=${config.numKvHeads} D=${config.headDim}`,
    );
  }
}

/** The prefill form: `built` is the shape the method's kernels were made for. */
export function assertPrefillShape(methodId: string, layer: number, shape: DeviceAttentionShape, built: PrefillShape): void {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = built;
  if (shape.numHeads !== H || shape.numKvHeads !== Hkv || shape.headDim !== D) {
    throw new Error(`${methodId} (layer ${layer}): call shape differs from the method's ${H}/${Hkv}/${D}`);
  }
}
