/**
 * A minimal task fixture with the Task interface for runner tests. The real tasks need thousands of
 * tokens with the tiny byte-level tokenizer (minutes of CPU), so this one is a short prompt naming a
 * word, padded with filler to the target length, scored 1 when the output contains the word, and
 * dropped (null) for every third example.
 */
import type { Task, TaskExample } from '../../src/tasks/types.js';

const WORDS = ['apple', 'river', 'stone', 'cloud', 'amber', 'delta'];

export const echoTask: Task<Record<string, unknown>, { word: string; index: number }> = {
  name: 'echo',
  family: 'ruler',
  metric: 'accuracy',
  description: 'test fixture: repeat a word',
  // A generator parameter, so experiments' task parameters can be seen reaching the generator.
  defaults: { wordOffset: 0 },
  smallestLength: 32,
  generate({ tokenizer, length, count, seed = 43, firstIndex = 0, params }) {
    const offset = Number(params?.wordOffset ?? 0);
    const out: TaskExample<{ word: string; index: number }>[] = [];
    for (let index = firstIndex; index < firstIndex + count; index++) {
      const word = WORDS[(seed + index + offset) % WORDS.length];
      let prompt = `Repeat the word ${word}.`;
      // Pad with filler up to the target length so the attention methods have something to skip.
      while (tokenizer.encodeUserPrompt(`${prompt} filler`).length <= length) prompt += ' filler';
      const inputIds = tokenizer.encodeUserPrompt(prompt);
      if (inputIds.length > length) throw new Error(`task echo, length ${length}, seed ${seed}, example ${index}: the prompt alone needs ${inputIds.length} tokens`);
      out.push({
        id: `echo/n${length}/s${seed}/${index}`, task: 'echo', index, seed, length, prompt, inputIds, inputLength: inputIds.length,
        rawLength: tokenizer.encode(prompt).length, gold: { word, index }, goldLength: 1, meta: {},
      });
    }
    return out;
  },
  score(example, output) {
    if (example.gold.index % 3 === 2) return { score: null, details: { dropped: true } };
    return { score: output.includes(example.gold.word) ? 1 : 0, details: {} };
  },
};

export const echoGetTask = (name: string) => {
  if (name !== 'echo') throw new Error(`unknown task "${name}"`);
  return echoTask as unknown as Task<Record<string, unknown>, unknown>;
};


/** The `getTask` a runner worker process imports (RunOptions.taskModule). */
export const getTask = echoGetTask;
