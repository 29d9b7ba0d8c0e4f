import test from 'node:test';
import assert from 'node:assert/strict';
import { local } from '../../src/exec/exec.js';
import { dhcpServerArgs, type DhcpServerSpec } from '../../src/drivers/daemons/dnsmasq.js';
import { COURSE_LAB, dhcpPlan } from '../../src/model/lab.js';

/** dnsmasq's own syntax check (`dnsmasq --test`) on the command line kumo starts each DHCP server with. */

const dnsmasqTest = async (args: string[]) => {
  const r = await local.run('dnsmasq', ['--test', ...args], { allowFailure: true });
  return { ok: r.code === 0 && /syntax check OK/.test(r.stdout + r.stderr), output: `${r.stdout}${r.stderr}` };
};
const installed = async () => (await local.run('sh', ['-c', 'command -v dnsmasq'], { allowFailure: true })).code === 0;

const serverOf = (segment: string, cidr: string): DhcpServerSpec => {
  const plan = dhcpPlan(cidr);
  return { link: segment, rangeStart: plan.start, rangeEnd: plan.end, dir: '/var/lib/kumo/lab/dhcp', name: segment };
};

test('dnsmasq accepts the command line of every DHCP server kumo starts (the lab\'s segments, a /16, a /28)', async (t) => {
  if (!(await installed())) return t.skip('not installed: dnsmasq (apt-get install dnsmasq-base)');
  const servers = [
    ...Object.entries(COURSE_LAB.segments).filter(([, s]) => s.instances).map(([name, s]) => serverOf(name, s.cidr)),
    serverOf('big', '10.8.0.0/16'), serverOf('small', '10.9.0.16/28'),
    { ...serverOf('known', '10.9.1.0/24'), knownOnly: true },
  ];
  assert.ok(servers.length >= 4);
  for (const s of servers) {
    const r = await dnsmasqTest(dhcpServerArgs(s));
    assert.ok(r.ok, `dnsmasq --test refused ${s.link}:\n${r.output}\n${dhcpServerArgs(s).join(' ')}`);
  }
});

test('the check can fail: dnsmasq refuses a range it cannot read', async (t) => {
  if (!(await installed())) return t.skip('not installed: dnsmasq (apt-get install dnsmasq-base)');
  const r = await dnsmasqTest(dhcpServerArgs({ ...serverOf('backend', '10.5.2.0/24'), rangeStart: '10.5.2.300' }));
  assert.equal(r.ok, false);
  assert.match(r.output, /bad dhcp-range/);
});
