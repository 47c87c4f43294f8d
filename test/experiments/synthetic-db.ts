/**
 * Builds a results database the way the runner will, with planted scores instead of a model: used
 * by the analysis and report tests. Two model sizes, two tasks, two lengths, one prefill and one
 * decode method at three sparsities. Dense accuracy rises with model size; sparse examples flip
 * from right to wrong with a probability that grows with sparsity (none at s = 0.5).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FlopsModelShape, densePrefillPairs, denseDecodePairs, decodeSteps, exampleFlops } from '../../src/experiments/flops.js';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { expandExperiment, parseExperimentSpec } from '../../src/experiments/spec.js';

export function shape(hidden: number, layers: number): FlopsModelShape {
  return {
    vocabSize: 1000, hiddenSize: hidden, intermediateSize: hidden * 3, numLayers: layers, numHeads: 4, numKvHeads: 2,
    headDim: hidden / 4, layerTypes: Array.from({ length: layers }, () => 'full' as const), slidingWindow: null, tieWordEmbeddings: false,
  };
}

/** Deterministic uniform [0, 1) from integers (a small hash; good enough for planted data). */
export function hashUniform(...xs: number[]): number {
  let h = 2166136261;
  for (const x of xs) {
    h ^= x & 0xffff;
    h = Math.imul(h, 16777619);
    h ^= x >>> 16;
    h = Math.imul(h, 16777619);
  }
  h ^= h >>> 13;
  h = Math.imul(h, 0x5bd1e995);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

export const SYNTHETIC_SPEC = {
  name: 'synthetic',
  models: [{ path: 'models/small', name: 'small' }, { path: 'models/large', name: 'large' }],
  tasks: ['niah', 'qa_squad'],
  lengths: [4096, 8192],
  sparsities: [0.5, 0.8, 0.95],
  methods: ['vertical_and_slash', 'quest'],
  examples: 24,
  generation: { maxNewTokens: 32 },
};

export function buildSyntheticDb(dir = mkdtempSync(join(tmpdir(), 'sf-synth-'))): { dir: string; db: ResultsDb } {
  const spec = parseExperimentSpec(SYNTHETIC_SPEC);
  const configs = expandExperiment(spec);
  const db = ResultsDb.openDir(dir);
  const shapes: Record<string, FlopsModelShape> = { small: shape(64, 4), large: shape(128, 8) };
  for (const [name, s] of Object.entries(shapes)) db.recordModel(name, `models/${name}`, s);
  db.registerConfigurations(configs);
  const runId = db.startRun(spec);
  const denseAccuracy: Record<string, number> = { small: 0.55, large: 0.85 };
  configs.forEach((c) => {
    const s = c.requestedSparsity ?? 0;
    const shp = shapes[c.model.name];
    for (let i = 0; i < c.examples; i++) {
      const taskId = c.task.length;
      const denseRight = hashUniform(i, taskId, c.length, c.model.name.length) < denseAccuracy[c.model.name];
      // Flip probability: 0 at s ≤ 0.5, then growing; decode tolerates more than prefill.
      const flipP = Math.max(0, s - 0.5) * (c.phase === 'decode' ? 0.8 : 1.6);
      const flipped = denseRight && hashUniform(i, taskId, c.length, 7, Math.round(s * 1000)) < flipP;
      const score = c.task === 'qa_squad' && i === 0 ? null : denseRight && !flipped ? 1 : 0;
      const inputTokens = c.length - 10;
      const outputTokens = 12;
      const prefillDense = densePrefillPairs(shp, inputTokens);
      const decodeDense = denseDecodePairs(shp, inputTokens, decodeSteps(outputTokens));
      const prefillAttended = c.phase === 'prefill' ? prefillDense * (1 - s) : prefillDense;
      const decodeAttended = c.phase === 'decode' ? decodeDense * (1 - s) : decodeDense;
      db.record({
        configKey: c.key, exampleIndex: i, runId, promptHash: `p${c.task}${c.length}${i}`, output: score ? 'right' : 'wrong',
        gold: 'right', score, metric: 'accuracy', inputTokens, outputTokens, goldTokens: 1,
        prefill: { attendedPairs: prefillAttended, densePairs: prefillDense },
        decode: { attendedPairs: decodeAttended, densePairs: decodeDense },
        flops: exampleFlops(shp, {
          inputTokens, outputTokens, prefillAttendedPairs: prefillAttended, decodeAttendedPairs: decodeAttended,
          prefillEstimationFlops: c.phase === 'prefill' ? 1e6 : 0,
        }),
        prefillMs: 10, decodeMs: 5,
      });
    }
  });
  return { dir, db };
}
