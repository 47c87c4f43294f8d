/**
 * A tiny byte-level BPE tokenizer in standard Hugging Face files (tokenizer.json,
 * tokenizer_config.json with a chat template), loadable by tokenizers.js and by Python
 * transformers. Ids: 0..255 the bytes (GPT-2 byte-to-unicode alphabet), then the merges, then the
 * special tokens; TINY_VOCAB_SIZE in all.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Merges in priority order; each joins two existing tokens (written in the byte-level alphabet, Ġ = space). */
const MERGES: [string, string][] = [
  ['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['i', 'n'], ['e', 'r'], ['a', 'n'], ['o', 'n'], ['r', 'e'],
  ['Ġ', 'a'], ['e', 'n'], ['a', 't'], ['o', 'r'], ['e', 's'], ['i', 's'], ['Ġ', 's'], ['Ġ', 'w'],
  ['Ġ', 'o'], ['Ġ', 'c'], ['i', 't'], ['a', 'l'], ['Ġ', 'b'], ['Ġ', 'f'], ['Ġ', 'p'], ['Ġ', 'm'],
  ['o', 'u'], ['Ġ', 'i'], ['l', 'e'], ['Ġ', 'd'], ['e', 'd'], ['in', 'g'], ['Ġa', 'n'], ['Ġan', 'd'],
  ['Ġo', 'f'], ['Ġt', 'o'], ['Ġi', 's'], ['Ġi', 'n'], ['k', 'e'], ['Ġ', 'k'], ['Ġk', 'e'], ['Ġke', 'y'],
];

export const TINY_SPECIAL_TOKENS = ['<|bos|>', '<|eos|>', '<|user|>', '<|assistant|>'] as const;
export const TINY_BOS_ID = 256 + MERGES.length;
export const TINY_EOS_ID = TINY_BOS_ID + 1;
export const TINY_USER_ID = TINY_BOS_ID + 2;
export const TINY_ASSISTANT_ID = TINY_BOS_ID + 3;
export const TINY_VOCAB_SIZE = 256 + MERGES.length + TINY_SPECIAL_TOKENS.length;

/**
 * One user/assistant turn per message: <|role|>content<|eos|>; generation prompt <|assistant|>.
 * Messages of other roles (system) are written with their role name in plain text.
 */
export const TINY_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] in ['user', 'assistant'] %}" +
  "{{ '<|' + message['role'] + '|>' }}{% else %}{{ message['role'] + ': ' }}{% endif %}" +
  '{{ message[\'content\'] }}{{ eos_token }}{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/** GPT-2's reversible byte → printable character map (bytes that print as themselves keep their code point). */
export function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return table;
}

/** The tokenizer.json object. */
export function tinyTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  byteToUnicode().forEach((ch, id) => (vocab[ch] = id));
  MERGES.forEach(([a, b], i) => {
    if (vocab[a] === undefined || vocab[b] === undefined) throw new Error(`merge ${a} ${b} uses an unknown token`);
    if (vocab[a + b] !== undefined) throw new Error(`merge ${a} ${b} produces an existing token`);
    vocab[a + b] = 256 + i;
  });
  const addedTokens = TINY_SPECIAL_TOKENS.map((content, i) => ({
    id: TINY_BOS_ID + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|bos|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<|bos|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|bos|>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<|bos|>': { id: '<|bos|>', ids: [TINY_BOS_ID], tokens: ['<|bos|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: MERGES,
    },
  };
}

/** The tokenizer_config.json object. */
export function tinyTokenizerConfig(): object {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<|bos|>',
    eos_token: '<|eos|>',
    pad_token: null,
    unk_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 256,
    chat_template: TINY_CHAT_TEMPLATE,
  };
}

/** Write tokenizer.json and tokenizer_config.json into `dir`. */
export function writeTinyTokenizer(dir: string): void {
  writeFileSync(join(dir, 'tokenizer.json'), `${JSON.stringify(tinyTokenizerJson(), null, 2)}\n`);
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tinyTokenizerConfig(), null, 2)}\n`);
}
