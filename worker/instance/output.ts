/**
 * A function's output on its way into the invocation record while it runs, so that
 * `GET /v1/invocations/:id` (and `faasbox logs`) shows a long invocation's progress.
 * Chunks are batched: the first one starts a timer, and one write per stream goes out
 * when it fires. An invocation that ends before the timer (the usual, short one) costs
 * no write beyond the final flush, as if nothing were streamed.
 *
 * At most limit + 1 characters per stream are kept: the record holds `limit` bytes and
 * flags the rest as truncated, so one more than it can hold is enough for that flag.
 */
import type { OutputStream } from './instance.js';

export type OutputWrite = (stream: OutputStream, chunk: string) => Promise<unknown>;

export class OutputBatcher {
  private readonly pending: Record<OutputStream, string> = { stdout: '', stderr: '' };
  private readonly kept: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly write: OutputWrite,
    private readonly limit: number,
    private readonly delayMs = 100,
  ) {}

  push(stream: OutputStream, chunk: string): void {
    const room = this.limit + 1 - this.kept[stream];
    if (room <= 0 || chunk.length === 0) return;
    const part = chunk.length > room ? chunk.slice(0, room) : chunk;
    this.kept[stream] += part.length;
    this.pending[stream] += part;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.send();
    }, this.delayMs);
  }

  /** Writes whatever is pending, after any write already under way (order is kept). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.send();
  }

  private send(): Promise<unknown> {
    const batch = (['stdout', 'stderr'] as const).filter((s) => this.pending[s]).map((s) => [s, this.pending[s]] as const);
    // Nothing pending (the usual final flush of a function that printed nothing): only
    // what is already under way is waited for.
    if (batch.length === 0) return this.writing;
    this.pending.stdout = this.pending.stderr = '';
    // Chained: a batch never overtakes the one before it. A failed write loses its own
    // chunk only (the caller's write reports it); later batches still go out.
    this.writing = this.writing.then(() => Promise.all(batch.map(([s, chunk]) => this.write(s, chunk)))).catch(() => {});
    return this.writing;
  }
}
