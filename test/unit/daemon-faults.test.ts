import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Executor } from '../../src/exec/exec.js';
import { KumoError } from '../../src/model/errors.js';
import { Virsh } from '../../src/drivers/libvirt/virsh.js';

/** A shell whose virsh fails the way a dead or dying libvirtd makes it fail. */
function virshFailing(stderr: string): Executor {
  return {
    description: 'fake',
    async run(command, args) {
      throw new KumoError('COMMAND_FAILED', `${command} ${args.join(' ')} failed (exit 1): ${stderr}`);
    },
    async open() {
      throw new Error('not used');
    },
  };
}

const URI = 'qemu+unix:///system?socket=/x/run/libvirt-sock';

test('libvirtd dying under a call: the error names the host, libvirtd and the fix, not "libvirt refused"', async () => {
  const v = new Virsh(URI, virshFailing('error: Disconnected from qemu+unix:///system due to end of file\nerror: End of file while reading data: Input/output error'), undefined, () => 'kvm2');
  await assert.rejects(v.start('web1'), (e: KumoError) => {
    assert.equal(e.code, 'LIBVIRT_ERROR');
    assert.match(e.message, /^libvirtd of host "kvm2" \(qemu\+unix:.*\) stopped answering during "start web1" \(libvirtd died\?\): End of file while reading data/);
    assert.match(e.fix ?? '', /start libvirtd on host "kvm2".*then retry.*kumo doctor/);
    return true;
  });
});

test('libvirtd not running on a registered host: "does not answer", with the host and libvirtd named', async () => {
  const v = new Virsh(URI, virshFailing('error: failed to connect to the hypervisor\nerror: Failed to connect socket to \'/x/run/libvirt-sock\': Connection refused'), undefined, () => 'kvm2');
  await assert.rejects(v.listDomains(), (e: KumoError) => /^libvirtd of host "kvm2" \(.*\) does not answer \(is libvirtd running\?\)$/.test(e.message) && /start libvirtd on host "kvm2"/.test(e.fix ?? ''));
  // A URI no host is registered under (kumo host add's probe) keeps naming the URI.
  const bare = new Virsh(URI, virshFailing('error: failed to connect to the hypervisor'));
  await assert.rejects(bare.listDomains(), (e: KumoError) => e.message === `libvirt at ${URI} does not answer (is libvirtd running?)`);
});
