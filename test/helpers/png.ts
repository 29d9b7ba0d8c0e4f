import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

/** A PNG's size and share of lit bytes in its pixel data (0 = all black): enough to tell a blank screen. */
export function screenFacts(file: string): { width: number; height: number; lit: number } {
  const png = readFileSync(file);
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const pixels = inflateSync(Buffer.concat(idat));
  let lit = 0;
  for (const b of pixels) if (b > 64) lit++;
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20), lit: lit / pixels.length };
}
