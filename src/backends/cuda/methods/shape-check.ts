/** A decode call's attention shape must be the one the method object was built for. */
import type { ModelConfig } from '../../../engine/model-config.js';
import type { DeviceAttentionShape } from './contract.js';

export function assertShape(methodId: string, shape: DeviceAttentionShape, config: ModelConfig): void {
  if (shape.numHeads !== config.numHeads || shape.numKvHeads !== config.numKvHeads || shape.headDim !== config.headDim) {
    throw new Error(
      `${methodId}: call shape H=${shape.numHeads} Hkv=${shape.numKvHeads} D=${shape.headDim} differs from the model's ` +
      `H=${config.numHeads} Hkv=${config.numKvHeads} D=${config.headDim}`,
    );
  }
}
