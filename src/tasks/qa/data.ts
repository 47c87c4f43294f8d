/**
 * Loaders for the QA data (data/qa by default): SQuAD 2.0 JSON and the QuALITY / TOEFL-QA JSON-lines
 * files, prepared as the original does: unanswerable SQuAD questions dropped, TOEFL's "Question: "
 * prefix stripped, contexts deduplicated and sorted, duplicate (question, context) pairs dropped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { repoDataDir } from '../data-dir.js';
import { pyStrip } from '../python-text.js';

export type QaDatasetName = 'squad' | 'quality' | 'toeflqa';

export const QA_FILES: Record<QaDatasetName, string> = {
  squad: 'squad.json',
  quality: 'quality.jsonl',
  toeflqa: 'toeflqa.jsonl',
};

export interface QaQuestion {
  contextIndex: number;
  question: string;
  /** SQuAD: every reference answer; multiple choice: one string of correct letters. */
  answers: string[];
}

export interface QaDataset {
  name: QaDatasetName;
  multipleChoice: boolean;
  /** Distinct contexts in code-point order. */
  contexts: string[];
  questions: QaQuestion[];
}

export function defaultQaDir(): string {
  return join(repoDataDir(), 'qa');
}

/** Python's sorted() order for str: by code point (JS's default sort compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = (x.value as string).codePointAt(0) as number;
    const cy = (y.value as string).codePointAt(0) as number;
    if (cx !== cy) return cx - cy;
  }
}

function sortedUnique(texts: string[]): string[] {
  return [...new Set(texts)].sort(compareCodePoints);
}

function readDataFile(name: QaDatasetName, dataDir: string): string {
  const path = resolve(dataDir, QA_FILES[name]);
  if (!existsSync(path)) {
    throw new Error(`QA data file not found: ${path} (the ${name} tasks expect ${QA_FILES[name]} in ${resolve(dataDir)}; pass another dataDir to use a different folder)`);
  }
  return readFileSync(path, 'utf8');
}

function bad(name: QaDatasetName, dataDir: string, what: string): Error {
  return new Error(`QA data file ${resolve(dataDir, QA_FILES[name])} is malformed: ${what}`);
}

function readSquad(dataDir: string): QaDataset {
  let json: unknown;
  try {
    json = JSON.parse(readDataFile('squad', dataDir));
  } catch (e) {
    if (e instanceof SyntaxError) throw bad('squad', dataDir, e.message);
    throw e;
  }
  const articles = (json as { data?: unknown }).data;
  if (!Array.isArray(articles)) throw bad('squad', dataDir, 'no "data" list');
  type Paragraph = { context: string; qas: { question: string; is_impossible?: boolean; answers: { text: string }[] }[] };
  const paragraphs: Paragraph[] = articles.flatMap((a: { paragraphs?: Paragraph[] }) => a.paragraphs ?? []);
  for (const p of paragraphs) {
    if (typeof p.context !== 'string' || !Array.isArray(p.qas)) throw bad('squad', dataDir, 'a paragraph lacks "context" or "qas"');
  }
  const contexts = sortedUnique(paragraphs.map((p) => p.context));
  const index = new Map(contexts.map((c, i) => [c, i]));
  const questions: QaQuestion[] = [];
  for (const p of paragraphs) {
    for (const qa of p.qas) {
      if (qa.is_impossible) continue;
      questions.push({ contextIndex: index.get(p.context) as number, question: qa.question, answers: qa.answers.map((a) => a.text) });
    }
  }
  return { name: 'squad', multipleChoice: false, contexts, questions };
}

function readJsonLines(name: 'quality' | 'toeflqa', dataDir: string): QaDataset {
  type Record_ = { context: string; questions: string[]; answer: string[] };
  const records: Record_[] = [];
  readDataFile(name, dataDir)
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let rec: Record_;
      try {
        rec = JSON.parse(line) as Record_;
      } catch (e) {
        throw bad(name, dataDir, `line ${i + 1}: ${(e as Error).message}`);
      }
      if (typeof rec.context !== 'string' || !Array.isArray(rec.questions) || !Array.isArray(rec.answer)) {
        throw bad(name, dataDir, `line ${i + 1} lacks "context", "questions" or "answer"`);
      }
      if (rec.questions.length !== rec.answer.length) {
        throw bad(name, dataDir, `line ${i + 1} has ${rec.questions.length} questions but ${rec.answer.length} answers`);
      }
      records.push(rec);
    });
  const contexts = sortedUnique(records.map((r) => r.context));
  const index = new Map(contexts.map((c, i) => [c, i]));
  const questions: QaQuestion[] = [];
  for (const rec of records) {
    rec.questions.forEach((q, k) => {
      const question = name === 'toeflqa' && q.startsWith('Question: ') ? q.slice('Question: '.length) : q;
      questions.push({ contextIndex: index.get(rec.context) as number, question, answers: [rec.answer[k] as string] });
    });
  }
  return { name, multipleChoice: true, contexts, questions };
}

/** Drop repeated (question, context) pairs, comparing questions stripped and lowercased. */
function dropDuplicateQuestions(questions: QaQuestion[]): QaQuestion[] {
  const seen = new Set<string>();
  return questions.filter((q) => {
    const key = `${q.contextIndex}\u0000${pyStrip(q.question).toLowerCase()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const loaded = new Map<string, QaDataset>();

export function loadQaDataset(name: QaDatasetName, dataDir: string = defaultQaDir()): QaDataset {
  const key = `${name}\u0000${resolve(dataDir)}`;
  const hit = loaded.get(key);
  if (hit) return hit;
  const raw = name === 'squad' ? readSquad(dataDir) : readJsonLines(name, dataDir);
  const dataset = { ...raw, questions: dropDuplicateQuestions(raw.questions) };
  loaded.set(key, dataset);
  return dataset;
}
