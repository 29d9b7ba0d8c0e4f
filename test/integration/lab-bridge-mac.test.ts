import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestEnv, type TestEnv } from '../helpers/env.js';
import { listenIn, tcpFrom } from '../helpers/reach.js';
import { local } from '../../src/exec/exec.js';
import { Namespaces } from '../../src/drivers/net/netns.js';

/**
 * A live migration in the lab once failed with "No route to host" from kvm1 to kvm2's address.
 * The cause: a Linux bridge without an address of its own takes the lowest MAC of its ports. A
 * hypervisor's br-SEG has the node's veth and the guests' taps (libvirt gives a tap the guest's
 * MAC with fe: in front); when the veth's random MAC is higher than a tap's, the bridge, and so
 * the node's IP address, wears that tap's MAC. An incoming migration makes a tap with the same
 * MAC on the destination's bridge, which then takes every frame for that MAC as its own: its
 * ARP reply to the source never leaves it, and the source's connect fails with EHOSTUNREACH.
 * Here two nodes are cabled as the lab cables them (Namespaces, as LabService.cable uses it),
 * with the veth's MAC made high on purpose so the old behaviour shows every time, not 1 run in ~100.
 *
 * Traffic stays in this test's own namespaces.
 */
let env: TestEnv;
const ns = new Namespaces();
const TAP_MAC = 'fe:54:00:12:34:56'; // a guest's 52:54:00:12:34:56 as libvirt puts it on the tap
const HIGH_MAC = 'fe:ff:ff:ff:ff:fe'; // a random veth MAC can be this high (first byte fe: 1 in 64)
const name = (node: string) => `${env.prefix}-${node}`;
const macOf = async (netns: string, link: string) =>
  (JSON.parse((await local.run('ip', ['-n', netns, '-j', 'link', 'show', link])).stdout) as { address: string }[])[0]!.address;

before(async () => {
  env = await makeTestEnv('brmac');
});
after(async () => env?.cleanup());

/**
 * A node as the lab makes a hypervisor: a veth from the switch, enslaved to br-seg, which holds
 * the address. `vethMac`: the veth's random MAC, chosen here (the source's higher than any tap's).
 */
async function cableNode(node: string, ip: string, index: number, vethMac: string): Promise<void> {
  await ns.ensure(name(node));
  await ns.veth({ netns: name('sw'), name: `${node}-s${index}` }, { netns: name(node), name: 'seg' });
  await ns.enslave(name('sw'), `${node}-s${index}`, 'seg');
  await local.run('ip', ['-n', name(node), 'link', 'set', 'seg', 'address', vethMac]);
  await ns.bridge(name(node), 'br-seg');
  await ns.enslave(name(node), 'seg', 'br-seg');
  await ns.address(name(node), 'br-seg', `${ip}/24`);
}

/** A guest's tap on the node's bridge, as libvirt adds it (the domain running, or arriving by migration). */
async function guestTap(node: string): Promise<void> {
  const run = (args: string[]) => local.run('ip', ['-n', name(node), ...args]);
  await run(['tuntap', 'add', 'dev', 'vnet0', 'mode', 'tap']);
  await run(['link', 'set', 'vnet0', 'address', TAP_MAC]);
  await run(['link', 'set', 'vnet0', 'master', 'br-seg']);
  await run(['link', 'set', 'vnet0', 'up']);
}

test('a hypervisor\'s bridge keeps its own MAC when guests\' taps come, so a migration\'s connect to the destination finds it', async () => {
  await ns.ensure(name('sw'));
  await ns.bridge(name('sw'), 'seg');
  await cableNode('a', '10.77.0.11', 0, HIGH_MAC);
  await cableNode('b', '10.77.0.12', 1, '02:00:00:77:00:12');
  const macBefore = await macOf(name('a'), 'br-seg');
  await guestTap('a'); // the source runs the guest
  const listener = await listenIn(name('b'), 49152);
  try {
    // Positive control: before the destination has the guest's tap, the source reaches it.
    // 8 s: long enough for a failed ARP resolution (3 probes, 1 s apart) to end as EHOSTUNREACH.
    const control = await tcpFrom(name('a'), '10.77.0.12', 49152, 8);
    assert.equal(control.outcome, 'connected', `a → b before the incoming tap: ${control.outcome} ${control.detail}`);
    // Nodes that never talked before (kvm1 and kvm2 in the lab): no neighbour entries yet.
    for (const node of ['a', 'b']) await local.run('ip', ['-n', name(node), 'neigh', 'flush', 'all']);
    await guestTap('b'); // the destination's tap, made when the migration is prepared
    const moved = await tcpFrom(name('a'), '10.77.0.12', 49152, 8);
    assert.equal(moved.outcome, 'connected', `a → b with the guest's tap on both bridges (the migration's connect): ${moved.outcome} ${moved.detail}`);
  } finally {
    listener.stop();
  }
  assert.equal(await macOf(name('a'), 'br-seg'), macBefore, 'the bridge (the node\'s address) kept its MAC when the guest\'s tap came');
  assert.notEqual(macBefore, TAP_MAC);
});
