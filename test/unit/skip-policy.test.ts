import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ALLOWED_SKIPS_FILE, parseAllowedSkips, skipVerdict, sourcePath, unexplainedSkips, type SkippedTest } from '../helpers/skip-policy.js';

const REPORTER = resolve(import.meta.dirname, '../helpers/skip-policy.js');
// Without the runner's marker of a child test process, or the inner run would not run its files.
const { NODE_TEST_CONTEXT: _marker, ...childEnv } = process.env;

test('the allowed-skips list: FILE :: TEST NAME — REASON per line, comments and blank lines ignored', () => {
  const { allowed, errors } = parseAllowedSkips([
    '# a comment',
    '',
    'test/integration/a.test.ts :: the a works: with colons :: and all — needs a GPU',
    '  test/unit/b.test.ts :: b —  no reason to run it twice  ',
  ].join('\n'));
  assert.deepEqual(errors, []);
  assert.deepEqual(allowed, [
    { file: 'test/integration/a.test.ts', name: 'the a works: with colons :: and all', reason: 'needs a GPU' },
    { file: 'test/unit/b.test.ts', name: 'b', reason: 'no reason to run it twice' },
  ]);
});

test('a list line without a file, a name or a reason is an error with its line number', () => {
  const { allowed, errors } = parseAllowedSkips('test/a.test.ts :: x\n# ok\ntest/a.test.ts :: y — \n:: z — why\n');
  assert.deepEqual(allowed, []);
  assert.equal(errors.length, 3);
  assert.match(errors[0]!, /^line 1: /);
  assert.match(errors[1]!, /^line 3: /);
  assert.match(errors[2]!, /^line 4: /);
});

test('the committed list parses (and explains every entry)', () => {
  assert.deepEqual(parseAllowedSkips(readFileSync(ALLOWED_SKIPS_FILE, 'utf8')).errors, []);
});

test('a skip passes only when its file and name are listed; todo counts as a skip', () => {
  const skipped: SkippedTest[] = [
    { file: 'test/unit/a.test.ts', name: 'needs haproxy', kind: 'skip', reason: 'not installed: haproxy' },
    { file: 'test/unit/b.test.ts', name: 'needs haproxy', kind: 'skip', reason: 'not installed: haproxy' },
    { file: 'test/unit/a.test.ts', name: 'later', kind: 'todo', reason: '' },
  ];
  const list = 'test/unit/a.test.ts :: needs haproxy — this CI has none';
  assert.deepEqual(unexplainedSkips(skipped, parseAllowedSkips(list).allowed).map((s) => `${s.file} ${s.name}`),
    ['test/unit/b.test.ts needs haproxy', 'test/unit/a.test.ts later']);
  const v = skipVerdict(skipped, list);
  assert.equal(v.ok, false);
  assert.match(v.message, /2 test\(s\) did not run/);
  assert.match(v.message, /skipped: test\/unit\/b\.test\.ts :: needs haproxy \(not installed: haproxy\)/);
  assert.match(v.message, /todo: test\/unit\/a\.test\.ts :: later/);
  assert.deepEqual(skipVerdict(skipped.slice(0, 1), list), { ok: true, message: '' });
  assert.deepEqual(skipVerdict([], ''), { ok: true, message: '' });
  assert.equal(skipVerdict([], 'garbage').ok, false, 'a malformed list fails the run too');
});

test('compiled test files are named by their source path', () => {
  assert.equal(sourcePath('/r/dist/test/integration/lab.test.js', '/r'), 'test/integration/lab.test.ts');
});

test('the reporter fails a real run on an unlisted skip, keeps the spec summary, and passes once it is listed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-skip-policy-'));
  try {
    const file = join(dir, 'x.test.mjs');
    writeFileSync(file, "import test from 'node:test';\ntest('runs', () => {});\ntest('needs a tool', (t) => t.skip('not installed: tool'));\n");
    const list = join(dir, 'allowed.txt');
    const run = () => spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout',
      `--test-reporter=${REPORTER}`, `--test-reporter-destination=${join(dir, 'skips.json')}`, file],
    { encoding: 'utf8', env: { ...childEnv, KUMO_ALLOWED_SKIPS: list } });

    writeFileSync(list, '# nothing allowed\n');
    const failed = run();
    assert.equal(failed.status, 1, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /ℹ skipped 1/, 'the runner\'s own summary is still printed');
    assert.match(failed.stderr, /skip policy: 1 test\(s\) did not run/);
    assert.match(failed.stderr, /needs a tool \(not installed: tool\)/);
    const written = JSON.parse(readFileSync(join(dir, 'skips.json'), 'utf8'));
    assert.equal(written.ok, false);
    assert.deepEqual(written.skipped.map((s: SkippedTest) => s.name), ['needs a tool']);

    writeFileSync(list, `${sourcePath(file)} :: needs a tool — the tool is not packaged for Debian\n`);
    const passed = run();
    assert.equal(passed.status, 0, passed.stdout + passed.stderr);
    assert.doesNotMatch(passed.stderr, /skip policy/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
