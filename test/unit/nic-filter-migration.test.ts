import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xmlForDestinationFilters } from '../../src/drivers/libvirt/nic-filter.js';
import { attr, child, children, parseXml } from '../../src/drivers/libvirt/xml.js';
import type { Virsh } from '../../src/drivers/libvirt/virsh.js';

/** A source libvirt that answers `dumpxml --migratable` with the given domain. */
function sourceWith(xml: string): Virsh {
  return { run: async (args: string[]) => { assert.deepEqual(args, ['dumpxml', '--migratable', 'vm']); return xml; } } as unknown as Virsh;
}

const FILTERED = `<domain type="qemu"><name>vm</name><devices>
  <interface type="bridge"><mac address="52:54:00:aa:bb:01"/><source bridge="br0"/>
    <filterref filter="clean-traffic"><parameter name="CTRL_IP_LEARNING" value="dhcp"/><parameter name="IP" value="10.0.0.5"/></filterref></interface>
</devices></domain>`;
const BARE = `<domain type="qemu"><name>vm</name><devices>
  <interface type="bridge"><mac address="52:54:00:aa:bb:01"/><source bridge="br0"/></interface>
  <interface type="bridge"><mac address="52:54:00:aa:bb:02"/><source bridge="ovs0"/><virtualport type="openvswitch"/></interface>
</devices></domain>`;

const nics = (xml: string) => children(child(child(parseXml(xml), 'domain'), 'devices'), 'interface');

test('a destination without nwfilter gets the domain without its NIC filters (it would refuse it)', async () => {
  const xml = await xmlForDestinationFilters(sourceWith(FILTERED), 'vm', false);
  assert.ok(xml);
  assert.equal(child(nics(xml)[0], 'filterref'), undefined);
  assert.equal(attr(child(nics(xml)[0], 'mac'), 'address'), '52:54:00:aa:bb:01', 'the rest of the NIC stays');
});

test('a domain without filters moves as it is, even to a destination with nwfilter', async () => {
  assert.equal(await xmlForDestinationFilters(sourceWith(BARE), 'vm', true), undefined);
});

test('nothing to change: no destination XML', async () => {
  assert.equal(await xmlForDestinationFilters(sourceWith(FILTERED), 'vm', true), undefined);
});
