import type { MetricsSnapshot } from './collector.js';

/**
 * The Prometheus text exposition (format 0.0.4) of a collector's snapshot, for the API's
 * /metrics. Only what libvirt counted goes out: cumulative counters per device (Prometheus
 * computes rates itself) and gauges; kumo's own rates are for people.
 */
export function renderPrometheus(snap: MetricsSnapshot): string {
  const families = new Map<string, { help: string; type: 'counter' | 'gauge'; lines: string[] }>();
  const put = (name: string, type: 'counter' | 'gauge', help: string, labels: Record<string, string>, value: number | undefined) => {
    if (value === undefined || !Number.isFinite(value)) return;
    let f = families.get(name);
    if (!f) {
      f = { help, type, lines: [] };
      families.set(name, f);
    }
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
    f.lines.push(`${name}{${l}} ${value}`);
  };

  for (const h of snap.hosts) {
    put('kumo_host_up', 'gauge', 'Whether the host\'s libvirt answered in the last round (1) or not (0).', { host: h.host }, h.up ? 1 : 0);
    put('kumo_host_read_duration_seconds', 'gauge', 'How long reading the host\'s domain statistics took.', { host: h.host }, h.durationMs / 1000);
    put('kumo_host_domains', 'gauge', 'Domains libvirt listed on the host.', { host: h.host }, h.up ? h.domains : undefined);
  }
  for (const { sample: s, nics, disks } of snap.instances) {
    const base = { instance: s.instance, host: s.host };
    put('kumo_instance_info', 'gauge', 'One per instance kumo read, with its state.', { ...base, state: s.state }, 1);
    put('kumo_instance_cpu_seconds_total', 'counter', 'Host CPU time the instance used.', base, s.cpuTimeNs === undefined ? undefined : s.cpuTimeNs / 1e9);
    put('kumo_instance_vcpus', 'gauge', 'Virtual CPUs.', base, s.vcpus);
    put('kumo_instance_memory_bytes', 'gauge', 'Memory the guest has (balloon).', base, kib(s.memCurrentKiB));
    put('kumo_instance_memory_rss_bytes', 'gauge', 'Resident memory of the instance\'s QEMU process on the host.', base, kib(s.memRssKiB));
    put('kumo_instance_memory_used_bytes', 'gauge', 'Memory in use inside the guest, as its balloon driver last reported it.', base, kib(s.memUsedKiB));
    if (s.cpuTimeNs === undefined) continue; // not running: libvirt has no device counters
    for (const d of disks) {
      const l = { ...base, device: d.name };
      put('kumo_instance_disk_read_bytes_total', 'counter', 'Bytes read from the disk.', l, d.rdBytes);
      put('kumo_instance_disk_written_bytes_total', 'counter', 'Bytes written to the disk.', l, d.wrBytes);
      put('kumo_instance_disk_reads_total', 'counter', 'Read requests to the disk.', l, d.rdReqs);
      put('kumo_instance_disk_writes_total', 'counter', 'Write requests to the disk.', l, d.wrReqs);
    }
    for (const n of nics) {
      const l = { ...base, interface: n.name };
      put('kumo_instance_network_receive_bytes_total', 'counter', 'Bytes the guest received.', l, n.rxBytes);
      put('kumo_instance_network_transmit_bytes_total', 'counter', 'Bytes the guest sent.', l, n.txBytes);
      put('kumo_instance_network_receive_packets_total', 'counter', 'Packets the guest received.', l, n.rxPkts);
      put('kumo_instance_network_transmit_packets_total', 'counter', 'Packets the guest sent.', l, n.txPkts);
      put('kumo_instance_network_receive_errors_total', 'counter', 'Receive errors.', l, n.rxErrs);
      put('kumo_instance_network_transmit_errors_total', 'counter', 'Transmit errors.', l, n.txErrs);
      put('kumo_instance_network_receive_drops_total', 'counter', 'Received packets dropped.', l, n.rxDrop);
      put('kumo_instance_network_transmit_drops_total', 'counter', 'Packets to send dropped.', l, n.txDrop);
    }
  }
  const out: string[] = [];
  for (const [name, f] of families) out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.lines);
  return out.length ? `${out.join('\n')}\n` : '';
}

const kib = (v: number | undefined) => (v === undefined ? undefined : v * 1024);

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
