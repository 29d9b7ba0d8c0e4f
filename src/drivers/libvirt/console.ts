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

/** Opens a VNC viewer window when there is a display and a viewer; returns its name, or undefined. */
export function openVncViewer(address: string): string | undefined {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return undefined;
  const viewer = VIEWERS.find((v) => which(v));
  if (!viewer) return undefined;
  const target = viewer === 'remote-viewer' ? `vnc://${address}` : address;
  spawn(viewer, [target], { stdio: 'ignore', detached: true }).unref();
  return viewer;
}
