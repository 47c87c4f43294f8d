/** Where the shipped model organism lives (models/organism) and its golden fixture. */
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/repo-root.js';

export { REPO_ROOT };
export const ORGANISM_DIR = join(REPO_ROOT, 'models', 'organism');
/** Written by tools/oracle/make_golden.py (transformers' logits of the shipped checkpoint). */
export const ORGANISM_GOLDEN = join(REPO_ROOT, 'test', 'organism', 'organism.json');
