/**
 * What a wider model organism would cost our CPU engine (docs/organism.md, "Run 10 (prepared)").
 *
 * For each candidate shape it writes a random-weight Hugging Face checkpoint with the shipped
 * model's config.json (only the shape fields changed), bfloat16 weights and the shipped tokenizer,
 * as `<out>/<label>/organism/` — so `run --preset quick --models-dir <out>/<label>` runs the quick
 * preset on it unchanged — then loads it the way the runner does (loadCheckpoint, default kernel)
 * and times, one shape after the other in this one process, the dense prefill of each prompt length
 * and the greedy decode that follows it. Random weights are fine here: no dense CPU step depends on
 * the values, only on the shapes.
 *
 *   npx tsx bench/organism-shapes.ts --out /tmp/shapes [--shapes 6x256x4x2x768,8x384x6x2x1152]
 *     [--lengths 1792,2048,4096] [--decode-steps 48] [--repeats 2] [--build-only] [--tokenizer models/organism]
 *
 * A shape is layers x hidden x heads x kvHeads x mlp; head_dim = hidden / heads. --help lists the options.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../src/engine/checkpoint.js';
import { parseModelConfig } from '../src/engine/config.js';
import { generateTokens } from '../src/engine/generate.js';
import { TransformerModel } from '../src/engine/model.js';
import { writeSafetensors, type TensorToWrite } from '../src/engine/safetensors-writer.js';
import { expectedTensors } from '../src/engine/weight-layout.js';
import { type BenchOptionsOf, defineBenchArgs, flag, int, intList, list, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { mulberry32 } from './seeded-random.js';

export interface OrganismShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  mlp: number;
}

/** `8x384x6x2x1152` → layers 8, hidden 384, 6 heads, 2 KV heads, MLP 1152. */
export function parseShape(text: string): OrganismShape {
  const parts = text.split('x').map(Number);
  if (parts.length !== 5 || parts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`shape "${text}": expected layers x hidden x heads x kvHeads x mlp, five positive integers, e.g. 8x384x6x2x1152`);
  }
  const [layers, hidden, heads, kvHeads, mlp] = parts as [number, number, number, number, number];
  if (hidden % heads !== 0) throw new Error(`shape "${text}": hidden ${hidden} is not a multiple of ${heads} heads`);
  if (heads % kvHeads !== 0) throw new Error(`shape "${text}": ${heads} heads do not split into groups of ${kvHeads} KV heads`);
  return { layers, hidden, heads, kvHeads, mlp };
}

export function shapeLabel(s: OrganismShape): string {
  return `${s.layers}x${s.hidden}x${s.heads}x${s.kvHeads}x${s.mlp}`;
}

/** Parameters stored with tied embeddings (what train.py builds): embedding + blocks + final norm. */
export function storedParameterCount(s: OrganismShape, vocab: number): number {
  const headDim = s.hidden / s.heads;
  const attention = 2 * s.hidden * s.heads * headDim + 2 * s.hidden * s.kvHeads * headDim;
  const block = attention + 3 * s.hidden * s.mlp + 2 * s.hidden;
  return vocab * s.hidden + s.layers * block + s.hidden;
}

/** The shipped config.json with the shape fields replaced (everything else, RoPE included, kept). */
function shapedConfig(base: Record<string, unknown>, s: OrganismShape): Record<string, unknown> {
  return {
    ...base,
    hidden_size: s.hidden,
    intermediate_size: s.mlp,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
  };
}

/**
 * Writes `<dir>/organism/` for one shape: random weights (uniform, std 0.02 like train.py's
 * initialiser; norms 1) stored in bfloat16 as the shipped file is. Returns the checkpoint folder.
 */
export function writeShapedCheckpoint(dir: string, tokenizerDir: string, s: OrganismShape, seed = 10): string {
  const ckpt = join(dir, 'organism');
  mkdirSync(ckpt, { recursive: true });
  const base = JSON.parse(readFileSync(join(tokenizerDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const config = shapedConfig(base, s);
  writeFileSync(join(ckpt, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) copyFileSync(join(tokenizerDir, f), join(ckpt, f));
  const parsed = parseModelConfig(config, join(ckpt, 'config.json'));
  const next = mulberry32(seed);
  const halfWidth = 0.02 * Math.sqrt(3); // uniform on [-a, a] has std a / √3
  const tensors: TensorToWrite[] = expectedTensors(parsed).map((spec) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (spec.role === 'norm') data.fill(1);
    else for (let i = 0; i < n; i++) data[i] = (next() * 2 - 1) * halfWidth;
    return { name: spec.name, shape: spec.shape, data };
  });
  writeSafetensors(join(ckpt, 'model.safetensors'), tensors, { dtype: 'BF16', metadata: { format: 'pt' } });
  return ckpt;
}

interface LengthTiming {
  promptTokens: number;
  prefillSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeTokensPerSecond: number;
}

/**
 * Dense prefill of a deterministic prompt of each length, then `decodeSteps` greedy tokens; the best
 * of `repeats` runs per length (the 2 cores are shared, so a slower run is another process's doing).
 */
function timeShape(ckptDir: string, lengths: number[], decodeSteps: number, repeats: number): LengthTiming[] {
  const ckpt = loadCheckpoint(ckptDir);
  const model = new TransformerModel(ckpt.config, ckpt.weights);
  const V = ckpt.config.vocabSize;
  const promptOf = (n: number): number[] => Array.from({ length: n }, (_, i) => 6 + ((i * 2654435761) >>> 0) % (V - 6));
  // Warm-up: V8 and wasm tier up during the first calls; not timed.
  generateTokens(model, [promptOf(256)], { maxNewTokens: 4 });
  return lengths.map((n) => {
    let prefillSeconds = Infinity;
    let decodeSeconds = Infinity;
    for (let i = 0; i < repeats; i++) {
      // No stop tokens: every run decodes exactly decodeSteps tokens, as the quick preset's replies hit their cap.
      const [r] = generateTokens(model, [promptOf(n)], { maxNewTokens: decodeSteps });
      if (!r) throw new Error('generateTokens returned no result');
      prefillSeconds = Math.min(prefillSeconds, r.prefillSeconds);
      decodeSeconds = Math.min(decodeSeconds, r.decodeSeconds);
    }
    return {
      promptTokens: n,
      prefillSeconds,
      prefillTokensPerSecond: n / prefillSeconds,
      decodeTokens: decodeSteps,
      decodeTokensPerSecond: decodeSteps / decodeSeconds,
    };
  });
}

const DEFAULT_SHAPES = ['6x256x4x2x768', '8x384x6x2x1152', '8x320x5x1x960', '6x384x6x2x1152'];

/** The command line (`--help` prints it). */
export const ORGANISM_SHAPES_ARGS = defineBenchArgs('organism-shapes', 'What a wider model organism would cost the CPU engine: random-weight checkpoints of each shape, their dense prefill and decode timed.', {
  out: text({ describe: 'folder for <out>/<shape>/organism/', placeholder: 'DIR', required: true }),
  shapes: list({
    describe: 'shapes, layers x hidden x heads x kvHeads x mlp', placeholder: 'SHAPE,...', default: DEFAULT_SHAPES.map(parseShape), defaultText: DEFAULT_SHAPES.join(','), item: parseShape,
  }),
  lengths: intList({ describe: 'prompt lengths', default: [1792, 2048, 4096], atLeast: 1, noun: 'length' }),
  'decode-steps': int({ describe: 'greedy tokens after each prompt', default: 48, atLeast: 1, noun: 'step count' }),
  repeats: int({ describe: 'runs per length (the best one is kept)', default: 1, atLeast: 1, noun: 'repeat count' }),
  tokenizer: text({ describe: 'checkpoint whose config.json and tokenizer the shapes start from', placeholder: 'DIR', default: 'models/organism' }),
  'build-only': flag('write the checkpoints, time nothing'),
}, 'npx tsx bench/organism-shapes.ts');

export type OrganismShapesOptions = BenchOptionsOf<typeof ORGANISM_SHAPES_ARGS.table>;

export function parseOrganismShapesArgs(argv: string[]): OrganismShapesOptions {
  return ORGANISM_SHAPES_ARGS.parse(argv);
}

function main(argv: string[]): void {
  const o = parseOrganismShapesArgs(argv);
  const vocab = (JSON.parse(readFileSync(join(o.tokenizer, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  for (const s of o.shapes) {
    const label = shapeLabel(s);
    const params = storedParameterCount(s, vocab);
    const ckpt = writeShapedCheckpoint(join(o.out, label), o.tokenizer, s);
    const record: Record<string, unknown> = { shape: label, params, bf16Bytes: 2 * params, checkpoint: ckpt };
    if (!o.buildOnly) record.timings = timeShape(ckpt, o.lengths, o.decodeSteps, o.repeats);
    process.stdout.write(JSON.stringify(record) + '\n');
  }
}

runIfDirect(import.meta.url, main);
