/**
 * The CWE word list: the noun, adjective and verb lists of wonderwords 2.2.0 (data/cwe-words, MIT),
 * concatenated, deduplicated, sorted, shuffled once with the task-level generator (seeded with the
 * configuration seed), hyphenated words dropped — 8,063 words, as in the original.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededRandom } from '../random.js';
import { repoDataDir } from '../data-dir.js';

const FILES = ['nounlist.txt', 'adjectivelist.txt', 'verblist.txt'];
let sortedWords: string[] | null = null;

function readSortedWords(): string[] {
  if (sortedWords) return sortedWords;
  const dir = join(repoDataDir(), 'cwe-words');
  const all: string[] = [];
  for (const file of FILES) {
    const path = join(dir, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new Error(`CWE word list not found: ${path} (expected the wonderwords lists in data/cwe-words/)`);
    }
    for (const line of text.split('\n')) {
      const word = line.trim();
      if (word !== '') all.push(word);
    }
  }
  // Code-point order, like Python's sorted() on str.
  sortedWords = [...new Set(all)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sortedWords;
}

/** The task-level word order for a configuration seed. */
export function cweWordList(seed: number): string[] {
  const words = readSortedWords().slice();
  new SeededRandom(seed).shuffle(words);
  return words.filter((w) => !w.includes('-'));
}
