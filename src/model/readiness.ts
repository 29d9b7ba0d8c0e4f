import { invalid } from './errors.js';
import type { Image } from './types.js';

/**
 * How kumo knows a guest is ready, per image (like a health check, but for the first boot):
 * - `http:PORT`  the guest answers HTTP on PORT (any status) — the tiny image serves 8080;
 * - `ssh`        the guest's SSH server sends its banner on 22;
 * - `cloud-init` cloud-init's final stage has run in this boot, seen in the serial console log
 *                kumo keeps (no route from the guest to kumo is needed: see docs/decisions.md);
 * - `agent`      the QEMU guest agent answers a ping (images that have qemu-guest-agent).
 */
export type ReadyCheck =
  | { kind: 'http'; port: number }
  | { kind: 'ssh' }
  | { kind: 'cloud-init' }
  | { kind: 'agent' };

export const READY_CHECK_FORMS = ['http:PORT', 'ssh', 'cloud-init', 'agent'] as const;

/** The same check written back as its user form, e.g. "http:8080". */
export function formatReadyCheck(c: ReadyCheck): string {
  return c.kind === 'http' ? `http:${c.port}` : c.kind;
}

/** Parses `http:PORT|ssh|cloud-init|agent`; `what` names the option or key in the error. */
export function parseReadyCheck(text: string, what = '--wait-for'): ReadyCheck {
  const t = text.trim();
  if (t === 'ssh' || t === 'cloud-init' || t === 'agent') return { kind: t };
  const http = /^http:(\d{1,5})$/.exec(t);
  if (http) {
    const port = Number(http[1]);
    if (port >= 1 && port <= 65535) return { kind: 'http', port };
    throw invalid(`${what}: port ${port} is out of range`, 'give a TCP port from 1 to 65535, e.g. http:8080');
  }
  throw invalid(`${what}: "${text}" is not a readiness check`,
    `use one of ${READY_CHECK_FORMS.join(', ')} (e.g. http:8080 for a web server, cloud-init for a cloud image)`);
}

/**
 * The image's own check, or its default: kumo's tiny image (recipe "tiny") serves HTTP on 8080
 * and has no cloud-init; every other image is taken for a cloud image, whose cloud-init reports.
 */
export function readyCheckOf(image: Pick<Image, 'ready' | 'source'>): ReadyCheck {
  if (image.ready) return parseReadyCheck(image.ready, 'the image\'s readiness');
  return image.source.startsWith('tiny:') ? { kind: 'http', port: 8080 } : { kind: 'cloud-init' };
}
