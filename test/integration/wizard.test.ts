import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { verify } from 'unixcrypt';
import { CLI, makeTestEnv, type TestEnv } from '../helpers/env.js';
import { Terminal } from '../helpers/pty.js';
import { ImageService } from '../../src/service/images.js';
import { InstanceService } from '../../src/service/instances.js';
import { SettingsService } from '../../src/service/settings.js';

let env: TestEnv;
const terminals: Terminal[] = [];

before(async () => {
  env = await makeTestEnv('wiz');
  await new ImageService(env.ctx).buildTiny();
  // The wizard's "NAT(default)" choice points at this run's own network.
  new SettingsService(env.ctx).set('wizard.nat', env.network);
});
after(async () => {
  for (const t of terminals) t.kill();
  await env?.cleanup();
});

function wizard(lang: 'ko' | 'en'): Terminal {
  const t = new Terminal('node', [CLI, 'create'], { ...env.cliEnv, LANG: lang === 'ko' ? 'ko_KR.UTF-8' : 'en_US.UTF-8', TERM: 'xterm' });
  terminals.push(t);
  return t;
}

test('Korean wizard: the course\'s questions, a summary, y installs and the serial console attaches', async () => {
  const name = `${env.prefix}-ko`;
  const t = wizard('ko');
  const at0 = await t.expect(/설치할 운영체제\(번호선택\)\?\s*\n\s*- 1\. kumo tiny \(busybox\)\n/);
  let at = await t.expect(/설치할 운영체제\(번호선택\)\? :\s*$/, 10_000, at0);
  await t.answer('1');
  at = await t.expect(/flavor 선택\(번호선택\)\?\s*\n\s*- 1\. CPU 1, RAM 1G, 10G Disk\n\s*- 2\. CPU 2, RAM 2G, 20G Disk\n\s*- 3\. 직접 입력.*\n\s*flavor 선택\(번호선택\)\? :/, 10_000, at);
  await t.answer('9'); // out of range: asked again
  at = await t.expect(/1 부터 3 사이의 번호를 입력하세요/, 10_000, at);
  await t.answer('\b1'.replace('\b', '\x7f'));
  at = await t.expect(/루트패스워드 지정 :/, 10_000, at);
  await t.answer('test123');
  at = await t.expect(/루트패스워드 확인 :/, 10_000, at);
  await t.answer('test123');
  at = await t.expect(/네트워크 지정\(번호선택\)\s*\n\s*- 1\. Bridge\n\s*- 2\. NAT\(default\)\n\s*- 3\. isolated\(testnet\)\n\s*네트워크 지정\(번호선택\) :/, 10_000, at);
  await t.answer('1'); // no bridge configured yet: explained, asked again
  at = await t.expect(/no host bridge is configured/, 10_000, at);
  await t.answer('2');
  at = await t.expect(/추가디스크 사이즈/, 10_000, at);
  await t.answer('0');
  at = await t.expect(/가상머신의 이름은\? :/, 10_000, at);
  await t.answer(name);
  at = await t.expect(/설치확인[\s\S]*설치될 운영체제 : kumo tiny[\s\S]*flavor : CPU 1, RAM 1G, 10G Disk[\s\S]*루트 패스워드 : \*\*\*\*\*\*\*[\s\S]*네트워크 : NAT\(default\)[\s\S]*설치하시겠습니까\? \[y\/N\] :/, 10_000, at);
  assert.ok(!t.screen.includes('test123'), 'the password is never echoed');
  await t.answer('YES');
  at = await t.expect(/VNC 콘솔: \/\S+\/vnc\/vnc\.sock/, 120_000, at);
  at = await t.expect(/Ctrl\+\]/, 10_000, at);
  // The guest's boot scrolls by on the serial console, up to its login prompt.
  await t.expect(new RegExp(`${name} login:`), 180_000, at);
  t.write('\x1d'); // Ctrl+] detaches; the instance keeps running
  assert.equal(await t.exited, 0);
  const inst = await new InstanceService(env.ctx).get(name);
  assert.equal(inst.state, 'running');
  assert.equal(inst.flavor, 'small');
  assert.ok(verify('test123', inst.passwordHash ?? ''));
  await new InstanceService(env.ctx).delete(name);
});

test('English wizard: custom flavor, extra disk, and a bare Enter at [y/N] cancels with nothing made', async () => {
  const t = wizard('en');
  let at = await t.expect(/Operating system to install \(number\)\? :\s*$/);
  await t.answer('1');
  at = await t.expect(/Flavor \(number\)\? :\s*$/, 10_000, at);
  await t.answer('3');
  at = await t.expect(/Number of CPUs\? :/, 10_000, at);
  await t.answer('\x7f2');
  at = await t.expect(/RAM size \(MiB\)\? :/, 10_000, at);
  await t.answer('\x7f\x7f\x7f\x7f512');
  at = await t.expect(/Disk size \(GiB\)\? :/, 10_000, at);
  await t.answer('\x7f\x7f3');
  at = await t.expect(/Root password :/, 10_000, at);
  await t.answer('pw1');
  at = await t.expect(/Root password \(again\) :/, 10_000, at);
  await t.answer('pw2'); // mismatch: asked again
  at = await t.expect(/differ/, 10_000, at);
  at = await t.expect(/Root password :/, 10_000, at);
  await t.answer('pw1');
  at = await t.expect(/Root password \(again\) :/, 10_000, at);
  await t.answer('pw1');
  at = await t.expect(/Network \(number\) :\s*$/, 10_000, at);
  await t.answer('2');
  at = await t.expect(/Extra disk size/, 10_000, at);
  await t.answer('\x7f5');
  at = await t.expect(/Instance name\? :/, 10_000, at);
  await t.answer(`\x7f\x7f\x7f${env.prefix}-en`);
  at = await t.expect(/flavor : CPU 2, RAM 512M, 3G Disk[\s\S]*Extra disk : 5 GiB[\s\S]*Install\? \[y\/N\] :/, 10_000, at);
  await t.answer('');
  await t.expect(/Cancelled: nothing was created/, 10_000, at);
  assert.equal(await t.exited, 0);
  assert.deepEqual(readdirSync(join(env.home, 'instances')), []);
  assert.deepEqual(env.ctx.instances.list(), []);
});

test('anything but y/yes cancels', async () => {
  for (const reply of ['n', 'no', 'yep', 'ㅛ']) {
    const t = wizard('en');
    for (const [prompt, ans] of [[/Operating system.*:\s*$/, '1'], [/Flavor.*:\s*$/, '1'], [/Root password :/, 'x'], [/again/, 'x'], [/Network.*:\s*$/, '2'], [/Extra disk/, ''], [/Instance name/, '']] as const) {
      await t.expect(prompt, 10_000);
      await t.answer(ans);
    }
    await t.expect(/Install\? \[y\/N\] :/);
    await t.answer(reply);
    await t.expect(/Cancelled/);
    assert.equal(await t.exited, 0);
  }
  assert.deepEqual(env.ctx.instances.list(), []);
});

test('without a terminal the wizard says which flags to pass instead', async () => {
  const r = await env.cli(['create'], { input: '1\n' });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /not one[\s\S]*kumo instance create NAME --image IMAGE --flavor small --password-file FILE/);
});

test('the wizard\'s Bridge and isolated choices use the networks the site configured', async () => {
  // A bridge-mode network on a Linux bridge this run makes stands for the site's br0.
  const lan = `${env.prefix}-lan`;
  const made = await env.cli(['network', 'create', lan, '--mode', 'bridge', '--bridge', `${env.prefix}lan`.slice(0, 15), '--create-bridge']);
  assert.equal(made.code, 0, made.stderr);
  const settings = new SettingsService(env.ctx);
  settings.set('wizard.bridge', lan);
  settings.set('wizard.isolated', env.network);
  try {
    for (const [choice, network, label] of [['1', lan, 'Bridge'], ['3', env.network, 'isolated\\(testnet\\)']] as const) {
      const name = `${env.prefix}-c${choice}`;
      const t = new Terminal('node', [CLI, 'create', '--console', 'none'], { ...env.cliEnv, LANG: 'en_US.UTF-8', TERM: 'xterm' });
      terminals.push(t);
      for (const [prompt, ans] of [[/Operating system.*:\s*$/, '1'], [/Flavor.*:\s*$/, '1'], [/Root password :/, 'x'], [/again/, 'x'],
        [/Network.*:\s*$/, choice], [/Extra disk/, ''], [/Instance name/, name]] as const) {
        await t.expect(prompt, 10_000);
        await t.answer(ans);
      }
      await t.expect(new RegExp(`Network : ${label}[\\s\\S]*Install\\? \\[y/N\\] :`));
      await t.answer('y');
      assert.equal(await t.exited, 0, t.screen.slice(-500));
      const inst = await new InstanceService(env.ctx).get(name);
      assert.deepEqual(inst.nics.map((n) => n.network), [network]);
      assert.equal(inst.state, 'running');
      await new InstanceService(env.ctx).delete(name);
    }
  } finally {
    settings.set('wizard.bridge', '');
    await env.cli(['network', 'delete', lan]);
  }
});
