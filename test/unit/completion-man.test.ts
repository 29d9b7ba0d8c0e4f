import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';
import { bashScript, completionTree, zshScript, type CompletionNode } from '../../src/cli/completion.js';
import { manPages, roff } from '../../src/cli/man.js';
import { completionNames } from '../../src/service/completion-names.js';
import { openDb } from '../../src/store/db.js';
import { NAME_KINDS } from '../../src/model/name-kinds.js';

/**
 * Shell completion and the manual pages are made from the CLI's own definitions (issue 19); the
 * names a TAB offers come from the store alone. The real shells and man are driven in
 * test/integration/completion.test.ts.
 */

let program: Command;
let nodes: Map<string, CompletionNode>;
let home: string;

before(async () => {
  program = await buildProgram('all');
  nodes = new Map(completionTree(program).map((n) => [n.path, n]));
  home = await mkdtemp(join(tmpdir(), 'kumo-complete-'));
});
after(async () => { await rm(home, { recursive: true, force: true }); });

test('the completion tree is the command tree: every command, hidden ones left out, help offered', () => {
  const root = nodes.get('kumo')!;
  for (const name of ['instance', 'image', 'network', 'host', 'version', 'completion', 'help']) assert.ok(root.subcommands.includes(name), name);
  assert.ok(!root.subcommands.includes('__complete'), 'the hidden command is not offered');
  assert.ok(nodes.get('kumo instance')!.subcommands.includes('show'));
  assert.ok(nodes.get('kumo instance create')!.options.includes('--password-file'));
  assert.ok(root.options.includes('--version') && root.options.includes('--project'));
  // commander's help takes a sibling's name.
  assert.ok(nodes.get('kumo help')!.args[0]!.split(',').includes('instance'));
});

test('arguments and options that take a name say which kind, from the annotation next to their definition', () => {
  const args = (path: string) => nodes.get(path)?.args;
  const value = (path: string, flag: string) => nodes.get(path)?.values.find((v) => v.flag === flag)?.spec;
  assert.deepEqual(args('kumo instance show'), ['@instance']);
  assert.deepEqual(args('kumo instance start'), ['@instance...']);
  assert.deepEqual(args('kumo volume attach'), ['@volume', '@instance']);
  assert.deepEqual(args('kumo instance create'), ['-'], 'a new name is not completed');
  assert.deepEqual(args('kumo network show'), ['@network']);
  assert.deepEqual(args('kumo host show'), ['@host']);
  assert.deepEqual(args('kumo image show'), ['@image']);
  assert.deepEqual(args('kumo lb show'), ['@lb']);
  assert.equal(value('kumo instance create', '--image'), '@image');
  assert.equal(value('kumo instance create', '--flavor'), '@flavor');
  assert.equal(value('kumo instance create', '--network'), '@network');
  assert.equal(value('kumo instance migrate', '--to'), '@host');
  assert.equal(value('kumo', '--project'), '@project');
  assert.equal(value('kumo instance create', '--console'), '=auto,none,serial,vnc', 'choices are offered as they are');
  assert.equal(value('kumo instance create', '--password-file'), '-', 'other values complete as files');
  assert.equal(value('kumo instance list', '--json'), undefined, 'a flag without a value takes none');
  // Every kind the scripts may ask for is one the store answers.
  const asked = new Set([...nodes.values()].flatMap((n) => [...n.args, ...n.values.map((v) => v.spec)]).filter((s) => s.startsWith('@')).map((s) => s.slice(1).replace(/\.\.\.$/, '')));
  for (const k of asked) assert.ok((NAME_KINDS as readonly string[]).includes(k), k);
});

test('the scripts hold the tables and the functions each shell calls', () => {
  const bash = bashScript(program);
  assert.match(bash, /^complete -F _kumo kumo$/m);
  assert.match(bash, /\['kumo instance'\]='create list show /);
  assert.match(bash, /\['kumo instance show'\]='@instance'/);
  assert.match(bash, /__complete/);
  const zsh = zshScript(program);
  assert.match(zsh, /^#compdef kumo\n/);
  assert.match(zsh, /^_kumo "\$@"$/m);
  assert.match(zsh, /\['kumo instance create --image'\]='@image'/);
});

test('completion names come from the store, by prefix taken literally; no store or an unknown one gives none', () => {
  const db = openDb(join(home, 'kumo.db'));
  try {
    db.prepare('INSERT INTO flavors (name, vcpus, ram_mib, disk_gib) VALUES (?, 1, 512, 1), (?, 1, 512, 1), (?, 1, 512, 1)').run('web-a', 'web-b', 'w%x');
    db.prepare('INSERT INTO network_projects (network, project) VALUES (?, ?)').run('lan1', 'default');
  } finally {
    db.close();
  }
  assert.deepEqual(completionNames('flavor', 'web', home), ['web-a', 'web-b']);
  assert.deepEqual(completionNames('flavor', 'w%', home), ['w%x'], '% is no wildcard');
  assert.deepEqual(completionNames('flavor', '', home), ['medium', 'small', 'w%x', 'web-a', 'web-b']);
  assert.deepEqual(completionNames('network', '', home), ['default', 'lan1'], 'networks kumo defined and the built-in one');
  for (const kind of NAME_KINDS) assert.ok(Array.isArray(completionNames(kind, '', home)), kind);
  assert.deepEqual(completionNames('instance', '', join(home, 'nowhere')), [], 'no store: no names, and none made');
});

test('a manual page per top-level command, from the same definitions, in roff', () => {
  const pages = new Map(manPages(program, { version: '9.9.9', date: '2026-01-02' }).map((p) => [p.file, p.text]));
  assert.ok(pages.has('kumo.1') && pages.has('kumo-instance.1') && pages.has('kumo-version.1') && pages.has('kumo-plan.1'));
  assert.ok(![...pages.keys()].some((f) => f.includes('__') || f === 'kumo-help.1'), 'hidden commands and help have none');
  const main = pages.get('kumo.1')!;
  assert.match(main, /^\.TH "KUMO" 1 "2026\\-01\\-02" "kumo 9\.9\.9"/);
  assert.match(main, /^\.SH NAME\nkumo \\- a small private cloud/m);
  assert.match(main, /^\.BR kumo\\-instance \(1\)$/m);
  const instance = pages.get('kumo-instance.1')!;
  assert.match(instance, /^\.SS "kumo instance create \[options\] <name>"$/m);
  assert.match(instance, /^\.B \\-\\-image <name>$/m);
  assert.doesNotMatch(instance, /^\.B \\-h, \\-\\-help$/m, 'each command\'s --help is said once, in kumo.1');
  for (const [file, text] of pages) {
    for (const line of text.split('\n')) assert.ok(!/^[.'](?!TH|SH|SS|TP|B|BR|I|RI)/.test(line) || line === '', `${file}: a text line that roff would take for a request: ${line}`);
  }
});

test('roff: backslashes, minus signs and lines that would start a request', () => {
  assert.equal(roff('a\\b --x'), 'a\\eb \\-\\-x');
  assert.equal(roff('.hidden\n\'also'), '\\&.hidden\n\\&\'also');
});
