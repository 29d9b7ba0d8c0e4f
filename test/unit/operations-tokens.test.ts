import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { OperationRegistry, type SequencedEvent } from '../../src/service/operations.js';
import { TokenService } from '../../src/service/tokens.js';
import { openContext, type Context } from '../../src/service/context.js';
import { KumoError } from '../../src/model/errors.js';

let home: string;
let ctx: Context;

before(async () => {
  home = await mkdtemp('/tmp/kumo-unit-tokens-');
  ctx = openContext({ home });
});
after(async () => {
  ctx?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

test('an operation answers at once, reports its steps, and ends succeeded with its result', async () => {
  const ops = new OperationRegistry();
  const seen: SequencedEvent[] = [];
  ops.subscribe((e) => seen.push(e));
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const op = ops.start('thing.make', 'x', async (progress) => {
    progress('one');
    await gate;
    progress('two');
    return { made: 'x' };
  });
  assert.equal(op.state, 'running');
  assert.deepEqual(op.steps, [], 'no work ran before the caller had the operation');
  const done = ops.wait(op.id);
  release();
  const end = await done;
  assert.equal(end.state, 'succeeded');
  assert.deepEqual(end.steps, ['one', 'two']);
  assert.deepEqual(end.result, { made: 'x' });
  assert.ok(end.finishedAt);
  assert.deepEqual(seen.map((e) => e.event.type === 'operation' ? [e.event.operation.state, e.event.operation.step ?? '-'] : []),
    [['running', '-'], ['running', 'one'], ['running', 'two'], ['succeeded', 'two']]);
  assert.deepEqual(seen.map((e) => e.seq), [1, 2, 3, 4]);
  // Handed-out copies do not change under their reader.
  assert.deepEqual(op.steps, []);
});

test('a failed operation keeps the KumoError code, message and fix; other errors are INTERNAL, their detail withheld', async () => {
  const ops = new OperationRegistry();
  const a = ops.start('a', 'x', async () => { throw new KumoError('IN_USE', 'busy', 'wait'); });
  const b = ops.start('b', 'y', async () => { throw new Error('boom'); });
  assert.deepEqual((await ops.wait(a.id)).error, { code: 'IN_USE', message: 'busy', fix: 'wait' });
  const withheld: unknown[] = [];
  ops.onWithheldFailure((_op, e) => withheld.push(e));
  const failedB = await ops.wait(b.id);
  // A bug's raw message is the server log's, not the caller's: a stable code, a sentence, the operation's id.
  assert.deepEqual(failedB.error, { code: 'INTERNAL', message: `internal error (operation ${b.id})`,
    fix: `this is a bug in kumo; the server log has the details under operation id ${b.id}` });
  assert.deepEqual(withheld.map((e) => (e as Error).message), ['boom']);
  assert.deepEqual(ops.list().map((o) => o.kind), ['b', 'a'], 'newest first');
  assert.throws(() => ops.get('nope'), (e: KumoError) => e.code === 'NOT_FOUND');
});

test('a subscriber hears every event from now on, and a broken one harms nothing', async () => {
  const ops = new OperationRegistry();
  ops.subscribe(() => { throw new Error('a client went away mid-write'); });
  ops.resourceChanged('flavor', 'f1', 'created');
  const heard: SequencedEvent[] = [];
  const off = ops.subscribe((e) => heard.push(e));
  ops.resourceChanged('flavor', 'f2', 'created');
  off();
  ops.resourceChanged('flavor', 'f3', 'created');
  assert.deepEqual(heard.map((e) => e.event.type === 'resource' && e.event.name), ['f2']);
  assert.equal(ops.lastSeq(), 3);
});

test('event ids carry the server run: a reconnect catches up within the run, and is told to reload from another run or a gap', () => {
  const ops = new OperationRegistry();
  const before = ops.lastId();
  for (const n of ['f1', 'f2', 'f3']) ops.resourceChanged('flavor', n, 'created');
  const names = (r: ReturnType<OperationRegistry['since']>) =>
    'events' in r ? r.events.map((e) => e.event.type === 'resource' && e.event.name) : r.gap;
  const ids = (ops.since(before) as { events: SequencedEvent[] }).events.map((e) => e.id);
  assert.deepEqual(ids, [1, 2, 3].map((n) => `${ops.run}-${n}`));
  assert.match(ops.run, /^[0-9a-f]{12}$/);
  assert.deepEqual(names(ops.since(before)), ['f1', 'f2', 'f3'], 'from before the first event: all of them');
  assert.deepEqual(names(ops.since(ids[0]!)), ['f2', 'f3']);
  assert.deepEqual(names(ops.since(ops.lastId())), []);

  // A restarted server is a new registry: the same sequence numbers, never the same ids.
  const restarted = new OperationRegistry();
  for (const n of ['g1', 'g2', 'g3', 'g4']) restarted.resourceChanged('flavor', n, 'created');
  assert.notEqual(restarted.run, ops.run);
  assert.equal(names(restarted.since(ids[0]!)), 'restarted', 'seq 1 of the old run is not seq 1 of this one');
  assert.equal(names(restarted.since('1')), 'unknown', 'a bare sequence number names no run');
  assert.equal(names(restarted.since(`${restarted.run}-99`)), 'unknown', 'not given yet');

  // Past what is kept (1000 events), a reconnect from before them cannot be caught up.
  const old = ops.lastId();
  for (let i = 0; i < 1_000; i++) ops.resourceChanged('flavor', `h${i}`, 'created');
  assert.equal((ops.since(old) as { events: SequencedEvent[] }).events.length, 1_000, 'exactly what is kept: still complete');
  ops.resourceChanged('flavor', 'last', 'created');
  assert.equal(names(ops.since(old)), 'too-old');
  assert.deepEqual(names(ops.since(`${ops.run}-${ops.lastSeq() - 1}`)), ['last']);
});

test('tokens: 256 random bits with a kumo_ prefix, stored only as their sha256; verify, revoke, unique names', () => {
  const svc = new TokenService(ctx);
  const t = svc.create('ci');
  assert.match(t.token, /^kumo_[A-Za-z0-9_-]{43}$/);
  assert.equal(Buffer.from(t.token.slice(5), 'base64url').length, 32);
  const rows = ctx.db.prepare('SELECT * FROM api_tokens').all() as { hash: string }[];
  assert.deepEqual(rows.map((r) => r.hash), [createHash('sha256').update(t.token).digest('hex')]);
  assert.ok(!JSON.stringify(rows).includes(t.token.slice(5)));
  assert.equal(svc.verify(t.token)?.name, 'ci');
  assert.ok(svc.list()[0]!.lastUsedAt, 'use is recorded');
  assert.equal(svc.verify(`${t.token.slice(0, -1)}${t.token.endsWith('A') ? 'B' : 'A'}`), undefined, 'one character off');
  assert.equal(svc.verify('kumo_short'), undefined);
  assert.throws(() => svc.create('ci'), (e: KumoError) => e.code === 'ALREADY_EXISTS');
  assert.throws(() => svc.create('bad name'), (e: KumoError) => e.code === 'INVALID_INPUT');
  assert.equal(svc.revoke(t.id).name, 'ci');
  assert.equal(svc.verify(t.token), undefined);
  assert.throws(() => svc.revoke('ci'), (e: KumoError) => e.code === 'NOT_FOUND');
});

test('the admin token is made once per home, and never again once tokens were all revoked', () => {
  const svc = new TokenService(ctx);
  for (const t of svc.list()) svc.revoke(t.id);
  const admin = svc.ensureAdmin();
  assert.equal(admin?.name, 'admin');
  assert.equal(svc.verify(admin!.token)?.name, 'admin');
  assert.equal(svc.ensureAdmin(), undefined);
  svc.revoke('admin');
  assert.equal(svc.ensureAdmin(), undefined);
});

test('revoke takes an id or a name and is never ambiguous: an id wins, and names cannot take the form of an id', () => {
  const svc = new TokenService(ctx);
  const a = svc.create('alpha');
  assert.match(a.id, /^[0-9a-f]{8}$/);
  for (const name of ['deadbeef', '12345678', a.id]) {
    assert.throws(() => svc.create(name), (e: KumoError) => e.code === 'INVALID_INPUT' && /form of a token id/.test(e.message), name);
  }
  assert.ok(svc.create('DEADBEEF'), 'upper case is no id (ids are lower-case hex)');
  // A token named like another's id, as an older kumo let one be made (named so before the other existed).
  const b = svc.create('beta');
  ctx.db.prepare("UPDATE api_tokens SET name = ? WHERE id = ?").run(b.id, a.id);
  assert.equal(svc.revoke(b.id).name, 'beta', 'the id wins over an equal name');
  assert.ok(svc.verify(a.token), 'the token named like that id is untouched');
  assert.equal(svc.revoke(b.id).id, a.id, 'then the name still finds its token');
  assert.equal(svc.verify(a.token), undefined);
  svc.revoke('DEADBEEF');
});
