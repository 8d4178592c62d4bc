/**
 * A proxy on 127.0.0.1 in front of a test registry, to see and to spoil what the puller
 * gets: it records every request (path, Range, whether it carried Authorization), and on
 * demand cuts a blob's body halfway (the socket destroyed), answers 503 a few times,
 * delays blob answers, or redirects blob requests (307) to a "storage" server on another
 * origin (localhost instead of 127.0.0.1) that records the headers it got.
 */
import http from 'node:http';

export interface SeenRequest {
  method: string;
  path: string;
  range?: string;
  authorization: boolean;
}

export interface ProxyFaults {
  /** Cut the body of this blob after `afterBytes`, `times` times. */
  cut?: { digest: string; afterBytes: number; times: number };
  /** Send this blob's first `afterBytes`, then nothing more (the connection kept open). */
  stall?: { digest: string; afterBytes: number; times?: number };
  /** Flip a byte in the middle of this blob's body (its length kept). */
  corrupt?: { digest: string; size: number };
  /** Forward blob requests without their Range header (a server that answers 200 to Range). */
  ignoreRange?: boolean;
  /** Answer 503 to the next `count` blob requests. */
  unavailable?: { count: number };
  /** Wait this long before answering a blob request. */
  blobDelayMs?: number;
  /** Answer blob requests with 307 to the storage server. */
  redirectBlobs?: boolean;
  /** Demand Basic credentials itself (then forward without them). */
  basic?: { user: string; password: string };
}

export interface RegistryProxy {
  host: string;
  seen: SeenRequest[];
  /** What the storage server (the redirect's target) was sent. */
  storageSeen: SeenRequest[];
  faults: ProxyFaults;
  /** The blob GETs seen for digest. */
  blobGets(digest: string): SeenRequest[];
  stop(): Promise<void>;
}

function forward(upstreamPort: number, req: http.IncomingMessage, res: http.ServerResponse, keepAuth: boolean, onBody?: (res: http.ServerResponse, chunk: Buffer, sent: number) => boolean | 'hold'): void {
  const headers = { ...req.headers };
  // The proxy's own Basic check (faults.basic) is not the registry's business.
  if (!keepAuth) delete headers.authorization;
  const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }, (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    let sent = 0;
    let held = false;
    ur.on('data', (c: Buffer) => {
      if (held) return;
      const go = onBody ? onBody(res, c, sent) : true;
      if (go === 'hold') {
        // Nothing more is sent, and the connection stays open: a stalled transfer.
        held = true;
        ur.pause();
        return;
      }
      if (!go) {
        ur.destroy();
        return;
      }
      sent += c.length;
      res.write(c);
    });
    ur.on('end', () => res.end());
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

async function listen(server: http.Server, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as { port: number }).port;
}

/** passAuthorization: forward the client's Authorization (when the registry behind checks it). */
export async function startRegistryProxy(upstreamPort: number, opts: { passAuthorization?: boolean } = {}): Promise<RegistryProxy> {
  const seen: SeenRequest[] = [];
  const storageSeen: SeenRequest[] = [];
  const faults: ProxyFaults = {};
  const record = (list: SeenRequest[], req: http.IncomingMessage) => {
    const s: SeenRequest = { method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization !== undefined };
    if (req.headers.range) s.range = String(req.headers.range);
    list.push(s);
  };
  const storage = http.createServer((req, res) => {
    record(storageSeen, req);
    const digest = /\/blob\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '')?.[1];
    const path = new URL(req.url ?? '/', 'http://x').searchParams.get('path');
    if (!digest || !path) return void res.writeHead(400).end();
    req.url = path;
    forward(upstreamPort, req, res, false);
  });
  const storagePort = await listen(storage, '127.0.0.1');

  const server = http.createServer((req, res) => {
    record(seen, req);
    if (faults.basic) {
      const want = `Basic ${Buffer.from(`${faults.basic.user}:${faults.basic.password}`).toString('base64')}`;
      if (req.headers.authorization !== want) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="faasbox-proxy"', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
    }
    const keepAuth = opts.passAuthorization === true && !faults.basic;
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
    const go = () => {
      if (blob && faults.unavailable && faults.unavailable.count > 0) {
        faults.unavailable.count--;
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"test proxy"}]}');
        return;
      }
      if (blob && faults.redirectBlobs) {
        res.writeHead(307, { location: `http://localhost:${storagePort}/blob/${blob}?path=${encodeURIComponent(req.url ?? '')}` }).end();
        return;
      }
      if (blob && faults.ignoreRange) delete req.headers.range;
      const corrupt = faults.corrupt;
      if (blob && corrupt && corrupt.digest === blob) {
        const at = Math.floor(corrupt.size / 2);
        forward(upstreamPort, req, res, keepAuth, (_r, chunk, sent) => {
          if (sent <= at && at < sent + chunk.length) chunk[at - sent] ^= 0xff;
          return true;
        });
        return;
      }
      const stall = faults.stall;
      if (blob && stall && stall.digest === blob && (stall.times === undefined || stall.times > 0)) {
        if (stall.times !== undefined) stall.times--;
        forward(upstreamPort, req, res, keepAuth, (r, chunk, sent) => {
          if (sent + chunk.length < stall.afterBytes) return true;
          r.write(chunk.subarray(0, Math.max(0, stall.afterBytes - sent)));
          return 'hold';
        });
        return;
      }
      const cut = faults.cut;
      if (blob && cut && cut.digest === blob && cut.times > 0) {
        cut.times--;
        forward(upstreamPort, req, res, keepAuth, (r, chunk, sent) => {
          if (sent + chunk.length < cut.afterBytes) return true;
          r.write(chunk.subarray(0, Math.max(0, cut.afterBytes - sent)));
          // Mid-body: the client sees the connection reset with bytes still owed.
          r.socket?.destroy();
          return false;
        });
        return;
      }
      forward(upstreamPort, req, res, keepAuth);
    };
    if (blob && faults.blobDelayMs) setTimeout(go, faults.blobDelayMs);
    else go();
  });
  const port = await listen(server, '127.0.0.1');
  return {
    host: `127.0.0.1:${port}`,
    seen,
    storageSeen,
    faults,
    blobGets: (digest) => seen.filter((s) => s.method === 'GET' && s.path.endsWith(`/blobs/${digest}`)),
    stop: async () => {
      for (const s of [server, storage]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}
