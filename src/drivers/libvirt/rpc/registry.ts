import { LibvirtConnection, type ConnectionOptions } from './connection.js';

/**
 * One protocol connection per host URI, opened by its first call, all closed together. What a
 * Context owns for its lifetime (the CLI's one command, the API server's life); the URI was
 * checked for the caller's reach where it was registered (model/libvirt-uri.ts), and endpointOf
 * checks the allow-list again.
 */
export class LibvirtConnections {
  private readonly byUri = new Map<string, LibvirtConnection>();
  private closed = false;

  constructor(private readonly options: ConnectionOptions = {}) {}

  /** The connection to URI (made on first use; nothing is opened until a call). */
  get(uri: string): LibvirtConnection {
    let c = this.byUri.get(uri);
    if (!c) {
      c = new LibvirtConnection(uri, this.options);
      if (this.closed) void c.close(); // a late get after close fails its calls with a clear error
      this.byUri.set(uri, c);
    }
    return c;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.byUri.values()].map((c) => c.close()));
  }
}
