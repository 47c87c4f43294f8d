/**
 * The kernel benches' command lines, pinned like test/bench/bench-options.test.ts: the options each
 * reads from the same argv, defaults included, written against the hand-rolled parsers before they
 * moved onto bench/bench-args.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BenchArgsError, BenchHelpRequested } from '../../bench/bench-args.js';
import { QUEST_SELECTION_ARGS, parseQuestSelectionArgs } from '../../bench/quest-selection.js';
import { QUEST_STEP_ARGS, parseQuestStepArgs } from '../../bench/quest-step.js';
import { SPARSE_DECODE_ARGS, parseSparseDecodeArgs } from '../../bench/sparse-decode.js';
import { SPARSE_BENCH_ARGS, main as sparseMain, parseSparseBenchArgs } from '../../bench/sparse.js';
import { VS_ESTIMATION_ARGS, parseVsEstimationArgs } from '../../bench/vertical-slash-estimation.js';
import { VS_SMALL_HEADS_ARGS, parseVsSmallHeadsArgs } from '../../bench/vertical-slash-small-heads.js';
import { VERTICAL_SLASH_ARGS, parseVerticalSlashArgs } from '../../bench/vertical-slash.js';
import { VS_SEARCH_TIMING_ARGS, parseVsSearchTimingArgs } from '../../bench/vertical-slash-search-timing.js';

const GRID = { lengths: [16384, 32768, 65536, 131072], sparsities: [0.5, 0.8, 0.9, 0.95] };

describe('bench sparse', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseSparseBenchArgs([]) }, { ...GRID, methods: null, phases: ['prefill', 'decode'], repeats: 5, timeBudgetS: 480, out: null, blockSparseChunks: [16] });
  });
  test('every flag', () => {
    const o = parseSparseBenchArgs(['--lengths', '1024,2048', '--sparsities', '0.9', '--methods', 'quest,snapkv', '--phases', 'decode', '--repeats', '3',
      '--time-budget', '60', '--out', 'x.json', '--block-sparse-chunks', '16,64,64']);
    assert.deepEqual({ ...o }, { lengths: [1024, 2048], sparsities: [0.9], methods: ['quest', 'snapkv'], phases: ['decode'], repeats: 3, timeBudgetS: 60, out: 'x.json', blockSparseChunks: [16, 64] });
  });
});

describe('quest-step', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseQuestStepArgs([]) }, {
      lengths: [131072, 65536], sparsities: [0.5, 0.8, 0.9, 0.95], variants: ['default', 'v7'], heads: [{ H: 32, Hkv: 8 }], alternateScale: false, repeats: 40, out: null,
    });
  });
  test('every flag', () => {
    const o = parseQuestStepArgs(['--lengths', '65536', '--sparsities', '0.9', '--variants', 'v8,v10h', '--heads', '32:32,64:8', '--alternate-scale', '--repeats', '8', '--out', 'q.json']);
    assert.deepEqual({ ...o }, {
      lengths: [65536], sparsities: [0.9], variants: ['v8', 'v10h'], heads: [{ H: 32, Hkv: 32 }, { H: 64, Hkv: 8 }], alternateScale: true, repeats: 8, out: 'q.json',
    });
  });
});

describe('quest-selection', () => {
  test('defaults: every version, the kernel grid', () => {
    const o = parseQuestSelectionArgs([]);
    assert.deepEqual({ ...o, versions: [...o.versions] }, { ...GRID, repeats: 10, out: null, versions: ['v4', 'v5', 'v6', 'v7', 'v8', 'v9', 'v10', 'v8h4'] });
  });
  test('every flag', () => {
    const o = parseQuestSelectionArgs(['--versions', 'v8,v10', '--lengths', '32768', '--sparsities', '0.95', '--repeats', '3', '--out', 's.json']);
    assert.deepEqual({ ...o, versions: [...o.versions] }, { lengths: [32768], sparsities: [0.95], repeats: 3, out: 's.json', versions: ['v8', 'v10'] });
  });
});

describe('sparse-decode', () => {
  test('defaults and every flag', () => {
    assert.deepEqual({ ...parseSparseDecodeArgs([]) }, { ...GRID, repeats: 10, out: null });
    assert.deepEqual({ ...parseSparseDecodeArgs(['--lengths', '16384', '--sparsities', '0.5,0.9', '--repeats', '2', '--out', 'd.json']) },
      { lengths: [16384], sparsities: [0.5, 0.9], repeats: 2, out: 'd.json' });
  });
});

describe('vertical-slash', () => {
  test('defaults: both mma row tilings, no wgmma', () => {
    assert.deepEqual({ ...parseVerticalSlashArgs([]) }, { ...GRID, repeats: 3, out: null, wgmmaStages: [], rowTiles: [1, 2] });
  });
  test('every flag', () => {
    const o = parseVerticalSlashArgs(['--wgmma', '3,4', '--lengths', '4096', '--mma', '1', '--sparsities', '0.9', '--repeats', '1', '--out', 'v.json']);
    assert.deepEqual({ ...o }, { lengths: [4096], sparsities: [0.9], repeats: 1, out: 'v.json', wgmmaStages: [3, 4], rowTiles: [1] });
  });
});

describe('vertical-slash-estimation', () => {
  test('defaults and every flag', () => {
    assert.deepEqual({ ...parseVsEstimationArgs([]) }, { lengths: [16384, 131072], sparsities: [0.5, 0.9], repeats: 3 });
    assert.deepEqual({ ...parseVsEstimationArgs(['--lengths', '4096', '--sparsities', '0.8', '--repeats', '1']) }, { lengths: [4096], sparsities: [0.8], repeats: 1 });
  });
});

describe('vertical-slash-small-heads', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseVsSmallHeadsArgs([]) }, {
      cases: [{ shape: 'organism', n: 4096 }, { shape: 'organism', n: 16384 }, { shape: 'llama', n: 16384 }], sparsities: [0.9], levels: [1, 2, 3, 4, 5],
      variants: null, repeats: 5, organismConfig: 'models/organism/config.json', out: null,
    });
  });
  test('every flag', () => {
    const o = parseVsSmallHeadsArgs(['--cases', 'llama:4096', '--sparsities', '0.5,0.95', '--levels', '2,3', '--variants', 'auto,one-probe,batched-L4+handoff',
      '--repeats', '2', '--organism-config', 'c.json', '--out', 'h.json']);
    assert.deepEqual({ ...o }, {
      cases: [{ shape: 'llama', n: 4096 }], sparsities: [0.5, 0.95], levels: [2, 3], variants: ['auto', 'one-probe', 'batched-L4+handoff'], repeats: 2,
      organismConfig: 'c.json', out: 'h.json',
    });
  });
});

describe('vertical-slash-search-timing', () => {
  test('defaults', () => {
    assert.deepEqual({ ...parseVsSearchTimingArgs([]) }, {
      cases: [
        { kind: 'synthetic', H: 4, n: 16384, scores: 'peaked' }, { kind: 'synthetic', H: 4, n: 16384, scores: 'flat' }, { kind: 'synthetic', H: 4, n: 4096, scores: 'peaked' },
        { kind: 'synthetic', H: 32, n: 16384, scores: 'peaked' }, { kind: 'method', model: 'organism', n: 16384 }, { kind: 'method', model: 'organism', n: 4096 },
        { kind: 'method', model: 'llama', n: 16384 },
      ],
      variants: ['guided', 'unguided', 'lean'], sparsity: 0.9, repeats: 5, out: null,
    });
  });
  test('every flag', () => {
    const o = parseVsSearchTimingArgs(['--cases', 'synthetic:32:4096:flat,method:llama:256', '--variants', 'lean,compact', '--sparsity', '0.95', '--repeats', '2', '--out', 't.json']);
    assert.deepEqual({ ...o }, {
      cases: [{ kind: 'synthetic', H: 32, n: 4096, scores: 'flat' }, { kind: 'method', model: 'llama', n: 256 }], variants: ['lean', 'compact'],
      sparsity: 0.95, repeats: 2, out: 't.json',
    });
    assert.throws(() => parseVsSearchTimingArgs(['--variants', 'lean,warp']), /--variants/);
  });
});

// Since the move onto bench/bench-args.ts: values the old parsers let through are refused, naming the
// option, and every bench answers --help with a usage generated from its table.
describe('after the move: bad values named, --help everywhere', () => {
  const refuses = (parse: () => unknown, message: RegExp) => assert.throws(parse, (e: Error) => e instanceof BenchArgsError && message.test(e.message));
  test('values the hand-rolled parsers took unchecked, and their own checks', () => {
    refuses(() => parseVsEstimationArgs(['--repeats', 'x']), /^--repeats: bad repeat count \(an integer >= 1\) "x"$/);
    refuses(() => parseVsEstimationArgs(['--lengths', '4096,']), /^--lengths: bad length/);
    refuses(() => parseVerticalSlashArgs(['--wgmma', '5']), /^--wgmma: bad stage count \(2, 3 or 4\) "5"$/);
    refuses(() => parseVerticalSlashArgs(['--mma', '3']), /^--mma: bad row tiling \(1 or 2\) "3"$/);
    refuses(() => parseQuestSelectionArgs(['--versions', 'v3']), /^--versions: "v3" is not v4, v5/);
    refuses(() => parseQuestStepArgs(['--heads', '32:5']), /^--heads: "32:5" is not H:Hkv/);
    refuses(() => parseQuestStepArgs(['--repeats', '3']), /^--repeats: bad repeat count \(an integer >= 4\) "3"$/);
    refuses(() => parseQuestStepArgs(['--variants', 'v6']), /^--variants: "v6" is not default, v5/);
    refuses(() => parseVsSmallHeadsArgs(['--sparsities', '0']), /^--sparsities: bad sparsity \(in \(0, 1\)\) "0"$/);
    refuses(() => parseVsSmallHeadsArgs(['--cases', 'llama:32']), /^--cases: organism:N or llama:N with N >= 64 \(got llama:32\)$/);
    refuses(() => parseVsSmallHeadsArgs(['--variants', 'one-probe+lanes']), /^--variants: \+lanes needs a batched variant/);
    refuses(() => parseVsSearchTimingArgs(['--cases', 'method:llama:128']), /^--cases: synthetic:H:N:flat\|peaked or method:organism\|llama:N with N in \[256, 131040\] \(got method:llama:128\)$/);
    refuses(() => parseVsSearchTimingArgs(['--sparsity', '1']), /^--sparsity: bad sparsity \(in \(0, 1\)\) "1"$/);
    refuses(() => parseSparseDecodeArgs(['--lengths', '512']), /^--lengths: bad length \(an integer >= 1024\) "512"$/);
    refuses(() => parseSparseBenchArgs(['--block-sparse-chunks', '24']), /^--block-sparse-chunks: bad chunk size \(a multiple of 16\) "24"$/);
  });
  test('bench sparse refuses a method with no GPU implementation before it looks for a GPU', async () => {
    await assert.rejects(sparseMain(['--methods', 'nope']), /^Error: --methods: no GPU implementation of nope \(GPU methods: .*quest/);
  });
  const tables = [SPARSE_BENCH_ARGS, QUEST_STEP_ARGS, QUEST_SELECTION_ARGS, SPARSE_DECODE_ARGS, VERTICAL_SLASH_ARGS, VS_ESTIMATION_ARGS, VS_SMALL_HEADS_ARGS, VS_SEARCH_TIMING_ARGS];
  for (const args of tables) {
    test(`${args.program}: --help gives a usage naming every option`, () => {
      assert.throws(() => args.parse(['--help']), (e: Error) => e instanceof BenchHelpRequested && e.usage === args.usage());
      for (const name of Object.keys(args.table)) assert.match(args.usage(), new RegExp(`^  --${name}\\b`, 'm'), `--${name}`);
    });
  }
});
