/**
 * Exact-length reads over a stream of chunks (a gunzip stream, say), holding at most one
 * chunk of the source plus what a single read asked for: the tar reader asks for 512-byte
 * headers and walks bodies chunk by chunk, so nothing grows with the archive.
 */

export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Bytes handed out so far (the offset of the next byte). */
  consumed = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the source. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.fill()));
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(out.length);
    this.consumed += out.length;
    return out;
  }

  /** Up to n bytes, as soon as any are there; empty only at the end of the source. */
  async some(n: number): Promise<Buffer> {
    if (this.buf.length === 0) await this.fill();
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.consumed += out.length;
    return out;
  }

  /** Stops the source (a gunzip stream is destroyed) without reading it to its end. */
  async close(): Promise<void> {
    this.done = true;
    this.buf = Buffer.alloc(0);
    await this.it.return?.();
  }
}
