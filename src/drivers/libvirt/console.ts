import { spawn } from 'node:child_process';
import type { Executor, OpenedProcess } from '../../exec/exec.js';
import { which } from '../host/which.js';

/** `virsh console` of a domain; --force takes the console over from a session left behind. */
function consoleArgs(uri: string, name: string): string[] {
  return ['-c', uri, 'console', name, '--force'];
}

/**
 * Hands the terminal to `virsh console` until the user detaches (Ctrl+]).
 * Resolves with virsh's exit code.
 */
export function attachSerialConsole(uri: string, name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('virsh', consoleArgs(uri, name), { stdio: 'inherit' });
    child.on('error', () => resolve(127));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

/** `virsh console` in a pseudo-terminal of this size (virsh console needs a TTY), for a program to drive. */
export function openSerialConsole(exec: Executor, uri: string, name: string, size: { cols: number; rows: number }): Promise<OpenedProcess> {
  return exec.open('virsh', consoleArgs(uri, name), { pty: { ...size, term: 'xterm-256color' } });
}

const VIEWERS = ['remote-viewer', 'virt-viewer', 'vncviewer', 'xtightvncviewer', 'gvncviewer'];

/** Viewers that open a VNC unix socket (TigerVNC's vncviewer takes its path). */
const SOCKET_VIEWERS = ['remote-viewer', 'vncviewer'];

/**
 * Opens a VNC viewer window when there is a display and a viewer; returns its name, or undefined.
 * `address` is HOST:PORT or the path of a unix socket (only root may open those).
 */
export function openVncViewer(address: string): string | undefined {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return undefined;
  const socket = address.startsWith('/');
  const viewer = (socket ? SOCKET_VIEWERS : VIEWERS).find((v) => which(v));
  if (!viewer) return undefined;
  const target = viewer === 'remote-viewer' ? `${socket ? 'vnc+unix' : 'vnc'}://${address}` : address;
  spawn(viewer, [target], { stdio: 'ignore', detached: true }).unref();
  return viewer;
}
