import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/**
 * The shape the code promises (docs/architecture.md): small files and functions, arrows that
 * point down only (faces use services and models; drivers never use services), no import
 * cycles. Read from the sources with TypeScript's own parser.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
const SRC = join(ROOT, 'src');
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const files = sources(SRC);
const rel = (f: string) => relative(ROOT, f);
const parsed = new Map(files.map((f) => [f, ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.ES2022, true)]));

/** Relative imports of a file, resolved to source files (type-only imports too: they are arrows as well). */
function importsOf(file: string): string[] {
  const out: string[] = [];
  parsed.get(file)!.forEachChild((node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const spec = node.moduleSpecifier.text;
      if (spec.startsWith('.')) out.push(resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
    }
  });
  return out;
}

/** The layer a source file belongs to: its first folder under src/. */
const layer = (f: string) => relative(SRC, f).split('/')[0]!;

test(`no source file is over ${MAX_FILE_LINES} lines`, () => {
  const big = files.map((f) => [rel(f), readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > MAX_FILE_LINES);
  assert.deepEqual(big, [], 'split these by concern');
});

test(`no function is over ${MAX_FUNCTION_LINES} lines`, () => {
  const long: string[] = [];
  for (const [file, sf] of parsed) {
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const lines = sf.getLineAndCharacterOfPosition(node.body.getEnd()).line - sf.getLineAndCharacterOfPosition(node.body.getStart()).line + 1;
        if (lines > MAX_FUNCTION_LINES) {
          const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
          long.push(`${rel(file)}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1} ${name} (${lines} lines)`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  assert.deepEqual(long, [], 'split these into named steps');
});

test('arrows point down: faces import only services and models; services never import faces; drivers and the store never import services', () => {
  const wrong: string[] = [];
  const allowed: Record<string, string[]> = {
    // `kumo serve` starts the REST face: the one face that composes another.
    cli: ['cli', 'api', 'service', 'model', 'config.ts'],
    api: ['api', 'service', 'model', 'config.ts'],
    service: ['service', 'drivers', 'exec', 'store', 'model', 'config.ts'],
    store: ['store', 'model'],
    drivers: ['drivers', 'exec', 'model', 'config.ts'],
    exec: ['exec', 'model'],
    model: ['model'],
  };
  for (const f of files) {
    const ok = allowed[layer(f)];
    if (!ok) continue;
    for (const i of importsOf(f)) if (!ok.includes(layer(i))) wrong.push(`${rel(f)} -> ${rel(i)}`);
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles', () => {
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((i) => parsed.has(i))]));
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const walk = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const next of graph.get(f)!) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(' -> '));
      else if (!state.has(next)) walk(next);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) walk(f);
  assert.deepEqual(cycles, []);
});
