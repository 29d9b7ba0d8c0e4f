import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { local } from '../../src/exec/exec.js';
import { parseConfigFile, renderConfigFile } from '../../src/model/config-file.js';
import { KumoError } from '../../src/model/errors.js';
import { SETTINGS, defaultConfigFile } from '../../src/service/settings.js';

/** The installed kumo's /etc/kumo/kumo.conf (KUMO_CONFIG): variables and site defaults, typos refused. */

const MAIN = join(import.meta.dirname, '../../src/cli/main.js');

test('a config file gives variables and settings; comments, blanks and quotes as in a shell', () => {
  const c = parseConfigFile('# comment\n\nKUMO_HOME = "/srv/kumo"\nKUMO_LIBVIRT_TIMEOUT=300\nwizard.nat=\'nat1\'\n', 'kumo.conf');
  assert.deepEqual(c, { env: { KUMO_HOME: '/srv/kumo', KUMO_LIBVIRT_TIMEOUT: '300' }, settings: { 'wizard.nat': 'nat1' } });
});

test('a line that is not KEY=VALUE, or an unknown variable, is refused with its line', () => {
  assert.throws(() => parseConfigFile('KUMO_HOME=/x\nnonsense\n', 'kumo.conf'), (e: unknown) => e instanceof KumoError && /kumo\.conf:2: expected KEY=VALUE/.test(e.message));
  assert.throws(() => parseConfigFile('KUMO_HOMEE=/x\n', 'kumo.conf'), (e: unknown) => e instanceof KumoError && /kumo\.conf:1: unknown variable KUMO_HOMEE/.test(e.message));
});

test('the default file documents every setting, commented out at its default, and parses to nothing', () => {
  const text = defaultConfigFile();
  for (const [key, s] of Object.entries(SETTINGS)) assert.ok(text.includes(`#${key}=${s.default}\n`), key);
  assert.ok(text.includes('#KUMO_HOME=/var/lib/kumo\n'));
  assert.deepEqual(parseConfigFile(text, 'kumo.conf'), { env: {}, settings: {} });
  // Uncommented, it parses back to the defaults.
  const on = parseConfigFile(renderConfigFile([{ key: 'a.b', default: 'c', help: 'h' }]).replace(/^#a\.b=/m, 'a.b='), 'x');
  assert.deepEqual(on.settings, { 'a.b': 'c' });
});

test('the CLI reads KUMO_CONFIG: its home and settings apply, the environment wins, a bad value is said', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-conf-'));
  try {
    const conf = join(dir, 'kumo.conf');
    await writeFile(conf, `KUMO_HOME=${dir}/from-file\nopenstack.region=FileRegion\n`);
    const run = (env: NodeJS.ProcessEnv, args: string[]) => {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUMO_')));
      return local.run(process.execPath, [MAIN, ...args], { env: { ...clean, KUMO_LIBVIRT_URI: 'test:///default', ...env }, allowFailure: true });
    };
    let r = await run({ KUMO_CONFIG: conf }, ['config', 'get', 'openstack.region']);
    assert.equal(r.stdout.trim(), 'FileRegion', r.stderr);
    r = await run({ KUMO_CONFIG: conf }, ['store', 'status', '--json']);
    assert.equal((JSON.parse(r.stdout) as { file: string }).file, `${dir}/from-file/kumo.db`);
    r = await run({ KUMO_CONFIG: conf, KUMO_HOME: `${dir}/from-env` }, ['store', 'status', '--json']);
    assert.equal((JSON.parse(r.stdout) as { file: string }).file, `${dir}/from-env/kumo.db`);
    // `kumo config set` wins over the file.
    await run({ KUMO_CONFIG: conf }, ['config', 'set', 'openstack.region', 'Stored']);
    assert.equal((await run({ KUMO_CONFIG: conf }, ['config', 'get', 'openstack.region'])).stdout.trim(), 'Stored');
    await writeFile(conf, `KUMO_HOME=${dir}/from-file\nimage.max_import_gib=lots\n`);
    r = await run({ KUMO_CONFIG: conf }, ['config', 'get', 'image.max_import_gib']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /config file \(KUMO_CONFIG=.*\): image\.max_import_gib: "lots" is not a positive number of GiB/);
    // No KUMO_CONFIG (a checkout): the file is not read.
    r = await run({ KUMO_HOME: `${dir}/plain` }, ['config', 'get', 'openstack.region']);
    assert.equal(r.stdout.trim(), 'RegionOne');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
