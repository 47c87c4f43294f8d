/**
 * The kernel oracle's case list and file format (bench/kernel-oracle-cases.ts), without a GPU: every
 * model kernel of the dense path has a case, each case's seeded inputs match its declared tensors, and
 * a case directory written with those inputs (plus stand-in outputs of the declared shapes) reads back
 * bit for bit with the meta.json the Python oracle parses.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BF16_NAN_BITS } from '../../src/backends/cuda/bf16.js';
import {
  ORACLE_CASES, ORACLE_FORMAT, type HostTensor, type OracleCase, caseInputs, caseTensorSpecs, readCase, writeCase,
} from '../../bench/kernel-oracle-cases.js';

const root = mkdtempSync(join(tmpdir(), 'kernel-oracle-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A stand-in output: the declared dtype and shape, a simple ramp so a misplaced byte shows. */
function standIn(spec: { dtype: 'bf16' | 'f32' | 'i32'; shape: number[] }): HostTensor {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.dtype === 'bf16') return { dtype: 'bf16', shape: spec.shape, data: Uint16Array.from({ length: n }, (_, i) => (i * 7919) & 0x7f7f) };
  if (spec.dtype === 'f32') return { dtype: 'f32', shape: spec.shape, data: Float32Array.from({ length: n }, (_, i) => i * 0.25) };
  return { dtype: 'i32', shape: spec.shape, data: Int32Array.from({ length: n }, (_, i) => i - 3) };
}

function withOutputs(c: OracleCase, inputs: Record<string, HostTensor>): Record<string, HostTensor> {
  const all = { ...inputs };
  for (const [name, spec] of Object.entries(caseTensorSpecs(c))) if (spec.role === 'output') all[name] = standIn(spec);
  return all;
}

describe('kernel oracle cases', () => {
  test('every kernel of the dense model path has a case, names are unique and usable as folder names', () => {
    const kernels = new Set(ORACLE_CASES.map((c) => c.kernel));
    for (const k of ['rmsnorm', 'rmsnorm_heads', 'rope_rotate_half', 'rope_heads', 'swiglu', 'gated_act_rows', 'add', 'bias_add_rows',
      'embed_rows', 'softcap_f32', 'argmax_rows', 'kv_append', 'decode_attention'] as const) {
      assert.ok(kernels.has(k), `no case for ${k}`);
    }
    const names = ORACLE_CASES.map((c) => c.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of names) assert.match(n, /^[a-z0-9-]+$/);
    // Decode covers GQA groups of 4 and 7, d 128 and 256, and a sliding window shorter than the context.
    const decode = ORACLE_CASES.filter((c) => c.kernel === 'decode_attention');
    assert.ok(decode.some((c) => c.heads / c.kvHeads === 7 && c.headDim === 128));
    assert.ok(decode.some((c) => c.headDim === 256 && c.slidingWindow !== null && c.slidingWindow < c.kvLen));
    assert.ok(ORACLE_CASES.some((c) => (c.kernel === 'rope_rotate_half' || c.kernel === 'rope_heads') && c.rope.scaling.kind === 'llama3'));
    assert.ok(ORACLE_CASES.some((c) => c.kernel === 'rmsnorm' && c.weightOffset === 1));
  });

  for (const c of ORACLE_CASES) {
    test(`${c.name}: inputs match the declared tensors and the case directory round-trips`, () => {
      const inputs = caseInputs(c);
      const specs = caseTensorSpecs(c);
      assert.deepEqual(Object.keys(inputs).sort(), Object.keys(specs).filter((k) => specs[k].role === 'input').sort());
      const tensors = withOutputs(c, inputs);
      const dir = join(root, c.name);
      writeCase(dir, c, tensors, { note: 'cpu round trip' });
      const back = readCase(dir);
      assert.equal(back.meta.format, ORACLE_FORMAT);
      assert.deepEqual(back.meta.case, JSON.parse(JSON.stringify(c)));
      assert.deepEqual(back.meta.run, { note: 'cpu round trip' });
      assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(specs).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const got = back.tensors[name];
        assert.equal(got.dtype, t.dtype, name);
        assert.deepEqual(got.shape, t.shape, name);
        assert.ok(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name} bytes differ`);
        const bytes = t.data.length * (t.dtype === 'bf16' ? 2 : 4);
        assert.equal(statSync(join(dir, back.meta.tensors[name].file)).size, bytes);
      }
      const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
      if (c.kernel === 'rope_rotate_half' || c.kernel === 'rope_heads') {
        assert.equal(meta.rope_parameters.rope_theta, c.rope.theta);
        assert.equal(meta.rope_parameters.rope_type, c.rope.scaling.kind === 'none' ? 'default' : c.rope.scaling.kind);
      }
      rmSync(dir, { recursive: true, force: true });
    });
  }

  test('inputs are seeded: the same case gives the same bytes twice, different cases differ', () => {
    const [a, b] = ORACLE_CASES.filter((c) => c.kernel === 'rmsnorm');
    assert.deepEqual(caseInputs(a).x.data, caseInputs(a).x.data);
    assert.notDeepEqual(caseInputs(a).weight.data, caseInputs(b).weight.data);
  });

  test('KV append starts with NaN in exactly the rows it must write, and positions reach the extremes', () => {
    const c = ORACLE_CASES.find((x) => x.kernel === 'kv_append');
    assert.ok(c && c.kernel === 'kv_append');
    const k = caseInputs(c).k_cache_before.data as Uint16Array;
    for (let h = 0; h < c.kvHeads; h++) {
      for (let r = 0; r < c.capacity; r++) {
        const nan: boolean = k[(h * c.capacity + r) * c.headDim] === BF16_NAN_BITS;
        assert.equal(nan, r >= c.startRow && r < c.startRow + c.tokens, `head ${h} row ${r}`);
      }
    }
    const rope = ORACLE_CASES.find((x) => x.kernel === 'rope_rotate_half');
    assert.ok(rope && rope.kernel === 'rope_rotate_half');
    const pos = caseInputs(rope).positions.data as Int32Array;
    assert.equal(pos[0], 0);
    assert.equal(pos[pos.length - 1], rope.maxPosition - 1);
    assert.ok(pos.every((p) => p >= 0 && p < rope.maxPosition));
  });

  test('writeCase names the problem: a missing, misshapen or undeclared tensor', () => {
    const c = ORACLE_CASES.find((x) => x.kernel === 'add');
    assert.ok(c);
    const full = withOutputs(c, caseInputs(c));
    const { out: _out, ...missing } = full;
    assert.throws(() => writeCase(join(root, 'bad1'), c, missing), /lacks tensor out/);
    const short: HostTensor = { dtype: 'bf16', shape: [1, 2], data: new Uint16Array(2) };
    assert.throws(() => writeCase(join(root, 'bad2'), c, { ...full, a: short }), /tensor a has shape \[1,2\]/);
    assert.throws(() => writeCase(join(root, 'bad3'), c, { ...full, extra: short }), /undeclared tensors extra/);
  });
});
