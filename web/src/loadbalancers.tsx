import { useEffect, useState } from 'preact/hooks';
import { call, type LoadBalancer, type WafEvent } from './api';
import { useAction, useList } from './hooks';

const WAF_EVENTS = 10;

/** `kumo lb` and `kumo waf log`: each load balancer with its backends' health and the WAF's recent blocks. */
export function LoadBalancers() {
  const { rows, error, reload } = useList<LoadBalancer>('/loadbalancers', 5_000);
  const action = useAction(reload);
  return (
    <section class="loadbalancers">
      <h2>Load balancers</h2>
      {(error || action.error) && <p class="error" role="alert">{action.error || error}</p>}
      {!rows ? <p>Loading…</p> : rows.length === 0
        ? <p>No load balancers. <code>kumo lb create NAME --host LB --frontend ADDR:PORT --network NET --instance …</code> or a datacenter file make one.</p>
        : rows.map((lb) => (
          <article key={lb.name} class="lb" data-lb={lb.name}>
            <h3>{lb.name} <span class={`state ${lb.running ? 's-running' : 's-crashed'}`}>{lb.running ? 'running' : 'STOPPED'}</span></h3>
            <dl>
              <dt>Frontend</dt><dd><code>http://{lb.frontend.address}:{lb.frontend.port}/</code> on {lb.host}</dd>
              <dt>WAF</dt><dd>{lb.waf ? `${lb.waf.enabled ? 'blocking' : 'detection only'}, paranoia ${lb.waf.paranoia}${lb.wafRunning ? '' : ' (STOPPED)'}` : 'off'}</dd>
              <dt>Backends</dt><dd>{lb.backends.filter((b) => b.status === 'UP').length} of {lb.backends.length} up, port {lb.backendPort} on {lb.network}</dd>
            </dl>
            <table class="backends">
              <thead><tr><th>Instance</th><th>Address</th><th>Health</th><th>Last check</th></tr></thead>
              <tbody>{lb.backends.map((b) => (
                <tr key={b.instance} data-backend={b.instance}>
                  <td><a href={`#/instances/${encodeURIComponent(b.instance)}`}>{b.instance}</a></td>
                  <td>{b.address ? `${b.address}:${lb.backendPort}` : '–'}</td>
                  <td><span class={`state ${b.status === 'UP' ? 's-running' : 's-crashed'}`} data-health={b.status}>{b.status}</span></td>
                  <td>{b.check ?? '–'}</td>
                </tr>
              ))}</tbody>
            </table>
            {lb.waf && <WafLog lb={lb.name} />}
            <p class="actions">{action.busy.endsWith(` ${lb.name}`) ? <em>{action.busy}…</em> : <>
              <button name="sync" onClick={() => void action.run(`sync ${lb.name}`, () => call('POST', `/loadbalancers/${encodeURIComponent(lb.name)}/sync`))}>sync</button>
              <button class="danger" name="delete" onClick={() => {
                if (confirm(`Delete load balancer ${lb.name}?`)) void action.run(`delete ${lb.name}`, () => call('DELETE', `/loadbalancers/${encodeURIComponent(lb.name)}`));
              }}>delete</button>
            </>}</p>
          </article>
        ))}
    </section>
  );
}

function WafLog({ lb }: { lb: string }) {
  const [events, setEvents] = useState<WafEvent[] | undefined>();
  const [error, setError] = useState('');
  useEffect(() => {
    const load = () => call<WafEvent[]>('GET', `/loadbalancers/${encodeURIComponent(lb)}/waf-log?limit=${WAF_EVENTS}`)
      .then((e) => { setEvents(e); setError(''); }, (e: Error) => setError(e.message));
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, [lb]);
  return (
    <div class="waf-log">
      <h4>Recent WAF blocks</h4>
      {error && <p class="error" role="alert">{error}</p>}
      {!events ? <p>Loading…</p> : events.length === 0 ? <p class="hint">Nothing blocked yet.</p> : (
        <table class="waf">
          <thead><tr><th>Time</th><th>Client</th><th>Request</th><th>Status</th><th>Rules</th></tr></thead>
          <tbody>{[...events].reverse().map((e, i) => (
            <tr key={i} title={e.messages.join('\n')}>
              <td>{new Date(e.time).toLocaleString()}</td><td>{e.client}</td><td><code>{`${e.method} ${e.uri}`.slice(0, 80)}</code></td>
              <td>{e.status}{e.blocked ? ' blocked' : ' flagged'}</td><td>{e.ruleIds.join(', ')}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </div>
  );
}
