/**
 * The radix sort behind FlexPrefill's coverage curves on GPU scores: the same values in the same order
 * as a comparison sort, and the same prefix sums as the CPU method's sortedPrefixSums.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { sortedPrefixSums, sortedPrefixSumsOfFloat32 } from '../../src/methods/flexprefill.js';
import { sortFloat32Descending } from '../../src/methods/select.js';

/** Float64Array.sort ascending, then reversed: the CPU method's order. */
function comparisonDescending(values: Float32Array): Float64Array {
  return Float64Array.from(values).sort().reverse();
}

function sameValues(actual: Float32Array, expected: Float64Array): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Number.isNaN(expected[i])) assert.ok(Number.isNaN(actual[i]), `index ${i}: expected NaN, got ${actual[i]}`);
    else assert.equal(actual[i], expected[i], `index ${i}`);
  }
}

describe('sortFloat32Descending', () => {
  test('equals the comparison sort on any float32 values (signs, zeros, infinities, NaN, repeats)', () => {
    const special = [0, -0, 1, -1, Infinity, -Infinity, NaN, 1e-45, -1e-45, 3.4e38, -3.4e38, 0.5, 0.5];
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.float({ noDefaultInfinity: false }), fc.constantFrom(...special)), { maxLength: 300 }), (xs) => {
        const values = Float32Array.from(xs);
        sameValues(sortFloat32Descending(values), comparisonDescending(values));
      }),
      { numRuns: 300 },
    );
  });

  test('leaves its input alone and handles the empty array', () => {
    const values = Float32Array.from([3, 1, 2]);
    assert.deepEqual(Array.from(sortFloat32Descending(values)), [3, 2, 1]);
    assert.deepEqual(Array.from(values), [3, 1, 2]);
    assert.equal(sortFloat32Descending(new Float32Array(0)).length, 0);
  });

  test('a subarray view sorts only its own elements', () => {
    const backing = Float32Array.from([9, 4, 7, 1, 8]);
    assert.deepEqual(Array.from(sortFloat32Descending(backing.subarray(1, 4))), [7, 4, 1]);
  });
});

describe('sortedPrefixSumsOfFloat32', () => {
  test('is bit-identical to sortedPrefixSums over the same scores in float64', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 400 }), fc.integer({ min: 1, max: 4096 }), (xs, A) => {
        const scores = Float32Array.from(xs);
        const expected = sortedPrefixSums(Float64Array.from(scores), scores.length, 1 / A);
        assert.deepEqual(Array.from(sortedPrefixSumsOfFloat32(scores, 1 / A)), Array.from(expected));
      }),
      { numRuns: 200 },
    );
  });

  test('softmax-like scores of a long row: same coverage curve', () => {
    const n = 20000;
    const scores = new Float32Array(n);
    let seed = 7;
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      scores[i] = Math.exp(-8 * (seed / 2 ** 32)) / n;
    }
    const expected = sortedPrefixSums(Float64Array.from(scores), n, 1 / 512);
    assert.deepEqual(Array.from(sortedPrefixSumsOfFloat32(scores, 1 / 512)), Array.from(expected));
  });
});
