/**
 * The cases of the kernel oracle (bench/kernel-oracle.ts runs them on the GPU, tools/peers/kernel_oracle.py
 * recomputes them with PyTorch / transformers) and the file format between the two.
 *
 * One case = one launch of one model kernel at a model-like shape on seeded random inputs. A case
 * directory holds meta.json and one raw little-endian file per tensor:
 *   meta.json  { format: "sparse-frontier-kernel-oracle", version: 1, case: OracleCase (RoPE parameters
 *               as rope_parameters for transformers), tensors: { name: { file, dtype, shape, role } } }
 *   <name>.bf16 | .f32 | .i32   raw bf16 words / float32 / int32, row-major in `shape`
 * Inputs are written before the launch; outputs ("role": "output") are what the kernel left, after the
 * output buffers were poisoned with NaN (in-place kernels: the buffer holds the input; see `poisoned`).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { F32_NAN_BITS, toBf16, BF16_NAN_BITS } from '../src/backends/cuda/bf16.js';
import { roundToDtype } from '../src/backends/cpu/ops.js';
import type { RopeParameters } from '../src/engine/model-config.js';
import { inverseFrequencies } from '../src/engine/rope.js';
import { symmetricUniform } from './seeded-random.js';

export const ORACLE_FORMAT = 'sparse-frontier-kernel-oracle';
export const ORACLE_FORMAT_VERSION = 1;

export type OracleDtype = 'bf16' | 'f32' | 'i32';
export type TensorRole = 'input' | 'output';

/** A host tensor: bf16 as raw words (bit-exact), f32 and i32 as they are. */
export type HostTensor =
  | { dtype: 'bf16'; shape: number[]; data: Uint16Array }
  | { dtype: 'f32'; shape: number[]; data: Float32Array }
  | { dtype: 'i32'; shape: number[]; data: Int32Array };

/**
 * Strided per-head kernels (rmsnorm_heads, rope_heads) and kv_append see fused qkv rows
 * [T, (H + 2·Hkv)·D] and touch `heads` heads starting at column `columnOffset`.
 */
export type OracleCase =
  | { kernel: 'rmsnorm'; name: string; rows: number; cols: number; eps: number; weightOffset: number }
  | { kernel: 'rmsnorm_heads'; name: string; tokens: number; heads: number; headDim: number; rowStride: number; columnOffset: number; eps: number; weightOffset: number }
  | { kernel: 'rope_rotate_half'; name: string; tokens: number; heads: number; headDim: number; rope: RopeParameters; maxPosition: number }
  | { kernel: 'rope_heads'; name: string; tokens: number; heads: number; headDim: number; rowStride: number; columnOffset: number; rope: RopeParameters; maxPosition: number }
  | { kernel: 'swiglu'; name: string; rows: number; cols: number }
  | { kernel: 'gated_act_rows'; name: string; rows: number; inner: number; activation: 'silu' | 'gelu_tanh' }
  | { kernel: 'add'; name: string; rows: number; cols: number }
  | { kernel: 'bias_add_rows'; name: string; rows: number; cols: number }
  | { kernel: 'embed_rows'; name: string; vocab: number; cols: number; tokens: number; scale: number }
  | { kernel: 'softcap_f32'; name: string; rows: number; vocab: number; cap: number }
  | { kernel: 'argmax_rows'; name: string; rows: number; vocab: number }
  | { kernel: 'kv_append'; name: string; tokens: number; heads: number; kvHeads: number; headDim: number; capacity: number; startRow: number }
  | { kernel: 'decode_attention'; name: string; heads: number; kvHeads: number; headDim: number; kvLen: number; kvStride: number; scale: number; slidingWindow: number | null };

export type OracleKernel = OracleCase['kernel'];

const LLAMA3_ROPE: RopeParameters = {
  theta: 500000,
  scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
};
const GEMMA3_GLOBAL_ROPE: RopeParameters = { theta: 1_000_000, scaling: { kind: 'linear', factor: 8 } };
const QWEN_ROPE: RopeParameters = { theta: 1_000_000, scaling: { kind: 'none' } };

/** Llama-3.1-8B: hidden 4096, 32/8 heads of 128, MLP 14336; Gemma-3-4B-like: hidden 2560, 8/4 heads of 256. */
const LLAMA = { hidden: 4096, H: 32, Hkv: 8, D: 128, inner: 14336, vocab: 128256 };
const GEMMA = { hidden: 2560, H: 8, Hkv: 4, D: 256, inner: 10240, vocab: 262144 };
const QWEN = { H: 28, Hkv: 4, D: 128 };
const qkvWidth = (m: { H: number; Hkv: number; D: number }) => (m.H + 2 * m.Hkv) * m.D;

/** Every case the oracle runs, in order. */
export const ORACLE_CASES: readonly OracleCase[] = [
  { kernel: 'rmsnorm', name: 'rmsnorm-llama-4096', rows: 16, cols: LLAMA.hidden, eps: 1e-5, weightOffset: 0 },
  { kernel: 'rmsnorm', name: 'rmsnorm-gemma-2560-offset1', rows: 16, cols: GEMMA.hidden, eps: 1e-6, weightOffset: 1 },
  { kernel: 'rmsnorm_heads', name: 'rmsnorm-heads-qwen3-q-d128', tokens: 32, heads: QWEN.H, headDim: QWEN.D, rowStride: qkvWidth(QWEN), columnOffset: 0, eps: 1e-6, weightOffset: 0 },
  { kernel: 'rmsnorm_heads', name: 'rmsnorm-heads-gemma-k-d256-offset1', tokens: 32, heads: GEMMA.Hkv, headDim: GEMMA.D, rowStride: qkvWidth(GEMMA), columnOffset: GEMMA.H * GEMMA.D, eps: 1e-6, weightOffset: 1 },
  { kernel: 'rope_rotate_half', name: 'rope-llama3-d128', tokens: 64, heads: LLAMA.H, headDim: LLAMA.D, rope: LLAMA3_ROPE, maxPosition: 131072 },
  { kernel: 'rope_heads', name: 'rope-heads-qwen-q-d128', tokens: 64, heads: QWEN.H, headDim: QWEN.D, rowStride: qkvWidth(QWEN), columnOffset: 0, rope: QWEN_ROPE, maxPosition: 32768 },
  { kernel: 'rope_heads', name: 'rope-heads-gemma-linear-k-d256', tokens: 64, heads: GEMMA.Hkv, headDim: GEMMA.D, rowStride: qkvWidth(GEMMA), columnOffset: GEMMA.H * GEMMA.D, rope: GEMMA3_GLOBAL_ROPE, maxPosition: 131072 },
  { kernel: 'swiglu', name: 'swiglu-llama-14336', rows: 16, cols: LLAMA.inner },
  { kernel: 'gated_act_rows', name: 'gated-silu-llama-14336', rows: 16, inner: LLAMA.inner, activation: 'silu' },
  { kernel: 'gated_act_rows', name: 'gated-gelu-tanh-gemma-10240', rows: 16, inner: GEMMA.inner, activation: 'gelu_tanh' },
  { kernel: 'add', name: 'residual-add-4096', rows: 16, cols: LLAMA.hidden },
  { kernel: 'bias_add_rows', name: 'bias-add-qwen-qkv', rows: 16, cols: qkvWidth(QWEN) },
  { kernel: 'embed_rows', name: 'embed-llama', vocab: 2048, cols: LLAMA.hidden, tokens: 64, scale: 1 },
  // Gemma scales by sqrt(hidden) cast to the weights' dtype (bf16), as src/backends/cuda/model.ts passes it.
  { kernel: 'embed_rows', name: 'embed-gemma-scaled', vocab: 2048, cols: GEMMA.hidden, tokens: 64, scale: roundToDtype(Math.sqrt(GEMMA.hidden), 'bfloat16') },
  { kernel: 'softcap_f32', name: 'softcap-gemma-30', rows: 4, vocab: GEMMA.vocab, cap: 30 },
  { kernel: 'argmax_rows', name: 'argmax-llama-vocab', rows: 8, vocab: LLAMA.vocab },
  { kernel: 'kv_append', name: 'kv-append-llama-fused-rows', tokens: 37, heads: LLAMA.H, kvHeads: LLAMA.Hkv, headDim: LLAMA.D, capacity: 256, startRow: 101 },
  { kernel: 'decode_attention', name: 'decode-llama-gqa4-d128-8191', heads: LLAMA.H, kvHeads: LLAMA.Hkv, headDim: LLAMA.D, kvLen: 8191, kvStride: 8256, scale: 1 / Math.sqrt(128), slidingWindow: null },
  { kernel: 'decode_attention', name: 'decode-qwen-gqa7-d128-3001', heads: QWEN.H, kvHeads: QWEN.Hkv, headDim: QWEN.D, kvLen: 3001, kvStride: 3072, scale: 1 / Math.sqrt(128), slidingWindow: null },
  { kernel: 'decode_attention', name: 'decode-gemma-gqa2-d256-8000', heads: GEMMA.H, kvHeads: GEMMA.Hkv, headDim: GEMMA.D, kvLen: 8000, kvStride: 8064, scale: 1 / 16, slidingWindow: null },
  { kernel: 'decode_attention', name: 'decode-gemma-gqa2-d256-window1024', heads: GEMMA.H, kvHeads: GEMMA.Hkv, headDim: GEMMA.D, kvLen: 5000, kvStride: 5120, scale: 1 / 16, slidingWindow: 1024 },
];

/** Declared tensors of a case: name → dtype, shape, role (inputs first, in launch order). */
export function caseTensorSpecs(c: OracleCase): Record<string, { dtype: OracleDtype; shape: number[]; role: TensorRole }> {
  const bf16In = (...shape: number[]) => ({ dtype: 'bf16' as const, shape, role: 'input' as const });
  const bf16Out = (...shape: number[]) => ({ dtype: 'bf16' as const, shape, role: 'output' as const });
  switch (c.kernel) {
    case 'rmsnorm':
      return { x: bf16In(c.rows, c.cols), weight: bf16In(c.cols), out: bf16Out(c.rows, c.cols) };
    case 'rmsnorm_heads':
      return { x: bf16In(c.tokens, c.rowStride), weight: bf16In(c.headDim), out: bf16Out(c.tokens, c.rowStride) };
    case 'rope_rotate_half':
      return {
        x: bf16In(c.tokens, c.heads, c.headDim), positions: { dtype: 'i32', shape: [c.tokens], role: 'input' },
        inv_freq: { dtype: 'f32', shape: [c.headDim / 2], role: 'input' }, out: bf16Out(c.tokens, c.heads, c.headDim),
      };
    case 'rope_heads':
      return {
        x: bf16In(c.tokens, c.rowStride), positions: { dtype: 'i32', shape: [c.tokens], role: 'input' },
        inv_freq: { dtype: 'f32', shape: [c.headDim / 2], role: 'input' }, out: bf16Out(c.tokens, c.rowStride),
      };
    case 'swiglu':
      return { gate: bf16In(c.rows, c.cols), up: bf16In(c.rows, c.cols), out: bf16Out(c.rows, c.cols) };
    case 'gated_act_rows':
      return { gate_up: bf16In(c.rows, 2 * c.inner), out: bf16Out(c.rows, c.inner) };
    case 'add':
      return { a: bf16In(c.rows, c.cols), b: bf16In(c.rows, c.cols), out: bf16Out(c.rows, c.cols) };
    case 'bias_add_rows':
      return { y: bf16In(c.rows, c.cols), bias: bf16In(c.cols), out: bf16Out(c.rows, c.cols) };
    case 'embed_rows':
      return { ids: { dtype: 'i32', shape: [c.tokens], role: 'input' }, table: bf16In(c.vocab, c.cols), out: bf16Out(c.tokens, c.cols) };
    case 'softcap_f32':
      return { logits: { dtype: 'f32', shape: [c.rows, c.vocab], role: 'input' }, out: { dtype: 'f32', shape: [c.rows, c.vocab], role: 'output' } };
    case 'argmax_rows':
      return { logits: { dtype: 'f32', shape: [c.rows, c.vocab], role: 'input' }, out: { dtype: 'i32', shape: [c.rows], role: 'output' } };
    case 'kv_append': {
      const width = (c.heads + 2 * c.kvHeads) * c.headDim;
      return {
        qkv: bf16In(c.tokens, width), k_cache_before: bf16In(c.kvHeads, c.capacity, c.headDim), v_cache_before: bf16In(c.kvHeads, c.capacity, c.headDim),
        k_cache: bf16Out(c.kvHeads, c.capacity, c.headDim), v_cache: bf16Out(c.kvHeads, c.capacity, c.headDim),
      };
    }
    case 'decode_attention':
      return {
        q: bf16In(c.heads, c.headDim), k: bf16In(c.kvHeads, c.kvStride, c.headDim), v: bf16In(c.kvHeads, c.kvStride, c.headDim),
        out: bf16Out(c.heads, c.headDim),
      };
  }
}

/** How the output buffer starts before the launch: NaN everywhere, or the input (in-place kernels). */
export function poisoned(c: OracleCase): 'whole output' | 'in place: input copy' | 'appended rows only' {
  switch (c.kernel) {
    case 'rope_rotate_half': case 'rope_heads': case 'rmsnorm_heads': case 'bias_add_rows': case 'softcap_f32':
      return 'in place: input copy';
    case 'kv_append':
      return 'appended rows only';
    default:
      return 'whole output';
  }
}

/** Deterministic uniform [-1, 1) generator. */
const generator = symmetricUniform;

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

function bf16Random(shape: number[], rand: () => number, amplitude: number, mean = 0): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = mean + rand() * amplitude;
  return { dtype: 'bf16', shape, data: toBf16(x) };
}

function positionsOf(tokens: number, maxPosition: number, rand: () => number): HostTensor {
  // Spread over [0, maxPosition), with the extremes present (long positions stress the fp32 angle).
  const p = Int32Array.from({ length: tokens }, () => Math.floor(((rand() + 1) / 2) * maxPosition));
  p[0] = 0;
  p[tokens - 1] = maxPosition - 1;
  return { dtype: 'i32', shape: [tokens], data: p };
}

/** The seeded inputs of a case (the same on every machine), keyed as caseTensorSpecs names them. */
export function caseInputs(c: OracleCase): Record<string, HostTensor> {
  const rand = generator(seedOf(c.name));
  const spec = caseTensorSpecs(c);
  switch (c.kernel) {
    case 'rmsnorm':
      return { x: bf16Random(spec.x.shape, rand, 3), weight: bf16Random(spec.weight.shape, rand, 0.5, c.weightOffset === 0 ? 1 : 0) };
    case 'rmsnorm_heads':
      return { x: bf16Random(spec.x.shape, rand, 3), weight: bf16Random(spec.weight.shape, rand, 0.5, c.weightOffset === 0 ? 1 : 0) };
    case 'rope_rotate_half': case 'rope_heads':
      return {
        x: bf16Random(spec.x.shape, rand, 2), positions: positionsOf(c.tokens, c.maxPosition, rand),
        inv_freq: { dtype: 'f32', shape: [c.headDim / 2], data: Float32Array.from(inverseFrequencies(c.rope, c.headDim)) },
      };
    case 'swiglu':
      return { gate: bf16Random(spec.gate.shape, rand, 6), up: bf16Random(spec.up.shape, rand, 2) };
    case 'gated_act_rows':
      return { gate_up: bf16Random(spec.gate_up.shape, rand, 5) };
    case 'add':
      return { a: bf16Random(spec.a.shape, rand, 4), b: bf16Random(spec.b.shape, rand, 4) };
    case 'bias_add_rows':
      return { y: bf16Random(spec.y.shape, rand, 3), bias: bf16Random(spec.bias.shape, rand, 1) };
    case 'embed_rows': {
      const ids = Int32Array.from({ length: c.tokens }, () => Math.floor(((rand() + 1) / 2) * c.vocab));
      ids[0] = 0;
      ids[1] = c.vocab - 1;
      return { ids: { dtype: 'i32', shape: [c.tokens], data: ids }, table: bf16Random(spec.table.shape, rand, 0.1) };
    }
    case 'softcap_f32':
      return { logits: { dtype: 'f32', shape: spec.logits.shape, data: Float32Array.from({ length: c.rows * c.vocab }, () => rand() * 80) } };
    case 'argmax_rows': {
      const logits = Float32Array.from({ length: c.rows * c.vocab }, () => rand() * 20);
      // Planted maxima: at the first and last index, and ties (the lowest index must win).
      const put = (r: number, i: number, v: number) => { logits[r * c.vocab + i] = v; };
      put(0, 0, 100);
      put(1, c.vocab - 1, 100);
      put(2, 777, 100); put(2, 90_001, 100);
      put(3, 5, 100); put(3, 6, 100); put(3, c.vocab - 1, 100);
      return { logits: { dtype: 'f32', shape: spec.logits.shape, data: logits } };
    }
    case 'kv_append': {
      const before = (shape: number[]) => {
        const t = bf16Random(shape, rand, 1);
        // The rows the kernel writes start as NaN, so any row it misses shows.
        for (let h = 0; h < c.kvHeads; h++) t.data.fill(BF16_NAN_BITS, (h * c.capacity + c.startRow) * c.headDim, (h * c.capacity + c.startRow + c.tokens) * c.headDim);
        return t;
      };
      return { qkv: bf16Random(spec.qkv.shape, rand, 2), k_cache_before: before(spec.k_cache_before.shape), v_cache_before: before(spec.v_cache_before.shape) };
    }
    case 'decode_attention':
      return { q: bf16Random(spec.q.shape, rand, 2), k: bf16Random(spec.k.shape, rand, 2), v: bf16Random(spec.v.shape, rand, 1) };
  }
}

const EXTENSION: Record<OracleDtype, string> = { bf16: 'bf16', f32: 'f32', i32: 'i32' };
const BYTES: Record<OracleDtype, number> = { bf16: 2, f32: 4, i32: 4 };

/** transformers' rope_parameters for a RopeParameters (what the oracle builds its rotary embedding from). */
export function ropeParametersForTransformers(rope: RopeParameters): Record<string, string | number> {
  const s = rope.scaling;
  if (s.kind === 'none') return { rope_type: 'default', rope_theta: rope.theta };
  if (s.kind === 'linear') return { rope_type: 'linear', rope_theta: rope.theta, factor: s.factor };
  return {
    rope_type: 'llama3', rope_theta: rope.theta, factor: s.factor, low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositionEmbeddings,
  };
}

export interface OracleMeta {
  format: string;
  version: number;
  case: OracleCase;
  rope_parameters?: Record<string, string | number>;
  poisoned: string;
  /** Extra facts of the run (e.g. the decode split count). */
  run: Record<string, number | string | boolean>;
  tensors: Record<string, { file: string; dtype: OracleDtype; shape: number[]; role: TensorRole }>;
}

function checkShape(name: string, t: HostTensor, spec: { dtype: OracleDtype; shape: number[] }): void {
  if (t.dtype !== spec.dtype) throw new Error(`kernel oracle: tensor ${name} is ${t.dtype}, declared ${spec.dtype}`);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n || t.shape.join(',') !== spec.shape.join(',')) {
    throw new Error(`kernel oracle: tensor ${name} has shape [${t.shape}] (${t.data.length} values), declared [${spec.shape}]`);
  }
}

/** Writes a case directory: every declared tensor must be present with its declared dtype and shape. */
export function writeCase(dir: string, c: OracleCase, tensors: Record<string, HostTensor>, run: OracleMeta['run'] = {}): void {
  const specs = caseTensorSpecs(c);
  mkdirSync(dir, { recursive: true });
  const meta: OracleMeta = { format: ORACLE_FORMAT, version: ORACLE_FORMAT_VERSION, case: c, poisoned: poisoned(c), run, tensors: {} };
  if (c.kernel === 'rope_rotate_half' || c.kernel === 'rope_heads') meta.rope_parameters = ropeParametersForTransformers(c.rope);
  for (const [name, spec] of Object.entries(specs)) {
    const t = tensors[name];
    if (!t) throw new Error(`kernel oracle: case ${c.name} lacks tensor ${name}`);
    checkShape(name, t, spec);
    const file = `${name}.${EXTENSION[spec.dtype]}`;
    writeFileSync(join(dir, file), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    meta.tensors[name] = { file, ...spec };
  }
  const extra = Object.keys(tensors).filter((k) => !(k in specs));
  if (extra.length > 0) throw new Error(`kernel oracle: case ${c.name} has undeclared tensors ${extra.join(', ')}`);
  writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 1)}\n`);
}

/** Reads a case directory back (the test's round trip; the Python oracle reads the same files). */
export function readCase(dir: string): { meta: OracleMeta; tensors: Record<string, HostTensor> } {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as OracleMeta;
  if (meta.format !== ORACLE_FORMAT || meta.version !== ORACLE_FORMAT_VERSION) {
    throw new Error(`kernel oracle: ${dir} is ${meta.format} v${meta.version}, expected ${ORACLE_FORMAT} v${ORACLE_FORMAT_VERSION}`);
  }
  const tensors: Record<string, HostTensor> = {};
  for (const [name, spec] of Object.entries(meta.tensors)) {
    const bytes = readFileSync(join(dir, spec.file));
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (bytes.byteLength !== n * BYTES[spec.dtype]) throw new Error(`kernel oracle: ${spec.file} has ${bytes.byteLength} bytes, expected ${n * BYTES[spec.dtype]}`);
    const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    tensors[name] = spec.dtype === 'bf16' ? { dtype: 'bf16', shape: spec.shape, data: new Uint16Array(buf) }
      : spec.dtype === 'f32' ? { dtype: 'f32', shape: spec.shape, data: new Float32Array(buf) }
        : { dtype: 'i32', shape: spec.shape, data: new Int32Array(buf) };
  }
  return { meta, tensors };
}

/** NaN bits of an output buffer's dtype (the poison). */
export const POISON_BITS = { bf16: BF16_NAN_BITS, f32: F32_NAN_BITS } as const;
