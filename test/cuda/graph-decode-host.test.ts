/**
 * The plan's side of sparse decode steps replayed from the model's CUDA graph (issue 9), without a
 * GPU: PlanDeviceAttention.methodDecodeSteps offers a decode method's graphSteps to the model only for
 * methods that have them, prepares them only once every full layer's prompt is closed, routes the
 * recorded layers (full ones only) to the method, books each replay exactly as attend() books an
 * eager step (sliding layers windowed-dense, full layers the method's counts), and declares the
 * prepared steps stale once the plan starts another sequence or switches methods.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import type {
  DeviceDecodeCall, DeviceDecodeMethod, DeviceGraphDecodeLayerCall, DeviceGraphDecodeSetup, DeviceGraphDecodeSteps, DevicePrefillCall,
  DevicePrefillMethod,
} from '../../src/backends/cuda/methods/contract.js';
import { PlanDeviceAttention } from '../../src/backends/cuda/methods/plan.js';
import type { QueryWindowStore } from '../../src/backends/cuda/methods/query-window.js';
import type { HeadCounts } from '../../src/engine/attention.js';
import { parseModelConfig } from '../../src/engine/config.js';
import type { ModelConfig } from '../../src/engine/model-config.js';
import { tinyConfigJson } from '../helpers/tiny-checkpoint.js';

/** gemma3 tiny, 4 layers: 0 and 2 sliding, 1 and 3 full. */
function gemmaConfig(): ModelConfig {
  return parseModelConfig(tinyConfigJson('gemma3', { numLayers: 4 }));
}

const densePrefill: DevicePrefillMethod = {
  id: 'fake_prefill',
  requiresWholePrompt: false,
  prefill: (call: DevicePrefillCall): HeadCounts => ({ attended: new Float64Array(call.shape.numHeads), dense: new Float64Array(call.shape.numHeads) }),
};

/** A decode method whose step at p attends (layer + 1)·10 + p pairs per head, eagerly or in a graph. */
class GraphableDecode implements DeviceDecodeMethod {
  readonly id = 'fake_graph_decode';
  readonly observationWindow = 0;
  setups: Omit<DeviceGraphDecodeSetup, 'own'>[] = [];
  recorded: number[] = [];
  eagerSteps: number[] = [];
  /** Refuse graph steps before this position (as sink+local does while its sink grows). */
  constructor(private readonly fromPosition = 0) {}

  counts(layer: number, p: number, H: number): HeadCounts {
    return { attended: new Float64Array(H).fill((layer + 1) * 10 + p), dense: new Float64Array(H).fill(p + 1) };
  }
  decode(call: DeviceDecodeCall): HeadCounts {
    this.eagerSteps.push(call.layer);
    return this.counts(call.layer, call.position, call.shape.numHeads);
  }
  graphSteps(setup: DeviceGraphDecodeSetup): DeviceGraphDecodeSteps | null {
    if (setup.firstPosition < this.fromPosition) return null;
    this.setups.push({ shape: setup.shape, firstPosition: setup.firstPosition, capacity: setup.capacity });
    return {
      record: (call: DeviceGraphDecodeLayerCall) => void this.recorded.push(call.layer),
      counts: (layer, p) => this.counts(layer, p, setup.shape.numHeads),
    };
  }
}

const noWindow = (): QueryWindowStore => {
  throw new Error('no query window expected (observation window 0)');
};

/** A plan over gemma's 4 layers, driven as the model drives it: prompt chunks and eager decode steps. */
function setup(decode: DeviceDecodeMethod) {
  const config = gemmaConfig();
  const plan = new PlanDeviceAttention(config, { prefill: densePrefill, decode }, { sliding: { id: 'sliding', attend: () => {} }, newWindow: noWindow });
  const caches = config.layerTypes.map(() => ({ length: 0 }) as unknown as DeviceLayerKvCache);
  let position = 0;
  const forward = (T: number): void => {
    for (let l = 0; l < config.numLayers; l++) {
      caches[l].length += T;
      plan.attend({ layer: l, sliding: config.layerTypes[l] === 'sliding', q: 0n, qRowStride: 0, numQueries: T, queryStart: position, cache: caches[l], out: 0n });
    }
    position += T;
  };
  /** A new sequence at position 0 (the caller declares it on the plan). */
  const restart = (): void => {
    position = 0;
    for (const c of caches) c.length = 0;
  };
  return { config, plan, forward, restart, own: (): bigint => 4096n };
}

describe('sparse decode steps in the model\'s CUDA graph: the plan (no GPU)', () => {
  test('offered only for a decode method with graphSteps', () => {
    const eagerOnly: DeviceDecodeMethod = { id: 'eager_only', observationWindow: 0, decode: () => ({ attended: new Float64Array(4), dense: new Float64Array(4) }) };
    const { plan } = setup(eagerOnly);
    assert.equal(plan.methodDecodeSteps(), null);
    plan.use({ prefill: densePrefill, decode: new GraphableDecode() });
    assert.ok(plan.methodDecodeSteps());
  });

  test('prepared once every full layer\'s prompt is closed; replays booked as eager steps would be', () => {
    const decode = new GraphableDecode();
    const { config, plan, forward, own } = setup(decode);
    const H = config.numHeads;
    const source = plan.methodDecodeSteps()!;
    // Undeclared prompt: the prompt closes inside the first decode step, which must run eagerly.
    forward(10);
    assert.equal(source.prepare({ firstPosition: 10, capacity: 20, own }), null);
    forward(1);
    assert.deepEqual(decode.eagerSteps, [1, 3]);
    const steps = source.prepare({ firstPosition: 11, capacity: 20, own });
    assert.ok(steps);
    assert.deepEqual(decode.setups, [{ shape: { numHeads: H, numKvHeads: config.numKvHeads, headDim: config.headDim, scale: config.attentionScale }, firstPosition: 11, capacity: 20 }]);
    steps.record({ layer: 1, q: 0n, position: 0n, cache: {} as DeviceLayerKvCache, out: 0n });
    assert.throws(() => steps.record({ layer: 0, q: 0n, position: 0n, cache: {} as DeviceLayerKvCache, out: 0n }), /sliding layer/);
    assert.deepEqual(decode.recorded, [1]);

    // Two replays booked, against the same two steps run eagerly by a second plan.
    const before = plan.sequenceCounts();
    steps.book(11);
    steps.book(12);
    const graphed = plan.sequenceCounts();
    const eager = setup(new GraphableDecode());
    eager.forward(10);
    eager.forward(1);
    eager.forward(1);
    eager.forward(1);
    const eagerCounts = eager.plan.sequenceCounts();
    for (const field of ['attended', 'dense'] as const) {
      const delta = graphed.decode[field].map((x, i) => x - before.decode[field][i]);
      const eagerDelta = eagerCounts.decode[field].map((x, i) => x - before.decode[field][i]);
      assert.deepEqual(Array.from(delta), Array.from(eagerDelta), `decode ${field}`);
    }
    assert.deepEqual(Array.from(graphed.prefill.attended), Array.from(eagerCounts.prefill.attended));
  });

  test('a method that refuses a position leaves that step eager; stale after reset or another method', () => {
    const decode = new GraphableDecode(12);
    const { plan, forward, restart, own } = setup(decode);
    plan.startSequence(10);
    forward(10);
    const source = plan.methodDecodeSteps()!;
    assert.equal(source.prepare({ firstPosition: 10, capacity: 20, own }), null, 'the method refused position 10');
    const steps = source.prepare({ firstPosition: 12, capacity: 20, own })!;
    assert.ok(steps.isCurrent());
    plan.startSequence(5);
    restart();
    assert.equal(steps.isCurrent(), false, 'a new sequence drops the method state the graph read');
    const again = plan.methodDecodeSteps()!.prepare({ firstPosition: 12, capacity: 20, own });
    assert.equal(again, null, 'the new prompt is not closed yet');
    forward(5);
    const current = plan.methodDecodeSteps()!.prepare({ firstPosition: 12, capacity: 20, own })!;
    assert.ok(current.isCurrent());
    plan.use({ prefill: densePrefill, decode: new GraphableDecode() });
    assert.equal(current.isCurrent(), false);
  });
});
