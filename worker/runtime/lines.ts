import type { Readable } from 'node:stream';

/**
 * Calls onLine for every '\n'-terminated line the stream delivers, however the bytes are
 * chunked. Both of the worker's line protocols (faasbox-init's sync socket, the runtime's
 * replies) are framed this way.
 */
export function readLines(stream: Readable, onLine: (line: string) => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
  });
}
