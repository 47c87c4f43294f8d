import { test } from 'node:test';
import assert from 'node:assert/strict';
import { budgetRows, formatTable, methodRows, parseParamFlags } from '../../src/cli/commands/methods.js';
import { listMethods } from '../../src/methods/index.js';

test('`methods` table lists every method with its four axes and parameters', () => {
  const text = formatTable(methodRows(listMethods()));
  const lines = text.trim().split('\n');
  assert.equal(lines.length, 2 + listMethods().length);
  assert.match(lines[0], /unit\s+importance estimation\s+budget\s+KV cache/);
  assert.match(text, /quest\s+decode\s+pages\s+page key min\/max upper bound\s+uniform\s+full, pages selected\s+pageSize=16/);
  assert.match(text, /flexprefill.*adaptive per head.*alpha \(budget; original 0.65\)/);
});

test('`methods --length` rows show derived budgets, and parameters parse per method', () => {
  const params = parseParamFlags(['snapkv.tokenCapacity=100', 'quest.sharePages=false', 'snapkv.kernelSize=7']);
  assert.deepEqual(params, { snapkv: { tokenCapacity: 100, kernelSize: 7 }, quest: { sharePages: false } });
  assert.throws(() => parseParamFlags(['nonsense']), /method.name=value/);
  const rows = budgetRows(listMethods(), 2048, 0.9, { block_sparse: { chunkSize: 0 } });
  const block = rows.find((r) => r[0] === 'block_sparse')!;
  assert.match(block[3], /chunkSize must be >= 1/);
  const quest = rows.find((r) => r[0] === 'quest')!;
  assert.match(quest[1], /pagesAtFirstStep=13, tokensAtFirstStep=209/);
});
