/**
 * One synthetic narrative: chapters at unique (location, character) pairs, each with, in order, a
 * scene, a reason, an event, a meeting, 3 distinct conversation lines, one purchase of a unique item,
 * with probability 0.5 the sale of an older item still owned, a farewell, a conclusion and one extra
 * line. Chapters are added while they fit the token budget (each costs the tokens of "\n\n" + its text).
 */
import { DoesNotFitError } from '../length.js';
import type { SeededRandom } from '../random.js';
import type { TokenCounter } from '../token-counter.js';
import * as pool from './pools.js';

export const MAX_CHAPTERS = 2000;
const PAIR_TRIES = 100;
const ITEM_TRIES = 1000;
const CONVERSATION_LINES = 3;

export interface Chapter {
  /** 1-based chapter number. */
  id: number;
  location: string;
  character: string;
  event: string;
  /** The item bought in this chapter. */
  item: string;
  /** An older item sold in this chapter, if any. */
  sold: string | null;
  /** The sentences before the purchase, the purchase, and those after it. */
  before: string[];
  purchase: string;
  after: string[];
}

/** "Chapter k:" on its own line, then the sentences; the purchase left out when asked. */
export function chapterText(ch: Chapter, options: { withoutPurchase?: boolean } = {}): string {
  const sentences = options.withoutPurchase ? [...ch.before, ...ch.after] : [...ch.before, ch.purchase, ...ch.after];
  return `Chapter ${ch.id}:\n${sentences.join(' ')}`;
}

export function narrativeText(chapters: readonly Chapter[], withoutPurchase: ReadonlySet<number> = new Set()): string {
  return chapters.map((ch) => chapterText(ch, { withoutPurchase: withoutPurchase.has(ch.id) })).join('\n\n');
}

function uniqueItem(rng: SeededRandom, seen: Set<string>): string {
  for (let t = 0; t < ITEM_TRIES; t++) {
    const item = `${rng.choice(pool.ITEM_ADJECTIVES)} ${rng.choice(pool.ITEM_MATERIALS)} ${rng.choice(pool.ITEM_OBJECTS)}`;
    if (!seen.has(item)) {
      seen.add(item);
      return item;
    }
  }
  throw new DoesNotFitError(`no unique item found in ${ITEM_TRIES} tries`);
}

/**
 * Chapters drawn from `rng` until the next one would overflow `budget` tokens; `tokens` is the sum of
 * the kept chapters' costs.
 */
export function generateNarrative(rng: SeededRandom, counter: TokenCounter, budget: number): { chapters: Chapter[]; tokens: number } {
  const p = pool.PROTAGONIST;
  const chapters: Chapter[] = [];
  const usedPairs = new Set<string>();
  const itemsSeen = new Set<string>();
  const inventory: string[] = [];
  let total = 0;
  for (let id = 1; ; id++) {
    if (id > MAX_CHAPTERS) throw new DoesNotFitError(`the narrative would need more than ${MAX_CHAPTERS} chapters`);
    let location = '';
    let character = '';
    let found = false;
    for (let t = 0; t < PAIR_TRIES && !found; t++) {
      location = rng.choice(pool.LOCATIONS);
      character = rng.choice(pool.CHARACTERS);
      const key = `${location}\u0000${character}`;
      if (!usedPairs.has(key)) {
        usedPairs.add(key);
        found = true;
      }
    }
    if (!found) throw new DoesNotFitError(`no unused (location, character) pair found in ${PAIR_TRIES} tries at chapter ${id}`);
    const event = rng.choice(pool.EVENTS);
    const v = { p, l: location, c: character, e: event };
    const before = [
      pool.fill(rng.choice(pool.SCENE), v),
      pool.fill(rng.choice(pool.REASON), v),
      pool.fill(rng.choice(pool.EVENT), v),
      pool.fill(rng.choice(pool.MEETING), v),
      ...rng.sample(pool.CONVERSATION, CONVERSATION_LINES).map((t) => pool.fill(t, v)),
    ];
    const item = uniqueItem(rng, itemsSeen);
    inventory.push(item);
    const purchase = pool.fill(rng.choice(pool.PURCHASE), { ...v, i: item });
    const after: string[] = [];
    let sold: string | null = null;
    const older = inventory.filter((it) => it !== item);
    if (older.length > 0 && rng.float() < 0.5) {
      sold = rng.choice(older);
      inventory.splice(inventory.indexOf(sold), 1);
      after.push(pool.fill(rng.choice(pool.SALE), { ...v, i: sold }));
    }
    after.push(pool.fill(rng.choice(pool.FAREWELL), v), pool.fill(rng.choice(pool.CONCLUSION), v));
    after.push(...rng.sample(pool.EXTRA, 1).map((t) => pool.fill(t, v)));
    const chapter: Chapter = { id, location, character, event, item, sold, before, purchase, after };
    const cost = counter.countOnce(`\n\n${chapterText(chapter)}`);
    if (total + cost > budget) break;
    chapters.push(chapter);
    total += cost;
  }
  return { chapters, tokens: total };
}
