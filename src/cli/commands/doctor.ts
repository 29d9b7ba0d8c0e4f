import { Command } from 'commander';
import { context } from '../app.js';
import { json, table } from '../render.js';
import { DoctorService, problemsIn, type DoctorReport, type OrphanDomain } from '../../service/doctor.js';
import { HostDoctor, type HostFinding } from '../../service/doctor-host.js';
import { invalid } from '../../model/errors.js';

/** `kumo doctor`'s exit code when problems remain: a cron job or script can alert on it (like fsck's). */
export const DOCTOR_PROBLEMS_EXIT = 11;

const diskText = (o: OrphanDomain) => o.disks.map((d) => `${d.file}${d.exists ? '' : ' (missing)'}`).join(', ') || '-';

function printHost(found: HostFinding[]): void {
  console.log(table(['Check', 'State', 'Detail'], found.map((f) => [f.check, f.ok ? 'ok' : 'PROBLEM', f.fix ? `${f.detail} (fix: ${f.fix})` : f.detail])));
}

function print(r: DoctorReport): void {
  if (r.orphans.length) {
    console.log('Orphan domains (kumo made them, no kumo record):');
    console.log(table(['Host', 'Name', 'UUID', 'State', 'Disks'], r.orphans.map((o) => [o.host, o.name, o.uuid, o.state, diskText(o)])));
  }
  if (r.missing.length) {
    console.log('Instances whose domain is missing (`kumo instance delete NAME` removes the record):');
    console.log(table(['Instance', 'Project', 'Host', 'UUID'], r.missing.map((m) => [m.instance, m.project, m.host, m.uuid])));
  }
  for (const u of r.unfinished) console.log(`unfinished: "${u.operation}" from ${u.startedAt}: ${u.steps} undo step(s) failed; every kumo start retries them`);
  for (const u of r.unreachable) console.log(`host ${u.host} did not answer: ${u.error}`);
  if (!problemsIn(r)) console.log('no problems: every domain kumo made has its record, and every record its domain');
}

/**
 * `kumo doctor`: this machine and kumo's hosts, then kumo's records against libvirt's domains, on
 * every registered hypervisor. Root on the machine only (no API route). Read-only unless --fix,
 * which removes orphan domains and nothing else. Exits 0 when nothing is wrong (after --fix:
 * nothing left), 11 when problems remain.
 */
export function doctorCommand(): Command {
  return new Command('doctor').description('check this machine and kumo\'s hosts (tools, libvirt, virtlogd, acceleration, modes of KUMO_HOME, free disk, load balancers, the lab, clocks) and kumo\'s records against libvirt\'s domains (orphans, missing); --fix removes orphan domains (root on the machine)')
    .option('--fix', 'remove shut-off orphan domains (only those; records are left alone)')
    .option('--force', 'with --fix: also stop and remove running orphans')
    .option('--json', 'machine-readable output')
    .action(async (o: { fix?: boolean; force?: boolean; json?: boolean }) => {
      if (o.force && !o.fix) throw invalid('--force only goes with --fix', 'kumo doctor --fix --force');
      const ctx = await context();
      const svc = new DoctorService(ctx);
      if (!o.fix) {
        const [host, report] = [await new HostDoctor(ctx).check(), await svc.check()];
        if (o.json) console.log(json({ host, ...report }));
        else {
          printHost(host);
          print(report);
        }
        if (problemsIn(report) || host.some((f) => !f.ok)) process.exitCode = DOCTOR_PROBLEMS_EXIT;
        return;
      }
      const fixed = await svc.fix({ force: o.force ?? false });
      if (o.json) console.log(json(fixed));
      else {
        for (const r of fixed.removed) console.log(`removed orphan domain ${r.name} (${r.uuid}) on ${r.host}, ${r.state}`);
        for (const k of fixed.kept) console.log(`kept orphan domain ${k.orphan.name} (${k.orphan.uuid}) on ${k.orphan.host}: ${k.why}`);
        if (!fixed.removed.length && !fixed.kept.length) console.log('no orphan domain to remove');
        print(fixed.after);
      }
      if (problemsIn(fixed.after)) process.exitCode = DOCTOR_PROBLEMS_EXIT;
    });
}
