import { connect } from 'node:net';
import type { Context } from './context.js';
import { freeBytes } from './disk-full.js';
import { HostService } from './host.js';
import { LabService } from './lab.js';
import { LoadBalancerService } from './loadbalancers.js';
import { machineActor } from '../model/actor.js';
import { KumoError } from '../model/errors.js';
import { describeShell } from '../model/shell.js';

/**
 * What `kumo doctor` finds about the machine and the hosts kumo runs on, beside its records:
 * each finding is fine (`ok`, maybe with a note such as software emulation) or a problem with
 * its fix. Read-only: it changes nothing (kumo fixes its own file modes when it starts).
 */
export interface HostFinding {
  check: 'tools' | 'libvirt' | 'acceleration' | 'host' | 'virtlogd' | 'disk' | 'load balancer' | 'lab' | 'clock';
  ok: boolean;
  detail: string;
  fix?: string;
}

/** Below this much free space under KUMO_HOME a few instance disks or one image no longer fit. */
const LOW_DISK_BYTES = 2 * 2 ** 30;
/** Clocks further apart than this confuse logs, leases and the certificates of encrypted migrations. */
const MAX_SKEW_MS = 2_000;
const VIRTLOGD_SOCKET = '/run/libvirt/virtlogd-sock';

const ok = (check: HostFinding['check'], detail: string): HostFinding => ({ check, ok: true, detail });
const problem = (check: HostFinding['check'], detail: string, fix: string): HostFinding => ({ check, ok: false, detail, fix });

/** A check that could not run is a finding too: the doctor itself never fails on one. */
async function guarded(check: HostFinding['check'], run: () => Promise<HostFinding[]>): Promise<HostFinding[]> {
  try {
    return await run();
  } catch (e) {
    const fix = e instanceof KumoError && e.fix ? e.fix : 'run the command again; if it fails the same way, see the message';
    return [problem(check, `could not be checked: ${(e as Error).message}`, fix)];
  }
}

export class HostDoctor {
  constructor(private readonly ctx: Context) {}

  async check(): Promise<HostFinding[]> {
    const info = await new HostService(this.ctx).info();
    const found: HostFinding[] = info.missing.map((m) => problem('tools', `${m.tool} is not installed`, `apt-get install ${m.package}`));
    found.push(info.libvirtAnswers
      ? ok('libvirt', `${info.libvirtUri} answers (libvirt ${info.libvirt ?? '?'})`)
      : problem('libvirt', `${info.libvirtUri} does not answer`, 'start it: `virtlogd -d && libvirtd -d` (or `systemctl start libvirtd`), or run scripts/up.sh'));
    if (info.accel) found.push(ok('acceleration', info.accel === 'kvm' ? 'KVM' : `none: guests run in software emulation (TCG), slowly: ${info.accelReason ?? ''}`));
    found.push(...info.problems.map((p) => problem('host', p.problem, p.fix)));
    if (this.ctx.virsh.uri === 'qemu:///system') found.push(await this.virtlogd());
    found.push(this.disk());
    found.push(...(await guarded('load balancer', () => this.loadBalancers())), ...(await guarded('lab', () => this.lab())), ...(await guarded('clock', () => this.clocks())));
    return found;
  }

  /** libvirt's QEMU writes each guest's console log through virtlogd: without it no guest starts. */
  private async virtlogd(): Promise<HostFinding> {
    const answers = await new Promise<boolean>((resolve) => {
      const s = connect(VIRTLOGD_SOCKET);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    return answers ? ok('virtlogd', 'answers') : problem('virtlogd', `nothing answers on ${VIRTLOGD_SOCKET}: libvirt cannot start a guest without it`, '`virtlogd -d` (or `systemctl start virtlogd`)');
  }

  private disk(): HostFinding {
    const home = this.ctx.paths.home;
    const free = freeBytes(home);
    if (free === undefined) return problem('disk', `cannot read the free space under ${home}`, `check that ${home} exists and is readable`);
    const text = `${(free / 2 ** 30).toFixed(1)} GiB free under ${home}`;
    return free >= LOW_DISK_BYTES ? ok('disk', text)
      : problem('disk', `${text}: instance disks grow there, and a full disk stops every create`, `free space (delete unused instances, volumes, snapshots or images) or grow the filesystem (\`df -h ${home}\`)`);
  }

  private async loadBalancers(): Promise<HostFinding[]> {
    const found: HostFinding[] = [];
    for (const r of this.ctx.loadBalancers.list()) {
      const lb = await new LoadBalancerService(this.ctx, machineActor(r.project)).get(r.name);
      const down = [...(lb.running ? [] : ['HAProxy']), ...(lb.waf && !lb.wafRunning ? ['the WAF\'s nginx'] : [])];
      found.push(down.length
        ? problem('load balancer', `${lb.name} on ${lb.host}: ${down.join(' and ')} not running`, `kumo lb sync ${lb.name}`)
        : ok('load balancer', `${lb.name} on ${lb.host} runs`));
    }
    return found;
  }

  /** A lab recorded as up whose namespaces, libvirtds or DHCP servers are gone (a reboot takes them all). */
  private async lab(): Promise<HostFinding[]> {
    const lab = new LabService(this.ctx);
    if (!lab.state()) return [];
    const s = await lab.status();
    const gone = [
      ...s.nodes.filter((n) => !n.namespace).map((n) => `namespace ${n.netns}`),
      ...s.nodes.filter((n) => n.namespace && n.libvirtd && n.libvirtd.pid === undefined).map((n) => `${n.name}'s libvirtd`),
      ...s.segments.filter((g) => g.dhcp && !g.dhcp.running).map((g) => `${g.name}'s DHCP server`),
    ];
    return [gone.length
      ? problem('lab', `lab ${s.name ?? ''} is recorded up, but ${gone.join(', ')} ${gone.length === 1 ? 'is' : 'are'} gone (a reboot?)`, 'kumo lab up (it builds what is missing and keeps the rest)')
      : ok('lab', `lab ${s.name ?? ''}: ${s.nodes.length} nodes up`)];
  }

  /** Each host reached over ssh against this machine's clock (a namespace shares this kernel's). */
  private async clocks(): Promise<HostFinding[]> {
    const found: HostFinding[] = [];
    for (const h of this.ctx.hosts.list().filter((x) => x.shell.kind === 'ssh')) {
      const before = Date.now();
      const r = await this.ctx.shellOf(h.name).run('date', ['+%s%3N'], { allowFailure: true, timeoutMs: 10_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
      const after = Date.now();
      const theirs = Number(r.stdout.trim());
      if (r.code !== 0 || !Number.isFinite(theirs) || theirs === 0) {
        found.push(problem('clock', `host ${h.name} (${describeShell(h.shell)}) did not tell its time: ${r.stderr.trim() || `exit ${r.code}`}`, `check its shell: kumo host show ${h.name}`));
        continue;
      }
      const skew = theirs - (before + after) / 2;
      found.push(Math.abs(skew) <= MAX_SKEW_MS
        ? ok('clock', `host ${h.name} within ${Math.round(Math.abs(skew))} ms of this machine`)
        : problem('clock', `host ${h.name}'s clock is ${(skew / 1000).toFixed(1)} s ${skew > 0 ? 'ahead of' : 'behind'} this machine's`, 'run an NTP client on both (e.g. apt-get install chrony) so their clocks agree'));
    }
    return found;
  }
}
