/**
 * XDR (RFC 4506) as libvirt's RPC uses it: big-endian 4-byte units, strings and variable
 * opaques carry a length and are padded to 4 bytes, an optional value ("*" in the .x file) is a
 * boolean followed by the value. Only what kumo's procedures need.
 */

export class XdrWriter {
  private buf = Buffer.alloc(256);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  int(v: number): this {
    this.room(4);
    this.buf.writeInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  uint(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  /** Fixed-length opaque (remote_uuid): no length word, padded. */
  fixedOpaque(b: Buffer): this {
    const padded = (b.length + 3) & ~3;
    this.room(padded);
    b.copy(this.buf, this.len);
    this.buf.fill(0, this.len + b.length, this.len + padded);
    this.len += padded;
    return this;
  }

  string(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.uint(b.length).fixedOpaque(b);
  }

  /** An optional value: `undefined` is "absent" (a NULL pointer on the C side). */
  optional<T>(v: T | undefined, write: (w: this, v: T) => void): this {
    if (v === undefined) return this.uint(0);
    this.uint(1);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], write: (w: this, v: T) => void): this {
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

export class XdrReader {
  constructor(private readonly buf: Buffer, private off = 0) {}

  private need(n: number): void {
    if (this.off + n > this.buf.length) throw new Error(`XDR: message ends at byte ${this.buf.length}, ${n} more wanted at ${this.off}`);
  }

  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.off);
    this.off += 4;
    return v;
  }

  uint(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  hyper(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.off);
    this.off += 8;
    return v;
  }

  uhyper(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.off);
    this.off += 8;
    return v;
  }

  fixedOpaque(n: number): Buffer {
    const padded = (n + 3) & ~3;
    this.need(padded);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += padded;
    return v;
  }

  /** A string, bounded like the .x file's `string<MAX>` so a bad length cannot ask for gigabytes. */
  string(max = 4_194_304): string {
    const n = this.uint();
    if (n > max) throw new Error(`XDR: string of ${n} bytes is over its limit of ${max}`);
    return this.fixedOpaque(n).toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | undefined {
    return this.uint() ? read(this) : undefined;
  }

  array<T>(read: (r: this) => T, max: number): T[] {
    const n = this.uint();
    if (n > max) throw new Error(`XDR: array of ${n} items is over its limit of ${max}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }
}
