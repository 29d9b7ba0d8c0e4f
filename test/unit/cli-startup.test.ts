import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { local } from '../../src/exec/exec.js';
import { COMMANDS, commandsFor } from '../../src/cli/commands.js';
import { installRoot } from '../../src/config.js';

/**
 * The CLI loads only what a command line needs (issue 17: a CLI that starts fast). Checked on
 * the file-by-file build, where every module is a file of its own, so the modules a run loads
 * say exactly which parts of kumo it paid for; the bundle's chunks follow the same imports.
 */

const MAIN = join(import.meta.dirname, '../../src/cli/main.js');
const DIST = join(import.meta.dirname, '../..');

/** The modules `node MAIN ARGS` loads, as paths under dist/ or node_modules package names. */
async function modulesLoaded(args: string[]): Promise<{ kumo: string[]; packages: string[]; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-startup-'));
  try {
    // A module hook that writes every module's URL as it is loaded.
    await writeFile(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(join(dir, 'loaded.txt'))}, url + '\\n'); return next(url, context); }\n`);
    await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    const r = await local.run(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, MAIN, ...args], {
      env: { ...process.env, KUMO_HOME: join(dir, 'home'), KUMO_LIBVIRT_URI: 'test:///default' }, timeoutMs: 60_000,
    });
    const urls = (await readFile(join(dir, 'loaded.txt'), 'utf8')).split('\n').filter((u) => u.startsWith('file:'));
    const kumo = urls.filter((u) => !u.includes('/node_modules/')).map((u) => u.slice(pathToFileURL(DIST).href.length + 1));
    const packages = [...new Set(urls.filter((u) => u.includes('/node_modules/')).map((u) => {
      const rest = u.split('/node_modules/').pop()!.split('/');
      return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    }))].sort();
    return { kumo, packages, stdout: r.stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('kumo --version loads commander and no service, driver, store or API module', async () => {
  const { kumo, packages, stdout } = await modulesLoaded(['--version']);
  // The file-by-file build has no commit written in (the bundle has: cli-bundle.test.ts).
  assert.match(stdout, /^\d+\.\d+\.\d+ \(commit unknown\)\n$/);
  assert.deepEqual(packages, ['commander']);
  const heavy = kumo.filter((f) => /^src\/(service|drivers|store|api|exec)\//.test(f) || /^src\/cli\/commands\//.test(f));
  assert.deepEqual(heavy, [], 'modules a --version does not need');
});

test('kumo instance list loads the instance commands only: no other command, no API server, no fastify, no zod', async () => {
  const { kumo, packages, stdout } = await modulesLoaded(['instance', 'list']);
  assert.match(stdout, /Name\s+State/);
  assert.deepEqual(kumo.filter((f) => f.startsWith('src/cli/commands/')), ['src/cli/commands/instance.js']);
  assert.deepEqual(kumo.filter((f) => f.startsWith('src/api/')), []);
  // zod is the largest package kumo loads; listing instances validates no schema.
  assert.deepEqual(packages.filter((p) => p === 'fastify' || p.startsWith('@fastify/') || p === '@inquirer/prompts' || p === 'zod'), []);
});

test('kumo --help still lists every command (it loads them all)', async () => {
  const { stdout } = await modulesLoaded(['--help']);
  for (const name of COMMANDS.flatMap((c) => c.names)) {
    // __complete is the completion scripts' own, hidden from help.
    if (name.startsWith('__')) assert.doesNotMatch(stdout, new RegExp(`^  ${name}\\b`, 'm'), name);
    else assert.match(stdout, new RegExp(`^  ${name}\\b`, 'm'), name);
  }
});

test('the command table names exactly the commands each module defines, in help\'s order', async () => {
  for (const lazy of COMMANDS) {
    assert.deepEqual((await lazy.load()).map((c) => c.name()), [...lazy.names]);
  }
  const all = COMMANDS.flatMap((c) => c.names);
  assert.equal(new Set(all).size, all.length, 'a command name is in the table once');
});

test('commandsFor: the command\'s module only, none for the version or the wizard, all to list or to correct', () => {
  const names = (args: string[]) => commandsFor(args, ['create']).flatMap((c) => c.names);
  assert.deepEqual(names(['instance', 'list']), ['instance']);
  assert.deepEqual(names(['--project', 'p1', 'instance', 'list']), ['instance']);
  assert.deepEqual(names(['--project=p1', 'waf', 'log', 'x']), ['lb', 'waf']);
  assert.deepEqual(names(['apply', 'dc.yaml']), ['plan', 'apply', 'destroy', 'firewall']);
  assert.deepEqual(names(['--version']), []);
  assert.deepEqual(names(['-V']), []);
  assert.deepEqual(names(['create', '--lang', 'ko']), []);
  assert.deepEqual(names(['__complete', 'instance', 'w']), ['__complete'], 'a TAB loads the completion names only');
  assert.deepEqual(names(['version', '--json']), ['version']);
  const every = COMMANDS.flatMap((c) => c.names);
  // The completion script is made from every command's definition.
  for (const args of [[], ['--help'], ['help', 'instance'], ['instanc'], ['--bogus'], ['--version', '--help'], ['completion', 'bash']]) {
    assert.deepEqual(names(args), every, args.join(' '));
  }
});

test('installRoot is the folder of kumo\'s package.json, whichever module asks', async () => {
  const pkg = JSON.parse(await readFile(join(installRoot(), 'package.json'), 'utf8')) as { name: string; bin: Record<string, string> };
  assert.equal(pkg.name, 'kumo');
  assert.equal(pkg.bin.kumo, 'dist/bin/kumo.js', 'the CLI that ships is the bundle');
});
