import { join } from 'node:path';

/**
 * Where kumo keeps its state. KUMO_HOME defaults to /var/lib/kumo; tests point it at a
 * per-run folder. Disks live under it because libvirt chowns what it is given, and
 * must be able to reach it (HOST-NOTES: keep them in the product's own directories).
 */
export interface Paths {
  home: string;
  db: string;
  images: string;
  instances: string;
  /** Data volumes (kumo volume): NAME.qcow2 each. */
  volumes: string;
  cache: string;
}

export function paths(home = process.env.KUMO_HOME ?? '/var/lib/kumo'): Paths {
  return {
    home,
    db: join(home, 'kumo.db'),
    images: join(home, 'images'),
    instances: join(home, 'instances'),
    volumes: join(home, 'volumes'),
    // The image build cache can be shared between homes (tests reuse one across runs).
    cache: process.env.KUMO_CACHE ?? join(home, 'cache'),
  };
}

/** The libvirt connection kumo manages by default. */
export const defaultLibvirtUri = process.env.KUMO_LIBVIRT_URI ?? 'qemu:///system';
