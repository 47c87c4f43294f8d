/**
 * The first `<answer>…</answer>` pair of a model output (shortest match, newlines included), as the
 * original's `re.search(r'<answer>(.*?)</answer>', text, re.DOTALL [| re.IGNORECASE])` finds it.
 * The QA scorers match the tags case-sensitively; every other task ignores case.
 */
const caseInsensitive = /<answer>([\s\S]*?)<\/answer>/iu;
const caseSensitive = /<answer>([\s\S]*?)<\/answer>/u;

/** The text between the first answer tags, or null when there is no pair. */
export function firstAnswerTag(output: string, options: { caseSensitive?: boolean } = {}): string | null {
  const m = (options.caseSensitive ? caseSensitive : caseInsensitive).exec(output);
  return m ? (m[1] as string) : null;
}
