/**
 * What Block-Sparse's chunk size costs in attention, on a trained model's own activations (CPU, no GPU):
 * the CPU engine's dense prefill of one task prompt (default the model organism, niah at 4K) records
 * every layer's rotated queries and keys; for each target s and each chunk size c (16, the SPEC's, and
 * 64, one list per wgmma warpgroup) the CPU method's selection on them, and its **attention recall**:
 * the share of each query's dense softmax mass that falls on the keys the selection keeps (1 = nothing
 * lost), averaged over queries, heads and layers. A proxy for the accuracy a coarser selection gives up,
 * on more than a handful of scored examples (docs/gpu-methods.md, "Block-Sparse: chunk size 16 or 64").
 *
 * Cost: the CPU dense prefill (≈ 30 s at 4K for the organism on one core) plus one float64 softmax row per
 * (layer, head, query): L·H·n²/2·D multiply-adds (≈ 13 G at 4K for the organism, ≈ 30 s).
 *
 * Usage: node dist/bench/block-sparse-chunk-recall.js [--model models/organism] [--task niah] [--length 4096]
 *        [--sparsities 0.5,0.8,0.9,0.95] [--chunks 16,64] [--seed 43]
 */
import { type ChunkSelection } from '../src/backends/cuda/block-sparse-layout.js';
import { selectBlockSparseChunks } from '../src/backends/cuda/block-sparse-selection.js';
import { BlockSparsePrefill, exactBlockSparsePairs } from '../src/methods/block-sparse.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, sparsityList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type LayerQk, recordPromptQk } from './prompt-qk-cpu.js';

/**
 * Mean attention recall of `selections` (one per configuration, each [H] heads of chunk lists at its own
 * chunk size) on one layer: per query of every head, the dense softmax (scale 1/sqrt(D), causal) mass on
 * the keys its chunk's list keeps, over the row's whole mass. Returns the sum over (head, query) rows of
 * each configuration and the row count, so layers can be pooled.
 */
export function layerRecall(x: LayerQk, n: number, H: number, D: number, selections: ChunkSelection[]): { sums: number[]; rows: number } {
  const Hkv = x.keys.length;
  const g = H / Hkv;
  const scale = 1 / Math.sqrt(D);
  const sums = selections.map(() => 0);
  const p = new Float64Array(n);
  const chunkMass = selections.map((sel) => new Float64Array(Math.ceil(n / sel.chunkSize)));
  for (let h = 0; h < H; h++) {
    const keys = x.keys[Math.floor(h / g)];
    for (let t = 0; t < n; t++) {
      const qo = (t * H + h) * D;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x.q[qo + d] * keys[j * D + d];
        p[j] = dot * scale;
        if (p[j] > max) max = p[j];
      }
      let total = 0;
      for (let j = 0; j <= t; j++) {
        p[j] = Math.exp(p[j] - max);
        total += p[j];
      }
      selections.forEach((sel, i) => {
        const c = sel.chunkSize, mass = chunkMass[i];
        mass.fill(0, 0, Math.floor(t / c) + 1);
        for (let j = 0; j <= t; j++) mass[Math.floor(j / c)] += p[j];
        const head = sel.heads[h], m = Math.floor(t / c);
        let kept = 0;
        for (let k = 0; k < head.counts[m]; k++) kept += mass[head.selected[m * head.stride + k]];
        sums[i] += kept / total;
      });
    }
  }
  return { sums, rows: H * n };
}

export const CHUNK_RECALL_ARGS = defineBenchArgs('block-sparse-chunk-recall', 'Attention recall of the CPU Block-Sparse selection at chunk sizes 16 and 64 on a checkpoint\'s recorded q/k.', {
  model: text({ describe: 'checkpoint folder', placeholder: 'DIR', default: 'models/organism' }),
  task: text({ describe: 'task whose prompt is prefilled', placeholder: 'TASK', default: 'niah' }),
  length: int({ describe: 'prompt length (the CPU prefill: ~30 s at 4K)', default: 4096, atLeast: 256, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
  chunks: intList({ describe: 'chunk sizes', default: [16, 64], atLeast: 1, noun: 'chunk size' }),
  seed: int({ describe: 'task seed', default: 43, atLeast: 0, noun: 'seed' }),
}, 'node dist/bench/block-sparse-chunk-recall.js');

export type ChunkRecallOptions = BenchOptionsOf<typeof CHUNK_RECALL_ARGS.table>;

function main(argv: string[]): void {
  const { model, task, length, sparsities, chunks, seed } = CHUNK_RECALL_ARGS.parse(argv);
  const { config: c, n, layers } = recordPromptQk(model, task, length, seed);
  const { numHeads: H, headDim: D } = c;
  const configs = sparsities.flatMap((s) => chunks.map((chunk) => ({ s, chunk, method: new BlockSparsePrefill(chunk, s, null) })));
  const sums = configs.map(() => [] as number[]);
  let rows = 0;
  for (const layer of layers) {
    const selections = configs.map((k) => selectBlockSparseChunks(k.method, layer.q, layer.keys, n, H, D));
    const r = layerRecall(layer, n, H, D, selections);
    r.sums.forEach((v, i) => sums[i].push(v / r.rows));
    rows += r.rows;
  }
  console.log(`${rows} (layer, head, query) rows; recall = kept share of each row's dense softmax mass`);
  console.log('| s | c | t | achieved s | recall (mean over layers) | lowest layer | per layer |');
  console.log('| --: | --: | --: | --: | --: | --: | --- |');
  configs.forEach((k, i) => {
    const t = k.method.topChunksFor(n);
    const achieved = 1 - exactBlockSparsePairs(n, k.chunk, t) / ((n * (n + 1)) / 2);
    const mean = sums[i].reduce((a, b) => a + b, 0) / sums[i].length;
    console.log(`| ${k.s} | ${k.chunk} | ${t} | ${achieved.toFixed(3)} | ${mean.toFixed(4)} | ${Math.min(...sums[i]).toFixed(4)} | ${sums[i].map((v) => v.toFixed(3)).join(' ')} |`);
  });
}

runIfDirect(import.meta.url, main);
