/**
 * Every bench's command line, pinned: the options each one reads from the same argv, defaults
 * included. Written against the hand-rolled parsers before they moved onto bench/bench-args.ts, so
 * the migration is checked to keep every flag name, default and value.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ATTENTION_ARGS, parseAttentionArgs } from '../../bench/attention.js';
import { BenchArgsError, BenchHelpRequested } from '../../bench/bench-args.js';
import { UNION_CPU_ARGS, parseUnionCpuArgs } from '../../bench/block-sparse-union-cpu.js';
import { L2_MODEL_ARGS, parseL2ModelArgs } from '../../bench/block-sparse-l2-model.js';
import { WASTE_MODEL_ARGS, parseWasteModelArgs } from '../../bench/block-sparse-waste-model.js';
import { WGMMA_MODEL_ARGS, parseWgmmaModelArgs } from '../../bench/block-sparse-wgmma-model.js';
import { BLOCK_SPARSE_ARGS, parseBlockSparseBenchArgs } from '../../bench/block-sparse.js';
import { CPU_BENCH_ARGS, parseCpuBenchArgs } from '../../bench/cpu.js';
import { KERNEL_ORACLE_ARGS, parseKernelOracleArgs } from '../../bench/kernel-oracle.js';
import { ORACLE_CASES } from '../../bench/kernel-oracle-cases.js';
import { MODEL_BENCH_ARGS, parseModelBenchArgs } from '../../bench/model.js';
import { ORGANISM_SHAPES_ARGS, parseOrganismShapesArgs } from '../../bench/organism-shapes.js';
import { SPARSE_ACTIVATIONS_ARGS, main as sparseActivationsMain, parseSparseActivationsArgs } from '../../bench/sparse-activations.js';

describe('bench attention', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseAttentionArgs([]) }, {
      lengths: [4096, 16384, 32768, 65536], decodeLengths: [8192, 32768, 131072], out: null, checkDir: null, repeats: 10,
      variants: null, decodeVariants: null, decodeKvHeads: 8,
    });
  });
  test('every flag', () => {
    const o = parseAttentionArgs([
      '--lengths', '4096,8192', '--decode-lengths', '32768', '--out', 'a.json', '--check-dir', '/tmp/c', '--repeats', '3',
      '--variants', 'w4m2n64g,wgmma3-n128g', '--decode-variants', 't256u2w1c', '--decode-kv-heads', '7',
    ]);
    assert.deepEqual({ ...o }, {
      lengths: [4096, 8192], decodeLengths: [32768], out: 'a.json', checkDir: '/tmp/c', repeats: 3,
      variants: ['w4m2n64g', 'wgmma3-n128g'], decodeVariants: ['t256u2w1c'], decodeKvHeads: 7,
    });
  });
  test("'none' skips a part (tools/device/prefill-wgmma-job.sh passes --decode-lengths none)", () => {
    const o = parseAttentionArgs(['--lengths', 'none', '--decode-lengths', 'none']);
    assert.deepEqual([o.lengths, o.decodeLengths], [[], []]);
  });
  test('the last of a repeated flag wins', () => {
    assert.deepEqual(parseAttentionArgs(['--repeats', '2', '--repeats', '4']).repeats, 4);
  });
  test('tools/device/run-job.sh\'s command line', () => {
    const o = parseAttentionArgs(['--out', '/o/attention.json', '--check-dir', '/tmp/sf-attention-check', '--lengths', '4096', '--decode-lengths', '32768']);
    assert.deepEqual([o.out, o.checkDir, o.lengths, o.decodeLengths], ['/o/attention.json', '/tmp/sf-attention-check', [4096], [32768]]);
  });
});

describe('bench cpu', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseCpuBenchArgs([]) }, { lengths: [256, 1024, 4096], decodeSteps: 16, quick: false, kernel: 'auto', skipMatmul: false });
  });
  test('--quick shortens the default lengths, not given ones', () => {
    assert.deepEqual(parseCpuBenchArgs(['--quick']).lengths, [64, 256]);
    assert.deepEqual(parseCpuBenchArgs(['--quick', '--lengths', '8,12']).lengths, [8, 12]);
    assert.deepEqual(parseCpuBenchArgs(['--lengths', '8,12', '--quick']).lengths, [8, 12]);
  });
  test('every flag', () => {
    assert.deepEqual({ ...parseCpuBenchArgs(['--lengths', '8,12', '--decode-steps', '2', '--quick', '--kernel', 'js-blocked', '--skip-matmul']) },
      { lengths: [8, 12], decodeSteps: 2, quick: true, kernel: 'js-blocked', skipMatmul: true });
  });
});

describe('kernel oracle', () => {
  test('--out required, --cases optional', () => {
    assert.deepEqual({ ...parseKernelOracleArgs(['--out', '/tmp/k']) }, { out: '/tmp/k', cases: null });
    const two = ORACLE_CASES.slice(0, 2).map((c) => c.name);
    assert.deepEqual({ ...parseKernelOracleArgs(['--cases', two.join(','), '--out', 'd']) }, { out: 'd', cases: two });
  });
  test('no --out, an unknown case: refused', () => {
    assert.throws(() => parseKernelOracleArgs([]), /--out/);
    assert.throws(() => parseKernelOracleArgs(['--out', 'd', '--cases', 'no_such_case']), /no_such_case/);
  });
});

describe('bench model', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseModelBenchArgs([]) }, {
      shapes: ['llama3.1-8b', 'qwen2.5-7b'], lengths: [4096, 16384], decodeSteps: 32, repeats: 2, out: null, configDir: null,
    });
  });
  test('every flag (and run-job.sh\'s)', () => {
    const o = parseModelBenchArgs(['--out', '/o/model.json', '--config-dir', '/tmp/cfg', '--shapes', 'qwen2.5-7b', '--lengths', '1024',
      '--decode-steps', '4', '--repeats', '1']);
    assert.deepEqual({ ...o }, { shapes: ['qwen2.5-7b'], lengths: [1024], decodeSteps: 4, repeats: 1, out: '/o/model.json', configDir: '/tmp/cfg' });
  });
  test('an unknown shape is refused, naming the known ones', () => {
    assert.throws(() => parseModelBenchArgs(['--shapes', 'gpt2']), /gpt2.*llama3\.1-8b/);
  });
});

describe('bench block-sparse (moved off its leftover-argument splitter in session 9)', () => {
  const grid = { lengths: [16384, 32768, 65536, 131072], sparsities: [0.5, 0.8, 0.9, 0.95], repeats: 5, out: null };
  const refuses = (parse: () => unknown, message: RegExp) => assert.throws(parse, (e: Error) => e instanceof BenchArgsError && message.test(e.message));
  test('defaults: the paper grid, 5 repeats, the mma.sync variants, c = 16, no switches', () => {
    assert.deepEqual({ ...parseBlockSparseBenchArgs([]) }, { ...grid, variants: ['h1m1', 'h1m2', 'h4m2'], chunk: 16, validateOnce: false, splitSteps: false });
  });
  test('every flag, in any order, as the splitter read them', () => {
    assert.deepEqual({ ...parseBlockSparseBenchArgs(['--lengths', '16384', '--chunk', '64', '--variants', 'auto,auto-lm', '--validate-once']) },
      { ...grid, lengths: [16384], variants: ['auto', 'auto-lm'], chunk: 64, validateOnce: true, splitSteps: false });
    assert.deepEqual({ ...parseBlockSparseBenchArgs(['--split-steps', '--out', 'x.json', '--repeats', '2', '--sparsities', '0,0.9', '--variants', 'wgmma-c3-n64-s3-kv-ms-eb,,auto,', '--lengths', '64,128']) },
      { lengths: [64, 128], sparsities: [0, 0.9], repeats: 2, out: 'x.json', variants: ['wgmma-c3-n64-s3-kv-ms-eb', 'auto'], chunk: 16, validateOnce: false, splitSteps: true });
  });
  test('the documented command lines (tools/device/block-sparse-wgmma-job.sh, docs/perf.md, the session 9 rounds) parse unchanged', () => {
    const c3 = 'wgmma-c3-n64-s3-kv';
    // A B C A B C: a variant named twice is timed twice (bracketed rounds), so labels are kept in order with repeats.
    const bracketed = [`${c3}-ms-eb`, `${c3}-mf-eb`, `${c3}-ms-eb-sf`, `${c3}-ms-eb`, `${c3}-mf-eb`, `${c3}-ms-eb-sf`];
    assert.deepEqual({ ...parseBlockSparseBenchArgs(['--lengths', '2048,65536', '--sparsities', '0.5,0.8,0.9,0.95', '--repeats', '5', '--validate-once', '--variants', bracketed.join(','), '--out', '/tmp/bs/c16-64k.json']) },
      { lengths: [2048, 65536], sparsities: [0.5, 0.8, 0.9, 0.95], repeats: 5, out: '/tmp/bs/c16-64k.json', variants: bracketed, chunk: 16, validateOnce: true, splitSteps: false });
    const c64 = parseBlockSparseBenchArgs(['--chunk', '64', '--lengths', '2048,16384', '--sparsities', '0.5,0.9,0.95', '--repeats', '5', '--validate-once', '--split-steps', '--variants', `${c3}-lm-ms-eb,${c3}-mf-eb`, '--out', 'o.json']);
    assert.deepEqual([c64.chunk, c64.validateOnce, c64.splitSteps, c64.variants], [64, true, true, [`${c3}-lm-ms-eb`, `${c3}-mf-eb`]]);
    const job = parseBlockSparseBenchArgs(['--lengths', '16384,65536', '--repeats', '5', '--variants', 'auto,wgmma-n128-s2,wgmma-n64-s3,wgmma-c3-n64-s3,wgmma-c3-n64-s4', '--out', 'b.json']);
    assert.deepEqual([job.lengths, job.sparsities, job.variants.length], [[16384, 65536], grid.sparsities, 5]);
    const perf = parseBlockSparseBenchArgs(['--lengths', '32768,131072,65536', '--sparsities', '0.8,0.9,0.95', '--repeats', '5', '--variants', 'wgmma-n128-s2,wgmma-c3-n64-s3,auto,wgmma-c3-n64-s3,wgmma-n128-s2']);
    assert.deepEqual(perf.variants, ['wgmma-n128-s2', 'wgmma-c3-n64-s3', 'auto', 'wgmma-c3-n64-s3', 'wgmma-n128-s2']);
  });
  test('refused, naming the option: a chunk size other than 16 or 64, a length below one chunk, a bad label, a bad grid', () => {
    refuses(() => parseBlockSparseBenchArgs(['--chunk', '32']), /^--chunk: bad chunk size \(16 or 64\) "32"$/);
    refuses(() => parseBlockSparseBenchArgs(['--chunk']), /^--chunk needs a value$/);
    refuses(() => parseBlockSparseBenchArgs(['--lengths', '8']), /^--lengths: bad length \(an integer >= 16\) "8"$/);
    refuses(() => parseBlockSparseBenchArgs(['--chunk', '64', '--lengths', '2048,32']), /^--lengths: bad length \(an integer >= 64, one --chunk\) "32"$/);
    refuses(() => parseBlockSparseBenchArgs(['--variants', 'auto,wgmma-n128-s2-kv-fast']), /^--variants: wgmma-n128-s2-kv-fast is neither h<heads>m<tiles>/);
    refuses(() => parseBlockSparseBenchArgs(['--variants', ',']), /^--variants: an empty list$/);
    refuses(() => parseBlockSparseBenchArgs(['--sparsities', '1']), /^--sparsities: bad sparsity \(in \[0, 1\)\) "1"$/);
    refuses(() => parseBlockSparseBenchArgs(['--repeats', '0']), /^--repeats: bad repeat count \(an integer >= 1\) "0"$/);
    refuses(() => parseBlockSparseBenchArgs(['--validate-once=yes']), /^--validate-once takes no value \(got "yes"\)$/);
    refuses(() => parseBlockSparseBenchArgs(['--fast']), /^block-sparse: unknown argument --fast/);
  });
});

describe('CPU models of the block-sparse kernels', () => {
  test('block-sparse-l2-model', () => {
    assert.deepEqual({ ...parseL2ModelArgs([]) }, { lengths: [16384, 32768, 65536, 131072], sparsities: [0.8, 0.9, 0.95], l2Mb: [50, 25], tilings: ['n128', 'c3'] });
    assert.deepEqual({ ...parseL2ModelArgs(['--lengths', '16384', '--sparsities', '0.9', '--l2-mb', '25', '--tilings', 'n64,c3']) },
      { lengths: [16384], sparsities: [0.9], l2Mb: [25], tilings: ['n64', 'c3'] });
    assert.throws(() => parseL2ModelArgs(['--tilings', 'n32']), /--tilings: "?n32/);
  });
  test('block-sparse-waste-model', () => {
    assert.deepEqual({ ...parseWasteModelArgs([]) }, { lengths: [16384], sparsities: [0.5, 0.8, 0.9, 0.95] });
    assert.deepEqual({ ...parseWasteModelArgs(['--sparsities', '0.9', '--lengths', '2048,4096']) }, { lengths: [2048, 4096], sparsities: [0.9] });
  });
  test('block-sparse-wgmma-model', () => {
    assert.deepEqual({ ...parseWgmmaModelArgs([]) }, { lengths: [16384, 65536], sparsities: [0.5, 0.8, 0.9, 0.95], rows: null });
    assert.deepEqual({ ...parseWgmmaModelArgs(['--lengths', '4096', '--sparsities', '0.5', '--rows', '128,192,256']) },
      { lengths: [4096], sparsities: [0.5], rows: [128, 192, 256] });
  });
  test('block-sparse-union-cpu', () => {
    assert.deepEqual({ ...parseUnionCpuArgs([]) }, { model: 'models/organism', task: 'niah', length: 4096, sparsities: [0.5, 0.8, 0.9, 0.95], seed: 43 });
    assert.deepEqual({ ...parseUnionCpuArgs(['--model', 'm', '--task', 'vt', '--length', '2048', '--sparsities', '0.9', '--seed', '7']) },
      { model: 'm', task: 'vt', length: 2048, sparsities: [0.9], seed: 7 });
    assert.throws(() => parseUnionCpuArgs(['--length', '512']), /--length/);
    assert.throws(() => parseUnionCpuArgs(['--sparsities', '1']), /--sparsities/);
  });
});

describe('organism-shapes', () => {
  const defaultShapes = [
    { layers: 6, hidden: 256, heads: 4, kvHeads: 2, mlp: 768 }, { layers: 8, hidden: 384, heads: 6, kvHeads: 2, mlp: 1152 },
    { layers: 8, hidden: 320, heads: 5, kvHeads: 1, mlp: 960 }, { layers: 6, hidden: 384, heads: 6, kvHeads: 2, mlp: 1152 },
  ];
  test('defaults (--out required)', () => {
    assert.deepEqual({ ...parseOrganismShapesArgs(['--out', '/tmp/s']) }, {
      out: '/tmp/s', shapes: defaultShapes, lengths: [1792, 2048, 4096], decodeSteps: 48, repeats: 1, tokenizer: 'models/organism', buildOnly: false,
    });
    assert.throws(() => parseOrganismShapesArgs([]), /--out/);
  });
  test('every flag', () => {
    const o = parseOrganismShapesArgs(['--out', 'o', '--shapes', '2x128x2x1x192', '--lengths', '64', '--decode-steps', '3', '--repeats', '2',
      '--tokenizer', 't', '--build-only']);
    assert.deepEqual({ ...o }, {
      out: 'o', shapes: [{ layers: 2, hidden: 128, heads: 2, kvHeads: 1, mlp: 192 }], lengths: [64], decodeSteps: 3, repeats: 2, tokenizer: 't', buildOnly: true,
    });
  });
});

describe('bench sparse-activations', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseSparseActivationsArgs([]) }, {
      model: 'models/organism', tasks: ['niah', 'vt', 'story_retrieval', 'cwe'], examples: 2, lengths: [4096, 8192, 16384],
      sparsities: [0.5, 0.8, 0.9, 0.95], methods: null, repeats: 5, seed: 43, random: true, replicate: 1, warmupS: 1.5, timeBudgetS: 480, out: null,
    });
  });
  test('every flag', () => {
    const o = parseSparseActivationsArgs(['--model', 'm', '--tasks', 'niah', '--examples', '1', '--lengths', '4096', '--sparsities', '0.9',
      '--methods', 'block_sparse,vertical_slash', '--repeats', '2', '--seed', '0', '--no-random', '--replicate', '8', '--warmup', '0',
      '--time-budget', '30', '--out', 'x.json']);
    assert.deepEqual({ ...o }, {
      model: 'm', tasks: ['niah'], examples: 1, lengths: [4096], sparsities: [0.9], methods: ['block_sparse', 'vertical_slash'], repeats: 2, seed: 0,
      random: false, replicate: 8, warmupS: 0, timeBudgetS: 30, out: 'x.json',
    });
  });
});

// Since the move onto bench/bench-args.ts: values the old parsers let through are refused, naming the
// option, and every bench answers --help with a usage generated from its table.
describe('after the move: bad values named, --help everywhere', () => {
  const refuses = (parse: () => unknown, message: RegExp) => assert.throws(parse, (e: Error) => e instanceof BenchArgsError && message.test(e.message));
  test('values the hand-rolled parsers took unchecked', () => {
    refuses(() => parseAttentionArgs(['--repeats', 'many']), /^--repeats: bad repeat count \(an integer >= 1\) "many"$/);
    refuses(() => parseAttentionArgs(['--variants', ',']), /^--variants: an empty list$/);
    refuses(() => parseCpuBenchArgs(['--decode-steps', 'x']), /^--decode-steps: bad step count/);
    refuses(() => parseCpuBenchArgs(['--kernel', 'cuda']), /^--kernel: "cuda" is not auto, wasm-simd, wasm-simd-threads or js-blocked$/);
    refuses(() => parseCpuBenchArgs(['--no-such-flag']), /^bench cpu: unknown argument --no-such-flag/);
    refuses(() => parseL2ModelArgs(['--lengths', '16384,x']), /^--lengths: bad length \(an integer >= 16\) "x"$/);
    refuses(() => parseL2ModelArgs(['--l2-mb', '0']), /^--l2-mb: bad size in MB \(> 0\) "0"$/);
    refuses(() => parseL2ModelArgs(['--lengths']), /^--lengths needs a value$/);
    refuses(() => parseWasteModelArgs(['--sparsities', '1']), /^--sparsities: bad sparsity \(in \[0, 1\)\) "1"$/);
    refuses(() => parseWgmmaModelArgs(['--rows', '32']), /^--rows: bad row count \(an integer >= 64\) "32"$/);
    refuses(() => parseUnionCpuArgs(['--seed', '-1']), /^--seed: bad seed \(an integer >= 0\) "-1"$/);
    refuses(() => parseOrganismShapesArgs(['--out', 'o', '--shapes', '8x384x6x2']), /^--shapes: shape "8x384x6x2": expected layers x hidden/);
    refuses(() => parseKernelOracleArgs(['--out']), /^--out needs a value$/);
  });
  test('sparse-activations refuses a method with no GPU prefill implementation before it looks for a GPU', async () => {
    await assert.rejects(sparseActivationsMain(['--methods', 'quest']), /^Error: --methods: no GPU prefill method quest \(GPU prefill methods: .*block_sparse/);
  });
  const tables = [ATTENTION_ARGS, CPU_BENCH_ARGS, KERNEL_ORACLE_ARGS, MODEL_BENCH_ARGS, L2_MODEL_ARGS, WASTE_MODEL_ARGS, WGMMA_MODEL_ARGS,
    UNION_CPU_ARGS, ORGANISM_SHAPES_ARGS, SPARSE_ACTIVATIONS_ARGS, BLOCK_SPARSE_ARGS];
  for (const args of tables) {
    test(`${args.program}: --help gives a usage naming every option`, () => {
      assert.throws(() => args.parse(['--help']), (e: Error) => e instanceof BenchHelpRequested && e.usage === args.usage());
      const usage = args.usage();
      for (const name of Object.keys(args.table)) assert.match(usage, new RegExp(`^  --${name}\\b`, 'm'), `--${name}`);
    });
  }
});
