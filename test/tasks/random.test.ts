import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/tasks/random.js';
import { pyIntKey, pyRound2, pySplit, pyStrip } from '../../src/tasks/python-text.js';

test('SeededRandom: same seed same stream, different seeds differ', () => {
  const a = new SeededRandom(43);
  const b = new SeededRandom(43);
  const c = new SeededRandom(44);
  const sa = Array.from({ length: 20 }, () => a.nextUint32());
  assert.deepEqual(sa, Array.from({ length: 20 }, () => b.nextUint32()));
  assert.notDeepEqual(sa, Array.from({ length: 20 }, () => c.nextUint32()));
  assert.notEqual(new SeededRandom(2 ** 40).nextUint32(), new SeededRandom(0).nextUint32());
  assert.throws(() => new SeededRandom(1.5), /safe integer/);
});

test('SeededRandom: helpers stay in range and cover it', () => {
  const r = new SeededRandom(1);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const x = r.int(7);
    assert.ok(x >= 0 && x < 7 && Number.isInteger(x));
    seen.add(x);
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    const y = r.intBetween(10000, 10002);
    assert.ok(y >= 10000 && y <= 10002);
  }
  assert.equal(seen.size, 7);
  const items = Array.from({ length: 30 }, (_, i) => i);
  const s = r.sample(items, 10);
  assert.equal(new Set(s).size, 10);
  const shuffled = r.shuffle(items.slice());
  assert.deepEqual(shuffled.slice().sort((x, y) => x - y), items);
  assert.notDeepEqual(shuffled, items);
  assert.throws(() => r.sample(items, 31), /cannot sample/);
});

test('Python string semantics: whitespace, digits, round', () => {
  assert.equal(pyStrip('\x1c a b \x85'), 'a b');
  assert.equal(pyStrip('\ufeffx'), '\ufeffx', 'U+FEFF is not whitespace in Python');
  assert.deepEqual(pySplit(' a\u2003b\x1fc '), ['a', 'b', 'c']);
  assert.deepEqual(pySplit('   '), []);
  assert.equal(pyIntKey('007'), '7');
  assert.equal(pyIntKey('١٢'), '12');
  assert.equal(pyIntKey('𝟗𝟘'), '90'); // mathematical digits: several runs of 0–9 back to back
  assert.equal(pyRound2(0.125), 0.12);
  assert.equal(pyRound2(0.335), 0.34);
  assert.equal(pyRound2(2 / 3), 0.67);
});
