import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, type Host, type Instance, type LoadBalancer, type Network } from './api';

interface State { hosts: Host[]; instances: Instance[]; networks: Network[]; lbs: LoadBalancer[] }

const INST_W = 150, INST_H = 36, GAP = 10, PER_ROW = 4, HOST_HEAD = 34, BUS_GAP = 34, LB_W = 190, LB_H = 44;
const NET_COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#db2777', '#0891b2', '#65a30d', '#dc2626'];

/**
 * The datacenter as SVG from live state: load balancers on top, networks as buses, hosts as
 * boxes with their instances inside; every instance is wired to the buses of its networks and
 * every load balancer to its network (and, dashed, to its backends).
 */
export function Topology() {
  const [state, setState] = useState<State | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const [hosts, instances, networks, lbs] = await Promise.all([
          // Hosts are an admin's to see: others draw the hosts their instances name.
          call<Host[]>('GET', '/hosts').catch((e: unknown) => (e instanceof ApiError && e.status === 403 ? [] : Promise.reject(e))), call<Instance[]>('GET', '/instances'), call<Network[]>('GET', '/networks'),
          call<LoadBalancer[]>('GET', '/loadbalancers'),
        ]);
        if (!stopped) { setState({ hosts, instances, networks, lbs }); setError(''); }
      } catch (e) {
        if (!stopped) setError((e as Error).message);
      }
    };
    void load();
    const t = setInterval(() => void load(), 5000);
    return () => { stopped = true; clearInterval(t); };
  }, []);
  return (
    <section class="topology">
      <h2>Topology</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {!state ? <p>Loading…</p> : <Picture {...state} />}
    </section>
  );
}

function Picture({ hosts, instances, networks, lbs }: State) {
  // Hosts in their order, plus any host an instance names that the host list lacks.
  const hostNames = [...hosts.map((h) => h.name), ...instances.map((i) => i.host).filter((h) => !hosts.some((x) => x.name === h))]
    .filter((h, i, a) => a.indexOf(h) === i);
  const netNames = [...networks.map((n) => n.name), ...instances.flatMap((i) => i.networks), ...lbs.map((l) => l.network)]
    .filter((n, i, a) => a.indexOf(n) === i);
  const color = (net: string) => NET_COLORS[netNames.indexOf(net) % NET_COLORS.length]!;

  const lbTop = 20;
  const busTop = lbs.length ? lbTop + LB_H + 40 : 30;
  const busY = new Map(netNames.map((n, i) => [n, busTop + i * BUS_GAP]));
  const hostsTop = busTop + Math.max(netNames.length - 1, 0) * BUS_GAP + 50;

  let x = 20;
  const hostBoxes = hostNames.map((name) => {
    const mine = instances.filter((i) => i.host === name);
    const cols = Math.max(1, Math.min(PER_ROW, mine.length));
    const rows = Math.max(1, Math.ceil(mine.length / PER_ROW));
    const w = Math.max(180, cols * (INST_W + GAP) + GAP);
    const h = HOST_HEAD + rows * (INST_H + GAP) + GAP;
    const box = {
      name, x, y: hostsTop, w, h, host: hosts.find((o) => o.name === name),
      instances: mine.map((inst, k) => ({ inst, x: x + GAP + (k % PER_ROW) * (INST_W + GAP), y: hostsTop + HOST_HEAD + Math.floor(k / PER_ROW) * (INST_H + GAP) })),
    };
    x += w + 30;
    return box;
  });
  const lbBoxes = lbs.map((lb, k) => ({ lb, x: 20 + k * (LB_W + 30), y: lbTop }));
  const width = Math.max(x, 20 + lbs.length * (LB_W + 30), 600);
  const height = hostsTop + Math.max(0, ...hostBoxes.map((b) => b.h)) + 30;
  const where = new Map(hostBoxes.flatMap((b) => b.instances.map((i) => [i.inst.name, i] as const)));

  return (
    <svg class="topo" xmlns="http://www.w3.org/2000/svg" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="datacenter topology">
      {netNames.map((n) => {
        const net = networks.find((o) => o.name === n);
        const y = busY.get(n)!;
        return (
          <g class="topo-network" data-network={n} key={`n-${n}`}>
            <line x1={10} y1={y} x2={width - 10} y2={y} stroke={color(n)} stroke-width={4} stroke-dasharray={net && !net.active ? '8 6' : undefined} />
            <text x={width - 14} y={y - 6} text-anchor="end" font-size="12" fill={color(n)}>{n}{net?.cidr ? ` ${net.cidr}` : ''}{net ? ` (${net.mode}${net.active ? '' : ', inactive'})` : ''}</text>
          </g>
        );
      })}
      {hostBoxes.flatMap((b) => b.instances.flatMap(({ inst, x: ix, y: iy }) => inst.networks.map((n, k) => {
        const cx = ix + 20 + k * 14;
        return <line class="topo-link" data-link={`${inst.name}:${n}`} key={`l-${inst.name}-${n}-${k}`} x1={cx} y1={iy} x2={cx} y2={busY.get(n) ?? iy} stroke={color(n)} stroke-width={2} />;
      })))}
      {lbBoxes.map(({ lb, x: lx, y: ly }) => (
        <g key={`lb-${lb.name}`}>
          <line x1={lx + LB_W / 2} y1={ly + LB_H} x2={lx + LB_W / 2} y2={busY.get(lb.network) ?? ly + LB_H} stroke={color(lb.network)} stroke-width={3} />
          {lb.instances.map((i) => {
            const t = where.get(i);
            return t ? <line key={`b-${lb.name}-${i}`} class="topo-backend" x1={lx + LB_W / 2} y1={ly + LB_H} x2={t.x + INST_W / 2} y2={t.y} stroke="#888" stroke-width={1} stroke-dasharray="4 4" /> : null;
          })}
        </g>
      ))}
      {hostBoxes.map((b) => (
        <g class="topo-host" data-host={b.name} key={`h-${b.name}`}>
          <rect x={b.x} y={b.y} width={b.w} height={b.h} rx={8} fill="#fff" stroke={b.host && !b.host.up ? '#dc2626' : '#475569'} stroke-width={2} />
          <text x={b.x + 10} y={b.y + 22} font-size="14" font-weight="bold">{b.name}</text>
          <text x={b.x + b.w - 10} y={b.y + 22} font-size="11" text-anchor="end" fill="#667">{b.host ? `${b.host.roles.join(', ')}${b.host.up ? '' : ' · DOWN'}` : 'not registered'}</text>
          {b.instances.map(({ inst, x: ix, y: iy }) => (
            <a href={`#/instances/${encodeURIComponent(inst.name)}`} key={`i-${inst.name}`}>
              <g class="topo-instance" data-instance={inst.name} data-state={inst.state}>
                <rect x={ix} y={iy} width={INST_W} height={INST_H} rx={4} fill={inst.state === 'running' ? '#dcfce7' : inst.state === 'shut off' ? '#f1f5f9' : '#fee2e2'} stroke="#64748b" />
                <text x={ix + INST_W / 2} y={iy + 15} font-size="12" text-anchor="middle">{inst.name}</text>
                <text x={ix + INST_W / 2} y={iy + 29} font-size="10" text-anchor="middle" fill="#667">{inst.nics.map((n) => n.ipv4).filter(Boolean).join(' ') || inst.state}</text>
              </g>
            </a>
          ))}
        </g>
      ))}
      {lbBoxes.map(({ lb, x: lx, y: ly }) => (
        <g class="topo-lb" data-lb={lb.name} key={`lbb-${lb.name}`}>
          <rect x={lx} y={ly} width={LB_W} height={LB_H} rx={6} fill="#fef3c7" stroke={lb.running ? '#b45309' : '#dc2626'} stroke-width={2} />
          <text x={lx + LB_W / 2} y={ly + 18} font-size="13" font-weight="bold" text-anchor="middle">{lb.name}{lb.waf?.enabled ? ' + WAF' : ''}</text>
          <text x={lx + LB_W / 2} y={ly + 34} font-size="11" text-anchor="middle" fill="#667">{lb.frontend.address}:{lb.frontend.port} on {lb.host}</text>
        </g>
      ))}
    </svg>
  );
}
