import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openContext, LOCAL_HOST, type Context } from '../../src/service/context.js';
import { DatacenterService } from '../../src/service/datacenter/engine.js';
import { flavorKind } from '../../src/service/datacenter/kinds/flavor.js';
import type { Kind } from '../../src/service/datacenter/kind.js';
import type { Datacenter } from '../../src/model/datacenter.js';
import { KumoError } from '../../src/model/errors.js';
import type { Executor } from '../../src/exec/exec.js';

/**
 * What plan and apply promise beyond the schema, on a store of its own and without libvirt:
 * every problem of the file and the current state at once with the file's line and column,
 * updates that never lose what they replace, and an apply that stops part-way leaving a state
 * the next apply continues from.
 */

// No command runs here: a libvirt that never answers (its hosts read as down).
const silent: Executor = {
  description: 'nowhere',
  run: async (command) => { throw new KumoError('COMMAND_FAILED', `${command}: not in a unit test`); },
  open: async (command) => { throw new KumoError('COMMAND_FAILED', `${command}: not in a unit test`); },
};

const homes: string[] = [];
const contexts: Context[] = [];
function world(): Context {
  const home = mkdtempSync(join(tmpdir(), 'kumo-plan-'));
  homes.push(home);
  const ctx = openContext({ home, exec: silent });
  contexts.push(ctx);
  ctx.hosts.delete(LOCAL_HOST);
  return ctx;
}
after(() => {
  for (const c of contexts) c.close();
  for (const h of homes) rmSync(h, { recursive: true, force: true });
});

const HASH = '$6$kumocourse$3eUfgi0nRUHAHEj2kwzfwXnHQQT2E06HU6wzf0eBT6Bd/lntVv6QNTOK2MtFnYDkiL7dJqt/IBWd493qrKYZp1';

test('plan refuses every problem at once, each at its key\'s line and column: a placement, an unknown flavor, an unknown image', async () => {
  const ctx = world();
  ctx.hosts.insert({ name: 'kvm9', uri: 'qemu+test:///kvm9', roles: ['hypervisor'], shell: { kind: 'local' }, createdAt: new Date().toISOString() });
  const svc = new DatacenterService(ctx);
  const dc = svc.parse([
    'name: t',
    'instances:',
    '  web:',
    '    image: nosuch',
    '    flavor: small',
    `    root_password_hash: "${HASH}"`,
    '  app:',
    '    image: nosuch',
    '    flavor: huge',
    `    root_password_hash: "${HASH}"`,
    '',
  ].join('\n'), 't.yaml');
  await assert.rejects(svc.plan(dc), (e: unknown) => {
    assert.ok(e instanceof KumoError);
    const lines = e.message.split('\n');
    assert.match(lines.find((l) => l.includes('cannot place'))!, /^t\.yaml:4:5: instances\.web: cannot place instance web-1 of t: no hypervisor has room for 1 vCPU \/ 1024 MiB \(kvm9: down\)$/);
    assert.ok(lines.includes('t.yaml:4:12: instances.web.image: image "nosuch" is neither built by the file (images:) nor known to kumo'), e.message);
    assert.ok(lines.includes('t.yaml:9:13: instances.app.flavor: flavor "huge" is neither in the file nor known to kumo'), e.message);
    return true;
  });
});

test('a flavor update that is refused leaves the flavor as it was; a good one changes it in place', async () => {
  const ctx = world();
  ctx.flavors.insert({ name: 'mini', vcpus: 1, ramMiB: 512, diskGiB: 2 });
  // Past the schema on purpose: the kind must not rely on it to keep the flavor.
  const dc = (disk: number) => ({ name: 't', flavors: { mini: { vcpus: 1, ram_mib: 512, disk_gib: disk } } }) as unknown as Datacenter;
  const update = (disk: number) => flavorKind.apply({ action: 'update', kind: 'flavor', name: 'mini', why: 'test' }, { ctx, dc: dc(disk), started: [] });
  await assert.rejects(update(5000), /--disk-size must be a whole number from 1 to 4096/);
  assert.deepEqual(ctx.flavors.get('mini'), { name: 'mini', vcpus: 1, ramMiB: 512, diskGiB: 2, builtin: false }, 'still there, unchanged');
  await update(20);
  assert.equal(ctx.flavors.get('mini')?.diskGiB, 20);
});

test('apply stopping part-way: what was made is recorded, the error says so, and the next apply continues from there', async () => {
  const ctx = world();
  const registered = new Set<string>();
  let unreachable: string | undefined = 'b';
  // A kind like host: registrations that may fail one by one.
  const hosts: Kind = {
    kind: 'host', exclusive: true, pruned: 'no longer in the file',
    wanted: () => ['a', 'b', 'c'],
    diff: async () => ['a', 'b', 'c'].filter((n) => !registered.has(n)).map((name) => ({ action: 'create' as const, kind: 'host' as const, name, why: 'test' })),
    apply: async (c) => {
      if (c.name === unreachable) throw new KumoError('HOST_UNREACHABLE', `host "${c.name}" does not answer`, 'check it');
      registered.add(c.name);
      return { node: c.name };
    },
    remove: async (name) => { registered.delete(name); },
  };
  const svc = new DatacenterService(ctx, [hosts]);
  const dc = svc.parse('name: t\n', 't.yaml');
  await assert.rejects(svc.apply(dc), (e: unknown) => {
    assert.ok(e instanceof KumoError);
    assert.equal(e.code, 'HOST_UNREACHABLE');
    assert.equal(e.message, 'host "b" does not answer\napply stopped: 1 of 3 change(s) were made before it (create host a); running apply again continues from there');
    assert.equal(e.fix, 'check it');
    return true;
  });
  assert.deepEqual(ctx.datacenterResources.owned('t').map((r) => r.name), ['a'], 'the registration made is recorded at once');

  unreachable = undefined;
  const second = await svc.apply(dc);
  assert.deepEqual(second.map((c) => c.name), ['b', 'c'], 'the next apply continues where the first stopped');
  assert.deepEqual(ctx.datacenterResources.owned('t').map((r) => r.name), ['a', 'b', 'c']);
  await svc.destroy(dc);
  assert.deepEqual([...registered], [], 'destroy removes every registration, the first apply\'s too');
});
