import test from 'node:test';
import assert from 'node:assert/strict';
import { KumoError } from '../../src/model/errors.js';
import { type NfsExport, buildGaneshaConfig } from '../../src/drivers/daemons/nfs-ganesha.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { ganeshaDryStart } from '../helpers/tools.js';

const installed = async (tool: string) => (await local.run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true })).code === 0;

const share: NfsExport = { id: 1, path: '/srv/kumo/shares/www', pseudo: '/www', readOnly: false, clients: ['10.5.2.0/24'] };

test('ganesha exports name their client networks as CIDRs', () => {
  const conf = buildGaneshaConfig([{ ...share, clients: ['10.5.2.0/24', '192.168.222.128/25'] }]);
  assert.match(conf, /CLIENT \{ Clients = 10\.5\.2\.0\/24, 192\.168\.222\.128\/25; Access_Type = RW; \}/);
});

test('ganesha client networks go through the shared CIDR parser: 999.1.1.1/99 and friends are refused', () => {
  for (const bad of ['999.1.1.1/99', '10.5.2.0/33', '10.5.2.256/24', '10.05.2.0/24', '10.5.2.7/24', '10.5.2.0', '']) {
    assert.throws(() => buildGaneshaConfig([{ ...share, clients: [bad] }]),
      (e: unknown) => e instanceof KumoError && e.code === 'INVALID_INPUT' && /needs client networks as CIDRs/.test(e.message), bad);
  }
  assert.throws(() => buildGaneshaConfig([{ ...share, clients: [] }]), /got none/);
});

test('the ganesha.conf kumo writes starts nfs-ganesha without a configuration error (a dry start in a namespace of its own)', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) { t.skip('needs root (unshare --net --mount)'); return; }
  if (!(await installed('ganesha.nfsd'))) { t.skip('not installed: nfs-ganesha (apt-get install nfs-ganesha nfs-ganesha-vfs)'); return; }
  const dir = await mkdtemp(join(tmpdir(), 'kumo-ganesha-exports-'));
  try {
    const exports: NfsExport[] = [
      { ...share, path: join(dir, 'www'), clients: ['10.5.3.0/24'] },
      { id: 2, path: join(dir, 'logs'), pseudo: '/logs', readOnly: true, clients: ['10.5.2.0/24', '192.168.222.128/25'] },
    ];
    for (const e of exports) await mkdir(e.path);
    const conf = buildGaneshaConfig(exports);
    const r = await ganeshaDryStart(conf);
    assert.ok(r.ok, `nfs-ganesha refused kumo's config:\n${r.output}\n${conf}`);
    // The check can fail: the same config with a client network ganesha cannot read.
    const broken = await ganeshaDryStart(conf.replace('10.5.3.0/24', '10.5.3.0/99'));
    assert.equal(broken.ok, false, 'a broken config passed the dry start');
    assert.match(broken.output, /Expected a IPv4 CIDR address/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
