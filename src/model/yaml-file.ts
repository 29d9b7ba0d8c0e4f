import { isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { invalid } from './errors.js';

/**
 * Reads a YAML file against a zod schema. Every problem names the file, line and column of
 * the value it is about (or of the nearest enclosing one), the path of keys, and what was expected.
 */
export function parseYamlFile<S extends z.ZodType>(text: string, schema: S, file: string): z.output<S> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw invalid(`${at(e.pos[0])}: ${e.message.split('\n')[0]}`, 'fix the YAML syntax there');
  }
  const result = schema.safeParse(doc.toJS());
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((i) => specific(i)).slice(0, 5).map((issue) => {
    // Walk up the path until a node with a position exists (a missing key has none).
    let node: unknown;
    for (let n = issue.path.length; n >= 0 && !isNode(node); n--) node = doc.getIn(issue.path.slice(0, n) as (string | number)[], true);
    const where = isNode(node) && node.range ? at(node.range[0]) : file;
    const path = issue.path.length ? issue.path.join('.') : '(top level)';
    return `${where}: ${path}: ${issue.message}`;
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
