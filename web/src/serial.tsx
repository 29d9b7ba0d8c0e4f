import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { call } from './api';

/**
 * The serial console: xterm.js over the ticketed WebSocket at /instances/NAME/serial (virsh
 * console on the server). Keys go out as binary messages, the terminal size as a JSON text
 * message; what the guest prints comes back as binary UTF-8.
 */
export function SerialConsole({ name, running }: { name: string; running: boolean }) {
  const el = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!running || !el.current) {
      setStatus(running ? 'connecting' : 'not running');
      return;
    }
    let cancelled = false;
    let ws: WebSocket | undefined;
    const term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false, scrollback: 2000, theme: { background: '#111' } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el.current);
    fit.fit();
    const enc = new TextEncoder();
    const sendSize = () => { if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ cols: term.cols, rows: term.rows })); };
    const onResize = () => { fit.fit(); sendSize(); };
    addEventListener('resize', onResize);
    const input = term.onData((d) => { if (ws?.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
    void (async () => {
      try {
        const t = await call<{ path: string }>('POST', `/instances/${encodeURIComponent(name)}/console-ticket`, { console: 'serial' });
        if (cancelled) return;
        ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${t.path}`);
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => {
          setStatus('connected');
          sendSize();
          ws?.send(enc.encode('\r')); // wake the guest's prompt
          term.focus();
        };
        ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => term.write(typeof m.data === 'string' ? m.data : new Uint8Array(m.data));
        ws.onclose = () => { if (!cancelled) setStatus('disconnected'); };
      } catch (e) {
        setStatus(`failed: ${(e as Error).message}`);
      }
    })();
    return () => {
      cancelled = true;
      removeEventListener('resize', onResize);
      input.dispose();
      ws?.close();
      term.dispose();
    };
  }, [name, running, attempt]);
  return (
    <div class="console serial">
      <div class="bar">
        <span class="serial-status" data-status={status}>Serial: {status}</span>
        <button onClick={() => setAttempt((a) => a + 1)}>Reconnect</button>
        <span class="hint">Ctrl+] ends the session</span>
      </div>
      <div class="serial-screen" ref={el} />
    </div>
  );
}
