import { Command } from 'commander';
import { context } from '../app.js';
import { json } from '../render.js';
import { HostService } from '../../service/host.js';

export function hostCommand(): Command {
  const cmd = new Command('host').description('the hypervisor hosts kumo manages');
  cmd.command('info').description('acceleration, libvirt/QEMU versions, CPUs, memory and missing tools')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const i = await new HostService(await context()).info();
      if (o.json) return console.log(json(i));
      const row = (k: string, v: unknown) => console.log(`${k.padEnd(14)} ${String(v)}`);
      row('host', i.name);
      row('libvirt uri', `${i.libvirtUri} (${i.libvirtAnswers ? 'answers' : 'DOES NOT ANSWER: start libvirtd'})`);
      if (i.libvirt) row('libvirt', i.libvirt);
      if (i.hypervisor) row('hypervisor', i.hypervisor);
      if (i.accel) row('acceleration', `${i.accel === 'kvm' ? 'KVM' : 'none: TCG software emulation'} — ${i.accelReason}`);
      row('cpus', i.cpus);
      row('memory', `${i.memoryMiB} MiB (${i.freeMemoryMiB} MiB free)`);
      row('missing', i.missing.length ? i.missing.map((m) => `${m.tool} (apt-get install ${m.package})`).join(', ') : 'nothing');
    });
  return cmd;
}
