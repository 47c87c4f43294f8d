/**
 * The prompt frame every task shares. The layout (and the tag names the scorers look for) follows the
 * original study; the wording is ours. Order: introduction; where the question(s) sit; question(s)
 * in tags; context in tags; the question(s) again; two numbered instructions; the response structure;
 * the "Important" bullets (task bullets first, then two fixed ones).
 */

export interface PromptParts {
  intro: string;
  /** Several questions ("questions" tags, plural wording) or one. */
  plural: boolean;
  /** The text inside the question tags (stated twice). */
  question: string;
  context: string;
  /** What goes between the answer tags, as shown to the model. */
  answerFormat: string;
  /** The task's own bullets for the "Important" list, without the leading "- ". */
  bullets: readonly string[];
}

const FIXED_BULLETS = [
  'Keep the explanation short, clear and to the point.',
  'Put nothing inside the answer tags except the answer itself, written exactly in the format above.',
];

export function buildPrompt(p: PromptParts): string {
  const tag = p.plural ? 'questions' : 'question';
  const where = p.plural
    ? 'Your questions are given below, once before the context and once again after it.'
    : 'Your question is given below, once before the context and once again after it.';
  const bullets = [...p.bullets, ...FIXED_BULLETS].map((b) => `- ${b}`).join('\n');
  return `${p.intro}

${where}

<${tag}>
${p.question}
</${tag}>

<context>
${p.context}
</context>

<${tag}_repeated>
${p.question}
</${tag}_repeated>

Instructions:
1. First, briefly explain your reasoning: where in the context you found what you needed and how it led to your answer.
2. Then give your final answer in exactly this format:
<answer>
${p.answerFormat}
</answer>

Your reply must have exactly this structure:
<explanation>
Your explanation goes here...
</explanation>
<answer>
Your answer goes here...
</answer>

Important:
${bullets}
`;
}
