import type { Readable } from 'node:stream';

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into '\n'-terminated lines, however the bytes are chunked. Both of
 * the worker's line protocols (faasbox-init's sync socket, the runtime's replies) are
 * framed this way.
 *
 * Linear in the bytes pushed: each chunk is searched once, from its own start, and the
 * pieces of a line are kept in a list and joined once when its newline arrives. (The
 * splitter this replaced appended every chunk to one string and searched all of it
 * again: a 10 MB reply took 637 ms, 20 MB 2.5 s, and stalled the worker meanwhile.)
 *
 * With maxLineBytes, a line longer than that is never held: the moment it is crossed,
 * onOverflow is told once and every later byte is dropped unread (the peer is broken or
 * hostile, and the caller is expected to kill it); memory stays at most maxLineBytes
 * plus one chunk.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes searched for a newline so far: equal to the bytes pushed (the unit test checks linearity by it). */
  scannedBytes = 0;
  /** Set once a line crossed maxLineBytes: nothing more is delivered. */
  overflowed = false;

  constructor(
    private readonly onLine: (line: string) => void,
    /** Longest line accepted, in bytes, without its '\n'; changeable between lines (a per-invocation limit). */
    public maxLineBytes = Number.POSITIVE_INFINITY,
    private readonly onOverflow?: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.overflowed) return;
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl < 0 ? chunk.length : nl;
      this.scannedBytes += end - start + (nl < 0 ? 0 : 1);
      if (this.partBytes + (end - start) > this.maxLineBytes) {
        const bytes = this.partBytes + (end - start);
        this.overflowed = true;
        this.parts = [];
        this.partBytes = 0;
        this.onOverflow?.(bytes);
        return;
      }
      if (nl < 0) {
        // Kept as a view of the chunk: the chunk is not reused by the stream once emitted.
        this.parts.push(chunk.subarray(start));
        this.partBytes += chunk.length - start;
        return;
      }
      let line: string;
      if (this.parts.length === 0) line = chunk.toString('utf8', start, nl);
      else {
        this.parts.push(chunk.subarray(start, nl));
        // Decoded whole: a character split across chunks is decoded correctly.
        line = Buffer.concat(this.parts, this.partBytes + (nl - start)).toString('utf8');
        this.parts = [];
        this.partBytes = 0;
      }
      start = nl + 1;
      this.onLine(line);
      if (this.overflowed) return;
    }
  }

  /** Bytes of the unfinished line held now. */
  get pendingBytes(): number {
    return this.partBytes;
  }
}

export interface ReadLinesOptions {
  /** Longest line accepted (bytes); see LineSplitter. */
  maxLineBytes?: number;
  /** A line crossed maxLineBytes: the stream has been destroyed (nothing more is read). */
  onOverflow?: (bytes: number) => void;
}

/**
 * Calls onLine for every '\n'-terminated line the stream delivers. Returns the splitter,
 * whose maxLineBytes the caller may change between lines. A line past maxLineBytes stops
 * the reading: the stream is destroyed, so a peer that keeps writing blocks or gets EPIPE
 * instead of filling the worker's memory.
 */
export function readLines(stream: Readable, onLine: (line: string) => void, opts: ReadLinesOptions = {}): LineSplitter {
  const splitter = new LineSplitter(onLine, opts.maxLineBytes, (bytes) => {
    stream.destroy();
    opts.onOverflow?.(bytes);
  });
  stream.on('data', (chunk: Buffer | string) => splitter.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk));
  return splitter;
}
