/** What the three story tasks share: the introduction, the build loop, answer normalisation. */
import { S, pyCollapseSpaces, pyStrip } from '../python-text.js';
import { SeededRandom } from '../random.js';
import { DoesNotFitError, type BuildContext, type BuiltPrompt } from '../length.js';
import { generateNarrative, type Chapter } from './narrative.js';

export const STORY_INTRO =
  'Below is a story told in numbered chapters. In it, the protagonist travels from place to place, meets different people, and buys and sells items. Every item in the story is unique, and an item can change owners through these trades. Read the story carefully and answer based on what it says.';

/**
 * Build a story example. The narrative gets the raw budget minus the task's overhead estimate;
 * when the finished prompt then leaves room for more chapters (the estimate was generous), the same
 * example is rebuilt once with the measured slack added: a fresh generator with the same seed makes
 * the same chapters, so the rebuild only extends the story, landing closer to the budget.
 */
export function buildStoryExample<G>(
  ctx: BuildContext,
  seed: number,
  overheadEstimate: number,
  finish: (chapters: Chapter[], rng: SeededRandom) => BuiltPrompt<G>,
): BuiltPrompt<G> {
  const attempt = (narrativeBudget: number, rng: SeededRandom) => {
    const narrative = generateNarrative(rng, ctx.counter, narrativeBudget);
    const built = finish(narrative.chapters, rng);
    return { built, raw: ctx.counter.countOnce(built.prompt), narrativeTokens: narrative.tokens };
  };
  const first = attempt(ctx.rawBudget - overheadEstimate, ctx.rng);
  const slack = ctx.rawBudget - first.raw;
  if (slack <= 0) return first.built;
  try {
    const second = attempt(first.narrativeTokens + slack, new SeededRandom(seed + ctx.index));
    if (second.raw <= ctx.rawBudget && second.raw > first.raw) return second.built;
  } catch (e) {
    // The extension could not be built: keep the first build.
    if (!(e instanceof DoesNotFitError)) throw e;
  }
  return first.built;
}

const LEADING_ARTICLE = new RegExp(`^(the|a|an)${S}+`, 'u');

/** Lowercase, strip, collapse whitespace, drop one leading article (the original's normalisation). */
export function normalizeStoryAnswer(text: string): string {
  return pyCollapseSpaces(pyStrip(text.toLowerCase())).replace(LEADING_ARTICLE, '');
}
