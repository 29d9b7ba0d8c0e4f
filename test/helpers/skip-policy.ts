import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

/**
 * The skip policy of the test command (scripts/test.sh, and so CI): a test that skipped itself
 * or is marked todo fails the run, unless test/allowed-skips.txt lists it with its reason.
 * Run by hand (`node --test dist/test/...`) tests still skip quietly where a tool or root is
 * missing; only the test command holds them to the list.
 *
 * The default export is a node:test reporter: it writes what skipped as JSON to its destination,
 * names each unexplained skip on stderr and sets a failing exit code.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
export const ALLOWED_SKIPS_FILE = resolve(ROOT, 'test/allowed-skips.txt');

/** One line of the list: `FILE :: TEST NAME — REASON`. */
export interface AllowedSkip { file: string; name: string; reason: string }

/** A test that did not run: skipped, or todo. */
export interface SkippedTest { file: string; name: string; kind: 'skip' | 'todo'; reason: string }

/** Reads the list; blank lines and `#` comments are ignored, a malformed line is an error (with its number). */
export function parseAllowedSkips(text: string): { allowed: AllowedSkip[]; errors: string[] } {
  const allowed: AllowedSkip[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(\S+)\s+::\s+(.+?)\s+—\s+(.*)$/.exec(line);
    if (!m || !m[3]!.trim()) {
      errors.push(`line ${i + 1}: expected "FILE :: TEST NAME — REASON", got: ${line}`);
      return;
    }
    allowed.push({ file: m[1]!, name: m[2]!, reason: m[3]!.trim() });
  });
  return { allowed, errors };
}

/** The skipped tests the list does not explain. */
export function unexplainedSkips(skipped: SkippedTest[], allowed: AllowedSkip[]): SkippedTest[] {
  return skipped.filter((s) => !allowed.some((a) => a.file === s.file && a.name === s.name));
}

/** A compiled test file's path as the list names it: dist/test/x/y.test.js -> test/x/y.test.ts. */
export function sourcePath(file: string, root = ROOT): string {
  return relative(root, file).replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

/** What the run's end says: nothing when every skip is explained, else one line per skip and the rule. */
export function skipVerdict(skipped: SkippedTest[], listText: string): { ok: boolean; message: string } {
  const { allowed, errors } = parseAllowedSkips(listText);
  const bad = unexplainedSkips(skipped, allowed);
  if (!bad.length && !errors.length) return { ok: true, message: '' };
  const lines = [
    ...errors.map((e) => `test/allowed-skips.txt ${e}`),
    ...bad.map((s) => `${s.kind === 'todo' ? 'todo' : 'skipped'}: ${s.file} :: ${s.name}${s.reason ? ` (${s.reason})` : ''}`),
  ];
  return {
    ok: false,
    message: `\n✖ skip policy: ${bad.length} test(s) did not run and are not in test/allowed-skips.txt\n` +
      `${lines.map((l) => `  ${l}`).join('\n')}\n` +
      '  Install what they need (scripts/bootstrap.sh --test, as root), or list each as "FILE :: TEST NAME — REASON".\n',
  };
}

/** node:test reporter events, only as far as this reporter reads them. */
interface ReporterEvent { type: string; data: { name?: string; file?: string; skip?: string | boolean; todo?: string | boolean } }

/** Collects skipped and todo tests, then writes them (JSON) and the verdict. */
export default async function* skipPolicyReporter(source: AsyncIterable<ReporterEvent>): AsyncGenerator<string> {
  const skipped: SkippedTest[] = [];
  for await (const { type, data } of source) {
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    const kind = data.skip ? 'skip' : data.todo ? 'todo' : undefined;
    if (!kind) continue;
    const why = kind === 'skip' ? data.skip : data.todo;
    skipped.push({ file: data.file ? sourcePath(data.file) : '(unknown file)', name: data.name ?? '', kind, reason: typeof why === 'string' ? why : '' });
  }
  let listText = '';
  // KUMO_ALLOWED_SKIPS: another list, for the policy's own test.
  try { listText = readFileSync(process.env.KUMO_ALLOWED_SKIPS ?? ALLOWED_SKIPS_FILE, 'utf8'); } catch { /* no list: nothing is allowed */ }
  const verdict = skipVerdict(skipped, listText);
  yield `${JSON.stringify({ ok: verdict.ok, skipped, unexplained: unexplainedSkips(skipped, parseAllowedSkips(listText).allowed) }, null, 2)}\n`;
  if (!verdict.ok) {
    process.stderr.write(verdict.message);
    process.exitCode = 1;
  }
}
