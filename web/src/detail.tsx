import { useEffect, useRef, useState } from 'preact/hooks';
import RFB from '@novnc/novnc';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { call, fmtBytes, type Instance, type Reading } from './api';
import { SerialConsole } from './serial';
import { Snapshots } from './snapshots';

/** An instance: facts, the VNC and serial consoles, live charts and its snapshots. */
export function InstanceDetail({ name }: { name: string }) {
  const [inst, setInst] = useState<Instance | undefined>();
  const [error, setError] = useState('');
  const [tab, setTab] = useState<'console' | 'serial' | 'charts' | 'snapshots'>('console');
  useEffect(() => {
    const load = () => call<Instance>('GET', `/instances/${encodeURIComponent(name)}`).then(setInst, (e: Error) => setError(e.message));
    void load();
    const t = setInterval(() => void load(), 5000);
    return () => clearInterval(t);
  }, [name]);
  return (
    <section class="detail">
      <h2><a href="#/instances">Instances</a> / {name} {inst && <span class={`state s-${inst.state.replace(' ', '-')}`} data-state={inst.state}>{inst.state}</span>}</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {inst && (
        <dl class="facts">
          <dt>Host</dt><dd>{inst.host}</dd>
          <dt>Image</dt><dd>{inst.image}</dd>
          <dt>Size</dt><dd>{inst.vcpus} vCPU · {inst.ramMiB} MiB · {inst.diskGiB} GiB{inst.dataDisks.length ? ` + ${inst.dataDisks.map((g) => `${g} GiB`).join(', ')}` : ''}</dd>
          <dt>NICs</dt><dd>{inst.nics.map((n) => `${n.network} ${n.mac} ${n.ipv4 ?? ''}`).join(' · ')}</dd>
          {inst.readiness && <><dt>Ready</dt><dd class={`ready r-${inst.readiness.status}`} data-readiness={inst.readiness.status}>
            {inst.readiness.status} ({inst.readiness.check}): {inst.readiness.detail}
            {inst.readiness.cloudInit?.errors.map((e) => <div class="guest-error">{e}</div>)}
          </dd></>}
          {inst.drift.length > 0 && <><dt>Drift</dt><dd>{inst.drift.join('; ')}</dd></>}
        </dl>
      )}
      <div class="tabs">
        <button class={tab === 'console' ? 'active' : ''} name="tab-console" onClick={() => setTab('console')}>Console</button>
        <button class={tab === 'serial' ? 'active' : ''} name="tab-serial" onClick={() => setTab('serial')}>Serial console</button>
        <button class={tab === 'charts' ? 'active' : ''} name="tab-charts" onClick={() => setTab('charts')}>Charts</button>
        <button class={tab === 'snapshots' ? 'active' : ''} name="tab-snapshots" onClick={() => setTab('snapshots')}>Snapshots</button>
      </div>
      {tab === 'console' ? <Console name={name} running={inst?.state === 'running'} />
        : tab === 'serial' ? <SerialConsole name={name} running={inst?.state === 'running'} />
        : tab === 'snapshots' ? <Snapshots instance={name} /> : <Charts name={name} />}
    </section>
  );
}

function Console({ name, running }: { name: string; running: boolean }) {
  const screen = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  const [attempt, setAttempt] = useState(0);
  const rfbRef = useRef<RFB | undefined>();
  useEffect(() => {
    if (!running || !screen.current) {
      setStatus(running ? 'connecting' : 'not running');
      return;
    }
    let cancelled = false;
    let rfb: RFB | undefined;
    void (async () => {
      try {
        const t = await call<{ path: string }>('POST', `/instances/${encodeURIComponent(name)}/console-ticket`);
        if (cancelled || !screen.current) return;
        const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${t.path}`;
        rfb = new RFB(screen.current, url, { wsProtocols: ['binary'], shared: true });
        rfb.scaleViewport = true;
        rfb.background = '#111';
        rfbRef.current = rfb;
        rfb.addEventListener('connect', () => setStatus('connected'));
        rfb.addEventListener('disconnect', () => setStatus('disconnected'));
      } catch (e) {
        setStatus(`failed: ${(e as Error).message}`);
      }
    })();
    return () => { cancelled = true; rfb?.disconnect(); rfbRef.current = undefined; };
  }, [name, running, attempt]);
  return (
    <div class="console">
      <div class="bar">
        <span class="console-status" data-status={status}>VNC: {status}</span>
        <button onClick={() => rfbRef.current?.sendCtrlAltDel()} disabled={status !== 'connected'}>Ctrl+Alt+Del</button>
        <button onClick={() => setAttempt((a) => a + 1)}>Reconnect</button>
      </div>
      <div class="screen" ref={screen} />
    </div>
  );
}

const POLL_MS = 2000;

function Charts({ name }: { name: string }) {
  const netEl = useRef<HTMLDivElement>(null);
  const cpuEl = useRef<HTMLDivElement>(null);
  const [last, setLast] = useState<Reading | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    const width = Math.min(900, (netEl.current?.parentElement?.clientWidth ?? 800) - 20);
    const net = new uPlot({
      title: 'Network (bytes/s)', width, height: 220,
      series: [{}, { label: 'rx', stroke: '#2a7', width: 2, value: (_u, v) => (v == null ? '–' : `${fmtBytes(v)}/s`) },
        { label: 'tx', stroke: '#37c', width: 2, value: (_u, v) => (v == null ? '–' : `${fmtBytes(v)}/s`) }],
      axes: [{}, { values: (_u, ticks) => ticks.map((t) => fmtBytes(t)), size: 70 }],
    }, [[], [], []], netEl.current!);
    const cpu = new uPlot({
      title: 'CPU (%, 100 = one vCPU)', width, height: 220,
      series: [{}, { label: 'cpu', stroke: '#c52', width: 2, fill: 'rgba(204,85,34,0.1)' }],
      scales: { y: { range: (_u, _min, max) => [0, Math.max(100, max)] } },
    }, [[], []], cpuEl.current!);
    let stopped = false;
    const poll = async () => {
      try {
        const r = await call<{ readings: Reading[] }>('GET', `/instances/${encodeURIComponent(name)}/readings`);
        if (stopped) return;
        const rows = r.readings.filter((x) => x.cpuPct !== undefined);
        const xs = rows.map((x) => x.at / 1000);
        net.setData([xs, rows.map((x) => x.rxBps ?? null), rows.map((x) => x.txBps ?? null)]);
        cpu.setData([xs, rows.map((x) => x.cpuPct ?? null)]);
        setLast(rows.at(-1));
        setError('');
      } catch (e) {
        setError((e as Error).message);
      }
    };
    void poll();
    const t = setInterval(() => void poll(), POLL_MS);
    return () => { stopped = true; clearInterval(t); net.destroy(); cpu.destroy(); };
  }, [name]);
  return (
    <div class="charts">
      {error && <p class="error" role="alert">{error}</p>}
      <p class="now" data-points={last ? 'yes' : 'no'}>{last
        ? `now: rx ${fmtBytes(last.rxBps ?? 0)}/s · tx ${fmtBytes(last.txBps ?? 0)}/s · CPU ${(last.cpuPct ?? 0).toFixed(1)} %`
        : 'waiting for the collector\'s first readings…'}</p>
      <div class="chart net" ref={netEl} />
      <div class="chart cpu" ref={cpuEl} />
    </div>
  );
}
