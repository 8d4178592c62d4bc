/**
 * The benchmarks' HTTP client: node:http over keep-alive sockets. The load generator runs
 * in the same process as what it measures, so its own cost counts against faasbox; fetch
 * (undici) costs several times more per request than this.
 */
import { Agent, request, type OutgoingHttpHeaders } from 'node:http';

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function post(url: string, headers: OutgoingHttpHeaders, body: string): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Closes the idle keep-alive sockets, so servers under test can stop at once. */
export function closeIdle(): void {
  agent.destroy();
}
