import { z } from 'zod';
import { isCidr, isIp, SUBNET_PREFIX } from './checks.js';

// Apart from checks.ts so that a command which only checks an address does not load zod.

/** Schema strings that parseIp and parseCidr accept; each file's schema gives its own example. */
export const ipv4String = (example: string) => z.string().refine(isIp, `expected an IPv4 address such as ${example}`);
export const cidrString = (example: string) =>
  z.string().refine(isCidr, `expected a CIDR such as ${example} (prefix /${SUBNET_PREFIX.min} to /${SUBNET_PREFIX.max}, no host bits)`);

/** A TCP/UDP port in a schema (zod schemas are immutable: `.default()` and `.optional()` make new ones). */
export const portSchema = z.number().int().min(1).max(65535);
