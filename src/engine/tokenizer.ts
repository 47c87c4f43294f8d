/**
 * Tokenizer and chat template of a checkpoint directory: tokenizer.json through Hugging Face's
 * tokenizers.js, the chat template (tokenizer_config.json's `chat_template`, or a chat_template.jinja
 * file beside it) through Hugging Face's Jinja implementation.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

type TokenizerConfig = Record<string, unknown> & { chat_template?: unknown };

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

function readJson(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${what} is not valid JSON (${path}): ${(e as Error).message}`);
  }
}

export class TextTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly template: Template | null;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** Ids that end generation: the EOS token plus any the caller (generation_config) adds. */
  readonly stopTokenIds: Set<number>;

  constructor(tokenizerJson: object, config: TokenizerConfig, chatTemplate: string | null) {
    this.tokenizer = new Tokenizer(tokenizerJson as never, config as never);
    this.template = chatTemplate ? new Template(chatTemplate) : null;
    this.bosToken = tokenText(config.bos_token);
    this.eosToken = tokenText(config.eos_token);
    this.stopTokenIds = new Set<number>();
    if (this.eosToken !== undefined) {
      const id = this.tokenToId(this.eosToken);
      if (id !== undefined) this.stopTokenIds.add(id);
    }
  }

  /** Load tokenizer.json and tokenizer_config.json (and chat_template.jinja if present) from `dir`. */
  static fromDirectory(dir: string): TextTokenizer {
    const tj = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json') as object;
    const cfgPath = join(dir, 'tokenizer_config.json');
    const config = (existsSync(cfgPath) ? readJson(cfgPath, 'tokenizer_config.json') : {}) as TokenizerConfig;
    let template: string | null = null;
    const jinjaPath = join(dir, 'chat_template.jinja');
    if (typeof config.chat_template === 'string') template = config.chat_template;
    else if (Array.isArray(config.chat_template)) {
      const named = (config.chat_template as { name: string; template: string }[]).find((t) => t.name === 'default');
      template = named?.template ?? null;
    } else if (existsSync(jinjaPath)) template = readFileSync(jinjaPath, 'utf8');
    return new TextTokenizer(tj, config, template);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  tokenToId(token: string): number | undefined {
    const ids = this.tokenizer.encode(token, { add_special_tokens: false }).ids;
    return ids.length === 1 ? ids[0] : undefined;
  }

  /** Token ids of `text`; special tokens (BOS) are added only when asked. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** Render the chat template for `messages` (generation prompt added by default). */
  renderChat(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (!this.template) throw new Error('this tokenizer has no chat template (tokenizer_config.json has no chat_template)');
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    });
  }

  /**
   * Token ids of one user message as the model sees it: chat template applied (no system message),
   * generation prompt added. Without a chat template: BOS (if any) + the raw text.
   * The rendered template already contains BOS where the template puts it, so no special tokens are added.
   */
  encodeUserPrompt(userMessage: string): number[] {
    if (!this.template) return this.encode(userMessage, { addSpecialTokens: true });
    return this.encode(this.renderChat([{ role: 'user', content: userMessage }]), { addSpecialTokens: false });
  }
}
