/**
 * The CPU side of bench/sparse-activations.ts's block-sparse column, for predictions without a GPU:
 * the CPU engine's dense prefill of a checkpoint (default the organism) on one task prompt, every
 * layer's rotated queries and keys recorded, the CPU Block-Sparse selection on them at each s, and its
 * computed / attended pairs — the 64-row union and the automatic wgmma tiling's steps
 * (bench/block-sparse-product-union.ts) — beside the same for uniform random q/k of the same shape.
 * fp32 activations here, bf16 on the GPU: the GPU's lists may differ in near-ties.
 *
 * Cost: the CPU dense prefill, ≈ 30 s at 4K and ≈ 2.3 min at 8K for the organism on one core.
 *
 * Usage: node dist/bench/block-sparse-union-cpu.js [--model models/organism] [--task niah] [--length 4096]
 *        [--sparsities 0.5,0.8,0.9,0.95] [--seed 43]
 */
import { selectBlockSparseChunks } from '../src/backends/cuda/block-sparse-selection.js';
import { packChunkLists } from '../src/backends/cuda/block-sparse-layout.js';
import type { HeadCounts, PrefillAttention, PrefillCall } from '../src/engine/attention.js';
import { loadCheckpoint } from '../src/engine/checkpoint.js';
import { TransformerModel } from '../src/engine/model.js';
import { BlockSparsePrefill } from '../src/methods/block-sparse.js';
import { densePlan } from '../src/methods/dense.js';
import { getTask } from '../src/tasks/index.js';
import { type ProductUnionCount, type TilingWork, autoTilingWork, productUnionCount, unionFactor } from './block-sparse-product-union.js';
import { symmetricUniform } from './seeded-random.js';
import { type BenchOptionsOf, defineBenchArgs, int, sparsityList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';

/** One layer's whole-prompt inputs: q [n, H, D], keys per KV head [n, D]. */
interface LayerQk { layer: number; q: Float32Array; keys: Float32Array[] }

/** Dense prefill that keeps a copy of every layer's rotated q and cached keys (whole prompt in one call). */
class RecordingDensePrefill implements PrefillAttention {
  readonly id = 'recording-dense';
  readonly requiresWholePrompt = true;
  readonly layers: LayerQk[] = [];
  constructor(private readonly inner: PrefillAttention) {}

  prefill(call: PrefillCall): HeadCounts {
    const { numHeads: H, headDim: D } = call.shape;
    const n = call.numQueries;
    if (call.queryStart !== 0) throw new Error(`recording prefill: layer ${call.layer} got a chunk at ${call.queryStart}, need the whole prompt`);
    this.layers.push({ layer: call.layer, q: call.queries.slice(0, n * H * D), keys: call.cache.keys.map((k) => k.slice(0, n * D)) });
    return this.inner.prefill(call);
  }
}

/** The automatic tiling depends on the grid's waves: counted for the H100 the GPU benches run on. */
const H100_MULTIPROCESSORS = 132;

function factors(lists: ReturnType<typeof packChunkLists>[]): { union: number; tiling: number; tilings: string } {
  const u: ProductUnionCount[] = [], w: TilingWork[] = [];
  for (const l of lists) {
    u.push(productUnionCount(l));
    w.push(autoTilingWork(l, H100_MULTIPROCESSORS));
  }
  return { union: unionFactor(...u), tiling: unionFactor(...w), tilings: [...new Set(w.map((x) => x.tiling))].join(' + ') };
}

/** The command line (`--help` prints it). */
export const UNION_CPU_ARGS = defineBenchArgs('block-sparse-union-cpu', 'The CPU Block-Sparse selection on a checkpoint\'s recorded q/k: computed / attended pairs of the 64-row union and the wgmma tiling, beside random q/k.', {
  model: text({ describe: 'checkpoint folder', placeholder: 'DIR', default: 'models/organism' }),
  task: text({ describe: 'task whose prompt is prefilled', placeholder: 'TASK', default: 'niah' }),
  length: int({ describe: 'prompt length (the CPU prefill: ~30 s at 4K, ~2.3 min at 8K)', default: 4096, atLeast: 1024, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
  seed: int({ describe: 'task seed', default: 43, atLeast: 0, noun: 'seed' }),
}, 'node dist/bench/block-sparse-union-cpu.js');

export type UnionCpuOptions = BenchOptionsOf<typeof UNION_CPU_ARGS.table>;

export function parseUnionCpuArgs(argv: string[]): UnionCpuOptions {
  return UNION_CPU_ARGS.parse(argv);
}

function main(argv: string[]): void {
  const { model, task, length, sparsities, seed } = parseUnionCpuArgs(argv);
  const ckpt = loadCheckpoint(model);
  const c = ckpt.config;
  const ex = getTask(task).generate({ tokenizer: ckpt.tokenizer, length, count: 1, seed })[0];
  const n = ex.inputIds.length;
  const dense = densePlan();
  const recorder = new RecordingDensePrefill(dense.prefill);
  const plan = { prefill: recorder, decode: dense.decode };
  const t0 = performance.now();
  const cpu = new TransformerModel(c, ckpt.weights);
  cpu.prefill(cpu.newSequence(plan), ex.inputIds, plan, n);
  console.log(`${task} n=${n} (target ${length}, seed ${seed}): CPU dense prefill ${((performance.now() - t0) / 1000).toFixed(1)} s, ${recorder.layers.length} layers recorded`);
  const rand = symmetricUniform(seed);
  const random = (count: number) => Float32Array.from({ length: count }, rand);
  const randomQk: LayerQk = { layer: 0, q: random(n * c.numHeads * c.headDim), keys: Array.from({ length: c.numKvHeads }, () => random(n * c.headDim)) };
  console.log('| s | activations: 64-row union (layers) | activations: tiling | random: 64-row union | random: tiling |');
  console.log('| --: | --- | --- | --: | --- |');
  for (const s of sparsities) {
    const listsOf = (x: LayerQk) => packChunkLists(selectBlockSparseChunks(new BlockSparsePrefill(16, s, null), x.q, x.keys, n, c.numHeads, c.headDim));
    const real = recorder.layers.map(listsOf);
    const perLayer = real.map((l) => unionFactor(productUnionCount(l)).toFixed(2)).join(' ');
    const a = factors(real), r = factors([listsOf(randomQk)]);
    console.log(`| ${s} | ${a.union.toFixed(3)} (${perLayer}) | ${a.tiling.toFixed(3)} (${a.tilings}) | ${r.union.toFixed(3)} | ${r.tiling.toFixed(3)} (${r.tilings}) |`);
  }
}

runIfDirect(import.meta.url, main);
