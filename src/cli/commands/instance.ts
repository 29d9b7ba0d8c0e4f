import { Command, Option } from 'commander';
import { named, namedOption } from '../names.js';
import { existsSync, readFileSync } from 'node:fs';
import { collect, actor, context, say } from '../app.js';
import { json, ramText, table } from '../render.js';
import { launch, parseConsoleMode, parseWait, waitAndTell } from '../launch.js';
import { en } from '../i18n.js';
import { InstanceService, type CreateRequest } from '../../service/instances.js';
import { MigrationService } from '../../service/migration.js';
import { ConsoleService } from '../../service/consoles.js';
import { invalid, KumoError } from '../../model/errors.js';
import { parseSeconds, parseWhole } from '../../model/sizes.js';
import { parseReadyCheck } from '../../model/readiness.js';
import type { Instance } from '../../model/types.js';

interface CreateFlags {
  image: string;
  flavor?: string;
  vcpus?: string;
  ram?: string;
  diskSize?: string;
  password?: string;
  passwordFile?: string;
  sshKey: string[];
  network: string[];
  disk: string[];
  userData?: string;
  console: string;
  wait?: boolean;
  waitFor?: string;
  waitTimeout?: string;
  host?: string;
  ha?: boolean;
}


export function readFileArg(flag: string, file: string): string {
  if (!existsSync(file)) throw invalid(`${flag}: file ${file} does not exist`, `give the path of an existing file to ${flag}`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw invalid(`${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** --ssh-key takes a key or a file of keys (one per line, like authorized_keys). */
function sshKeys(values: string[]): string[] {
  return values.flatMap((v) => (existsSync(v) ? readFileArg('--ssh-key', v).split('\n') : [v]))
    .map((k) => k.trim()).filter((k) => k && !k.startsWith('#'));
}

export function createRequest(name: string, o: CreateFlags): CreateRequest {
  if (o.password !== undefined && o.passwordFile !== undefined) {
    throw invalid('--password and --password-file both given', 'pass only one of them');
  }
  const password = o.passwordFile !== undefined ? readFileArg('--password-file', o.passwordFile).replace(/\r?\n$/, '') : o.password;
  return {
    name, image: o.image,
    ...(o.flavor ? { flavor: o.flavor } : {}),
    ...(o.vcpus !== undefined ? { vcpus: parseWhole(o.vcpus) } : {}),
    ...(o.ram !== undefined ? { ramMiB: parseWhole(o.ram) } : {}),
    ...(o.diskSize !== undefined ? { diskGiB: parseWhole(o.diskSize) } : {}),
    ...(password !== undefined ? { password } : {}),
    sshKeys: sshKeys(o.sshKey),
    networks: o.network,
    dataDisks: o.disk.map(parseWhole),
    ...(o.userData !== undefined ? { userData: readFileArg('--user-data', o.userData) } : {}),
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.ha ? { ha: true } : {}),
  };
}

function ips(i: Instance): string {
  return i.nics.map((n) => n.ipv4).filter(Boolean).join(',');
}

export function instanceCommand(): Command {
  const cmd = new Command('instance').description('virtual machines made from cloud images');
  addCreate(cmd);
  addInspection(cmd);
  addLifecycle(cmd);
  addConsoleAndMoves(cmd);
  return cmd;
}

function addCreate(cmd: Command): void {
  cmd.command('create').argument('<name>', 'instance name (also its hostname)')
    .description('create and start an instance from an image')
    .addOption(namedOption('image', '--image <name>', 'image to start from (see kumo image list)').makeOptionMandatory())
    .addOption(namedOption('flavor', '--flavor <name>', 'size: small (1 vCPU, 1 GiB, 10 GiB), medium (2, 2 GiB, 20 GiB), or your own'))
    .option('--vcpus <n>', 'virtual CPUs (instead of or over the flavor)')
    .option('--ram <MiB>', 'memory in MiB')
    .option('--disk-size <GiB>', 'root disk size in GiB')
    .option('--password <text>', 'root password (visible to other users in ps: prefer --password-file)')
    .option('--password-file <file>', 'file holding the root password')
    .option('--ssh-key <key|file>', 'ssh public key for root (repeatable)', collect, [])
    .addOption(namedOption('network', '--network <name>', 'network to attach (repeatable; default: default, the NAT network)').argParser(collect).default([]))
    .option('--disk <GiB>', 'extra empty data disk (repeatable)', collect, [])
    .option('--user-data <file>', 'your own #cloud-config, merged with kumo\'s')
    .addOption(new Option('--console <mode>', 'connect a console after start').choices(['auto', 'none', 'serial', 'vnc']).default('none'))
    .option('--wait', 'wait until the guest is ready, by its image\'s check (kumo image list: READY)')
    .option('--wait-for <check>', 'wait for this instead: http:PORT, ssh, cloud-init or agent (implies --wait)')
    .option('--wait-timeout <seconds>', 'how long --wait waits (default 600)')
    .addOption(namedOption('host', '--host <name>', 'pin to this host (default: the hypervisor with the most free memory)'))
    .option('--ha', 'highly available: when its host dies and is fenced, the HA watcher starts it on another hypervisor (same disks and addresses)')
    .action(async (name: string, o: CreateFlags) => {
      const wait = parseWait(o); // checked before anything is made
      await launch(await context(), createRequest(name, o), { console: parseConsoleMode(o.console), ...wait, messages: en.launch });
    });
}

/** list, show, xml: what kumo and libvirt know of instances. */
function addInspection(cmd: Command): void {
  cmd.command('list').description('list instances, like virsh list --all').option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const list = await new InstanceService(await context(), actor()).list();
      if (o.json) return console.log(json(list));
      console.log(table(['Name', 'State', 'Host', 'HA', 'Image', 'Flavor', 'IPs'],
        list.map((i) => [i.name, i.state, i.host, i.ha ? 'yes' : '-', i.image, i.flavor ?? `${i.vcpus}/${ramText(i.ramMiB)}/${i.diskGiB}G`, ips(i)])));
      for (const i of list) for (const d of i.drift) say(`warning: ${i.name}: ${d}`);
    });

  cmd.command('show').addArgument(named('instance', '<name>')).option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const i = await new InstanceService(await context(), actor()).show(name);
      if (o.json) return console.log(json(i));
      const { passwordHash, sshKeys, nics, drift, dataDisks, volumes, readiness, ha, ...rest } = i;
      for (const [k, v] of Object.entries(rest)) console.log(`${k.padEnd(12)} ${String(v)}`);
      console.log(`HA: ${ha ? 'yes (started on another hypervisor if its host dies and is fenced)' : 'no'}`);
      console.log(`${'password'.padEnd(12)} ${passwordHash ? 'set (sha512 hash)' : 'none'}`);
      console.log(`${'ssh keys'.padEnd(12)} ${sshKeys.length}`);
      console.log(`${'data disks'.padEnd(12)} ${dataDisks.length ? dataDisks.map((d) => `${d} GiB`).join(', ') : 'none'}`);
      for (const n of nics) console.log(`${'nic'.padEnd(12)} ${n.mac}  ${n.network}  ${n.ipv4 ?? '(no lease yet)'}`);
      for (const v of volumes) console.log(`${'volume'.padEnd(12)} ${v.name}  ${v.device}  ${v.sizeGiB} GiB`);
      for (const d of drift) console.log(`${'drift'.padEnd(12)} ${d}`);
      console.log(`${'readiness'.padEnd(12)} ${readiness.status} (${readiness.check}): ${readiness.detail}`);
      const ci = readiness.cloudInit;
      if (ci) console.log(`${'cloud-init'.padEnd(12)} ${ci.status}${ci.version ? ` (${ci.version})` : ''}`);
      for (const e of ci?.errors ?? []) console.log(`${'  reported'.padEnd(12)} ${e}`);
    });

  cmd.command('xml').addArgument(named('instance', '<name>')).description('the libvirt domain XML, like virsh dumpxml')
    .action(async (name: string) => {
      process.stdout.write(await new InstanceService(await context(), actor()).xml(name));
    });
}

/** start, stop, reboot, destroy, delete, resize. */
function addLifecycle(cmd: Command): void {
  cmd.command('start').addArgument(named('instance', '<names...>')).action(async (names: string[]) => {
    const svc = new InstanceService(await context(), actor());
    for (const n of names) console.log(await svc.start(n) ? `started ${n}` : `${n} is already running`);
  });

  cmd.command('stop').addArgument(named('instance', '<names...>')).description('shut down cleanly (ACPI), forcing off after --timeout')
    .option('--timeout <seconds>', 'grace period before pulling the plug', '60')
    .action(async (names: string[], o: { timeout: string }) => {
      const grace = parseSeconds('--timeout', o.timeout);
      const svc = new InstanceService(await context(), actor());
      for (const n of names) {
        const r = await svc.stop(n, grace * 1000);
        console.log(r.forced ? `${n} did not shut down within ${grace} s: forced off` : `stopped ${n}`);
      }
    });

  cmd.command('reboot').addArgument(named('instance', '<names...>')).action(async (names: string[]) => {
    const svc = new InstanceService(await context(), actor());
    for (const n of names) { await svc.reboot(n); console.log(`rebooting ${n}`); }
  });

  cmd.command('destroy').addArgument(named('instance', '<names...>')).description('force off, like virsh destroy (the instance stays)')
    .action(async (names: string[]) => {
      const svc = new InstanceService(await context(), actor());
      for (const n of names) { await svc.destroy(n); console.log(`forced off ${n}`); }
    });

  cmd.command('delete').addArgument(named('instance', '<names...>')).description('remove the instance with its disks and seed (attached volumes are kept, detached)')
    .action(async (names: string[]) => {
      const svc = new InstanceService(await context(), actor());
      for (const n of names) {
        const { detachedVolumes: vols } = await svc.delete(n);
        console.log(`deleted ${n}`);
        if (vols.length) console.log(`  kept volume${vols.length > 1 ? 's' : ''} ${vols.join(', ')}, now detached (kumo volume delete NAME removes one)`);
      }
    });

  cmd.command('resize').addArgument(named('instance', '<name>')).description('grow the root disk of a stopped instance (its filesystem grows on the next boot)')
    .requiredOption('--disk-size <GiB>', 'new root disk size in GiB (only growing)')
    .action(async (name: string, o: { diskSize: string }) => {
      const r = await new InstanceService(await context(), actor()).resize(name, parseWhole(o.diskSize));
      console.log(r.toGiB === r.fromGiB ? `the root disk of ${name} is already ${r.toGiB} GiB`
        : `grew the root disk of ${name} from ${r.fromGiB} to ${r.toGiB} GiB; the guest grows its filesystem when it starts (kumo instance start ${name})`);
    });
}

/** The serial console, live migration, and waiting for a guest. */
function addConsoleAndMoves(cmd: Command): void {
  cmd.command('console').addArgument(named('instance', '<name>')).description('attach the serial console (detach with Ctrl+])')
    .option('--log', 'print the console log instead of attaching')
    .action(async (name: string, o: { log?: boolean }) => {
      const ctx = await context();
      const svc = new InstanceService(ctx, actor());
      if (o.log) {
        process.stdout.write(await svc.readConsoleLog(name));
        return;
      }
      const inst = await svc.get(name);
      if (inst.state !== 'running') throw invalid(`instance "${name}" is ${inst.state}`, `start it: kumo instance start ${name}`);
      if (!process.stdin.isTTY) throw new KumoError('NOT_INTERACTIVE', 'the serial console needs a terminal', `read the log instead: kumo instance console ${name} --log`);
      say(en.launch.detach);
      process.exitCode = await new ConsoleService(ctx).attachSerial(name);
    });

  cmd.command('migrate').addArgument(named('instance', '<name>')).description('live-migrate a running instance to another host')
    .addOption(namedOption('host', '--to <host>', 'destination host (kumo host list)').makeOptionMandatory())
    .option('--unsafe', 'skip libvirt\'s shared-storage check (automatic between hypervisors on this machine)')
    .option('--encrypted', 'encrypt the memory stream with QEMU\'s TLS (certificates needed on both hosts)')
    .action(async (name: string, o: { to: string; unsafe?: boolean; encrypted?: boolean }) => {
      const r = await new MigrationService(await context()).migrate(name, o.to, { ...(o.unsafe ? { unsafe: true } : {}), ...(o.encrypted ? { encrypted: true } : {}) });
      console.log(`migrated ${name} ${r.from} -> ${r.to} in ${(r.durationMs / 1000).toFixed(1)} s (downtime ${r.downtimeMs ?? '?'} ms)`);
    });

  cmd.command('wait').addArgument(named('instance', '<name>')).description('wait until the guest is ready, by its image\'s check or --for')
    .option('--for <check>', 'http:PORT, ssh, cloud-init or agent (default: the image\'s, see kumo image list)')
    .option('--timeout <seconds>', 'how long to wait', '600')
    .action(async (name: string, o: { timeout: string; for?: string }) => {
      const seconds = parseSeconds('--timeout', o.timeout);
      const check = o.for !== undefined ? parseReadyCheck(o.for, '--for') : undefined;
      const svc = new InstanceService(await context(), actor());
      await waitAndTell(svc, name, { ...(check ? { check } : {}), timeoutMs: seconds * 1000, messages: en.launch });
    });
}
