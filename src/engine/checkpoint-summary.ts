/**
 * What a checkpoint is, in numbers: shape of the network, context length, parameter counts and
 * storage dtype. Parameter counts come from the tensors the model reads (expectedTensors), so a
 * multimodal checkpoint counts only its language model and a tied output projection counts once.
 */
import type { LayerType, ModelConfig, RopeParameters } from './model-config.js';
import { expectedTensors } from './weight-layout.js';

export interface ParameterCounts {
  /** All parameters the language model reads (tied embedding counted once). */
  total: number;
  /** Input embedding table. */
  embedding: number;
  /** Separate output projection (0 when tied to the embedding). */
  lmHead: number;
  /** total − embedding − lmHead: the transformer blocks and the final norm. */
  nonEmbedding: number;
}

export interface CheckpointSummary {
  architecture: string;
  hfArchitecture: string;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  contextLength: number;
  params: ParameterCounts;
  /** config.json's dtype and the dtypes actually stored. */
  configDtype: string;
  storedDtypes: string[];
  /** Run-length form of the layer types, e.g. "(5 sliding, 1 full) × 4, 2 sliding"; "26 full" when uniform. */
  layerPattern: string;
  slidingWindow: number | null;
  ropeTheta: number;
  ropeScaling: string;
  /** RoPE of sliding layers when it differs from the global one (Gemma 3), else null. */
  ropeLocal: string | null;
  tiedEmbeddings: boolean;
}

export function countParameters(config: ModelConfig): ParameterCounts {
  let total = 0;
  let embedding = 0;
  let lmHead = 0;
  for (const spec of expectedTensors(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    total += n;
    if (spec.role === 'embedding') embedding += n;
    if (spec.role === 'lm_head') lmHead += n;
  }
  return { total, embedding, lmHead, nonEmbedding: total - embedding - lmHead };
}

/** Compress per-layer types into runs, folding a repeated group ("(5 sliding, 1 full) × 4"). */
export function describeLayerPattern(types: LayerType[]): string {
  if (types.length === 0) return 'no layers';
  const runs: [LayerType, number][] = [];
  for (const t of types) {
    const last = runs[runs.length - 1];
    if (last && last[0] === t) last[1]++;
    else runs.push([t, 1]);
  }
  const show = (r: [LayerType, number][]) => r.map(([t, n]) => `${n} ${t}`).join(', ');
  if (runs.length <= 2) return show(runs);
  // Look for the shortest period of runs that repeats from the start.
  for (let period = 2; period <= runs.length / 2; period++) {
    let repeats = 1;
    while (
      (repeats + 1) * period <= runs.length &&
      runs.slice(repeats * period, (repeats + 1) * period).every((r, i) => r[0] === runs[i][0] && r[1] === runs[i][1])
    ) repeats++;
    if (repeats >= 2) {
      const rest = runs.slice(repeats * period);
      return `(${show(runs.slice(0, period))}) × ${repeats}${rest.length ? `, ${show(rest)}` : ''}`;
    }
  }
  return show(runs);
}

function describeRope(rope: RopeParameters): string {
  const s = rope.scaling;
  switch (s.kind) {
    case 'none':
      return 'none';
    case 'linear':
      return `linear ×${s.factor}`;
    case 'llama3':
      return `llama3 ×${s.factor} (low ${s.lowFreqFactor}, high ${s.highFreqFactor}, original ${s.originalMaxPositionEmbeddings})`;
  }
}

export function checkpointSummary(config: ModelConfig, storedDtypes: string[] = []): CheckpointSummary {
  return {
    architecture: config.architecture,
    hfArchitecture: config.hfArchitecture,
    layers: config.numLayers,
    heads: config.numHeads,
    kvHeads: config.numKvHeads,
    headDim: config.headDim,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    vocabSize: config.vocabSize,
    contextLength: config.maxPositionEmbeddings,
    params: countParameters(config),
    configDtype: config.torchDtype,
    storedDtypes,
    layerPattern: describeLayerPattern(config.layerTypes),
    slidingWindow: config.slidingWindow,
    ropeTheta: config.rope.theta,
    ropeScaling: describeRope(config.rope),
    ropeLocal: config.ropeLocal === config.rope ? null : `theta ${config.ropeLocal.theta}, scaling ${describeRope(config.ropeLocal)}`,
    tiedEmbeddings: config.tieWordEmbeddings,
  };
}

/** 1234567 → "1.23M"; exact counts stay available in the summary object. */
export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Two-column text table of a summary; `extraRows` are appended (label, value). */
export function formatSummaryTable(s: CheckpointSummary, dir?: string, extraRows: [string, string][] = []): string {
  const rows: [string, string][] = [];
  if (dir) rows.push(['checkpoint', dir]);
  rows.push(
    ['architecture', `${s.architecture} (${s.hfArchitecture})`],
    ['layers', String(s.layers)],
    ['query heads', String(s.heads)],
    ['KV heads', `${s.kvHeads} (group ${s.heads / s.kvHeads})`],
    ['head dim', String(s.headDim)],
    ['hidden size', String(s.hiddenSize)],
    ['MLP size', String(s.intermediateSize)],
    ['vocabulary', String(s.vocabSize)],
    ['context length', String(s.contextLength)],
    ['parameters', `${humanCount(s.params.total)} (${s.params.total})`],
    ['non-embedding', `${humanCount(s.params.nonEmbedding)} (${s.params.nonEmbedding})`],
    ['embedding', `${humanCount(s.params.embedding)}${s.tiedEmbeddings ? ', tied to the output' : `, output ${humanCount(s.params.lmHead)}`}`],
    ['dtype', `${s.configDtype} in config${s.storedDtypes.length ? `, stored ${s.storedDtypes.join('+')}` : ''}`],
    ['layers by type', s.layerPattern],
    ['sliding window', s.slidingWindow === null ? 'none' : String(s.slidingWindow)],
    ['RoPE', `theta ${s.ropeTheta}, scaling ${s.ropeScaling}${s.ropeLocal === null ? '' : `; sliding layers: ${s.ropeLocal}`}`],
    ...extraRows,
  );
  const width = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\n`;
}
