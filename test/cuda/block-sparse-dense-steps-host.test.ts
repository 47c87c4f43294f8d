/**
 * bench/block-sparse-dense-steps.ts's command line (runs here, no GPU): defaults, the lengths its every-chunk
 * lists allow, and labels that name no wgmma tiling refused before any work.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDenseStepsArgs } from '../../bench/block-sparse-dense-steps.js';
import { BenchArgsError } from '../../bench/bench-args.js';

test('block-sparse-dense-steps: defaults are 16K, 5 repeats, the 192-row automatic flag set', () => {
  assert.deepEqual({ ...parseDenseStepsArgs([]) }, { lengths: [16384], repeats: 5, variants: ['wgmma-c3-n64-s3-kv-ms-eb'], out: null });
  const o = parseDenseStepsArgs(['--lengths', '2048,32768', '--variants', 'wgmma-c3-n64-s3-kv-ms-eb,wgmma-c3-n64-s3-kv-ms-eb-sf', '--repeats', '3', '--out', 'd.json']);
  assert.deepEqual([o.lengths, o.variants.length, o.repeats, o.out], [[2048, 32768], 2, 3, 'd.json']);
});

test('block-sparse-dense-steps: refuses lengths past 32K (lists of every chunk) and labels of no wgmma tiling, naming the option', () => {
  const refuses = (argv: string[], message: RegExp) => assert.throws(() => parseDenseStepsArgs(argv), (e: Error) => e instanceof BenchArgsError && message.test(e.message));
  refuses(['--lengths', '16384,65536'], /^--lengths: bad length \(at most 32768: lists of every chunk\) "65536"$/);
  refuses(['--variants', 'auto'], /^--variants: auto is not a block-sparse wgmma label/);
  refuses(['--variants', 'wgmma-n128-s2-kv-eb'], /^--variants: wgmma-n128-s2-kv-eb: .*entBallot needs maskSelect or maskFirst/);
  refuses(['--repeats', '0'], /^--repeats: bad repeat count/);
});
