import { Composer, Lexer, LineCounter, Parser, YAMLParseError, type CST, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { invalid } from './errors.js';

/**
 * The one way kumo reads YAML that comes from outside (the API, a file, user-data): every
 * reader goes through readYaml, which refuses what is too large or too deep BEFORE the yaml
 * library builds anything from it.
 *
 * Why: the library's composer recurses once per nesting level; 2 KB of `[[[[…` overflows the
 * stack, and the second such request aborted Node in V8's regexp compiler (exit 134). The
 * parser below is iterative (an explicit stack), so its depth can be watched while it runs and
 * the text refused at the first level too many. The byte caps bound the time a request holds
 * the event loop (docs/decisions.md, "YAML from outside: caps before parsing").
 */
export const MAX_YAML_DEPTH = 64;

/** The most each kind of YAML may weigh, in bytes (UTF-8); the largest example file is under 3 KiB. */
export const YAML_BYTE_LIMITS = {
  /** An instance's #cloud-config (EC2 allows 16 KiB of user-data; cloud-init reads it whole into memory). */
  userData: 64 * 1024,
  /** A datacenter file (`kumo plan|apply|destroy`, POST /api/v1/plans). */
  datacenter: 64 * 1024,
  /** A lab file (`kumo lab up FILE`). */
  lab: 64 * 1024,
} as const;

export type YamlKind = keyof typeof YAML_BYTE_LIMITS;

export interface ReadYamlOptions {
  /** What the text is, for the byte cap and the messages ("user-data", "datacenter file x.yaml"). */
  kind: YamlKind;
  what: string;
  lineCounter?: LineCounter;
  yaml?: ParseOptions & DocumentOptions & SchemaOptions;
}

/**
 * One YAML document from untrusted text, or an INVALID_INPUT error naming the limit it broke.
 * Syntax errors stay in doc.errors (as parseDocument leaves them) for the caller to word.
 */
export function readYaml(text: string, opts: ReadYamlOptions): Document.Parsed {
  const limit = YAML_BYTE_LIMITS[opts.kind];
  // A string's UTF-8 size is at most 3 bytes per UTF-16 unit: skip the count for most texts.
  const bytes = text.length * 3 <= limit ? text.length : Buffer.byteLength(text, 'utf8');
  if (bytes > limit) {
    throw invalid(`${opts.what} is ${bytes} bytes; kumo reads at most ${limit} bytes of ${opts.kind === 'userData' ? 'user-data' : `a ${opts.kind} file`}`,
      'make it smaller (split it, or move large content into files the instance fetches)');
  }
  const tokens = parseBounded(text, opts);
  const composer = new Composer(opts.yaml ?? {});
  let doc: Document.Parsed | undefined;
  for (const d of composer.compose(tokens, true, text.length)) {
    if (!doc) doc = d;
    else {
      doc.errors.push(new YAMLParseError(d.range.slice(0, 2) as [number, number], 'MULTIPLE_DOCS', 'the text holds more than one YAML document (a second "---")'));
      break;
    }
  }
  // compose(…, forceDoc=true) always yields at least one document.
  return doc!;
}

/** The parser's tokens, refused once its stack (one entry per open collection) passes MAX_YAML_DEPTH. */
function parseBounded(text: string, opts: ReadYamlOptions): CST.Token[] {
  const parser = new Parser(opts.lineCounter?.addNewLine);
  if (text && opts.lineCounter) opts.lineCounter.addNewLine(0);
  const tokens: CST.Token[] = [];
  // The stack also holds the document: one entry over the nesting.
  const maxStack = MAX_YAML_DEPTH + 1;
  for (const lexeme of new Lexer().lex(text)) {
    for (const token of parser.next(lexeme)) tokens.push(token);
    if (parser.stack.length > maxStack) {
      throw invalid(`${opts.what} nests deeper than ${MAX_YAML_DEPTH} levels (${where(text, parser.offset)})`,
        `flatten the structure there; kumo reads YAML at most ${MAX_YAML_DEPTH} levels deep`);
    }
  }
  for (const token of parser.end()) tokens.push(token);
  return tokens;
}

/** "line L, column C" of an offset, for the depth refusal (counted only when it happens). */
function where(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}
