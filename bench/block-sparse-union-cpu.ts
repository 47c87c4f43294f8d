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
import { BlockSparsePrefill } from '../src/methods/block-sparse.js';
import { type ProductUnionCount, type TilingWork, autoTilingWork, productUnionCount, unionFactor } from './block-sparse-product-union.js';
import { symmetricUniform } from './seeded-random.js';
import { type BenchOptionsOf, defineBenchArgs, int, sparsityList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type LayerQk, recordPromptQk } from './prompt-qk-cpu.js';

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
  const { config: c, n, layers } = recordPromptQk(model, task, length, seed);
  const rand = symmetricUniform(seed);
  const random = (count: number) => Float32Array.from({ length: count }, rand);
  const randomQk: LayerQk = { q: random(n * c.numHeads * c.headDim), keys: Array.from({ length: c.numKvHeads }, () => random(n * c.headDim)) };
  console.log('| s | activations: 64-row union (layers) | activations: tiling | random: 64-row union | random: tiling |');
  console.log('| --: | --- | --- | --: | --- |');
  for (const s of sparsities) {
    const listsOf = (x: LayerQk) => packChunkLists(selectBlockSparseChunks(new BlockSparsePrefill(16, s, null), x.q, x.keys, n, c.numHeads, c.headDim));
    const real = layers.map(listsOf);
    const perLayer = real.map((l) => unionFactor(productUnionCount(l)).toFixed(2)).join(' ');
    const a = factors(real), r = factors([listsOf(randomQk)]);
    console.log(`| ${s} | ${a.union.toFixed(3)} (${perLayer}) | ${a.tiling.toFixed(3)} (${a.tilings}) | ${r.union.toFixed(3)} | ${r.tiling.toFixed(3)} (${r.tilings}) |`);
  }
}

runIfDirect(import.meta.url, main);
