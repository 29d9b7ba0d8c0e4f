import { spawn } from 'node:child_process';
import { which } from '../host/which.js';

/**
 * Hands the terminal to `virsh console` until the user detaches (Ctrl+]).
 * Resolves with virsh's exit code.
 */
export function attachSerialConsole(uri: string, name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('virsh', ['-c', uri, 'console', '--force', name], { stdio: 'inherit' });
    child.on('error', () => resolve(127));
    child.on('close', (code) => resolve(code ?? 1));
  });
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
