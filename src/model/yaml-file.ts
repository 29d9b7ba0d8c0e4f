import { isNode, LineCounter } from 'yaml';
import type { z } from 'zod';
import { invalid } from './errors.js';
import { readYaml, type YamlKind } from './yaml-input.js';

/** Where a key of a parsed file lies: `FILE:LINE:COL` of the key's value, or of the nearest enclosing one (a missing key has none). */
export type Locate = (path: readonly (string | number)[]) => string;

/** The locator of each value parseYamlFile returned: checks that come after parsing name the file's line and column too. */
const locators = new WeakMap<object, Locate>();

/** Where the keys of a value parseYamlFile returned lie in its file (undefined for a value made otherwise). */
export const locatorOf = (parsed: object): Locate | undefined => locators.get(parsed);

/**
 * Reads a YAML file against a zod schema. Every problem names the file, line and column of
 * the value it is about (or of the nearest enclosing one), the path of keys, and what was
 * expected; all of them at once. The result keeps its locator (locatorOf). `kind` sets the
 * size cap (readYaml: nothing too large or too deep reaches the parser's composer).
 */
export function parseYamlFile<S extends z.ZodType>(text: string, schema: S, file: string, kind: YamlKind): z.output<S> {
  const lines = new LineCounter();
  const doc = readYaml(text, { kind, what: file, lineCounter: lines, yaml: { prettyErrors: false, uniqueKeys: true } });
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw invalid(`${at(e.pos[0])}: ${e.message.split('\n')[0]}`, 'fix the YAML syntax there');
  }
  const locate: Locate = (path) => {
    // Walk up the path until a node with a position exists.
    let node: unknown;
    for (let n = path.length; n >= 0 && !isNode(node); n--) node = doc.getIn(path.slice(0, n), true);
    return isNode(node) && node.range ? at(node.range[0]) : file;
  };
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (e) {
    // An alias bomb (more expansions than the library's maxAliasCount) or an unresolved alias.
    throw invalid(`${file}: ${(e as Error).message.split('\n')[0]}`, 'fix the YAML there (fewer aliases)');
  }
  const result = schema.safeParse(value);
  if (result.success) {
    if (typeof result.data === 'object' && result.data !== null) locators.set(result.data, locate);
    return result.data;
  }
  const problems = result.error.issues.flatMap((i) => specific(i)).map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(top level)';
    return `${locate(issue.path as (string | number)[])}: ${path}: ${issue.message}`;
  });
  throw invalid(problems.join('\n'), 'correct the file and run the command again');
}

type Issue = z.core.$ZodIssue;

/**
 * A value that fits none of a union's shapes (`lab: course` or a lab of its own) gives one
 * "invalid input" issue; report instead what was wrong in the shape it came closest to: the
 * branch whose problems lie deepest in the value.
 */
function specific(issue: Issue): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors.length) return [issue];
  const depth = (branch: Issue[]) => Math.max(...branch.map((i) => i.path.length));
  const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0]!;
  return best.flatMap((i) => specific({ ...i, path: [...issue.path, ...i.path] } as Issue));
}
