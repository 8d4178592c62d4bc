/**
 * Servers the network tests run in their outside namespace (node code for Outside.serve):
 * HTTP on 8080 (GET / answers "outside-ok"; GET /bulk?n=BYTES streams that many bytes),
 * and a UDP DNS responder on 53 answering A queries for names under .test.
 */
export const HTTP_PORT = 8080;

export function outsideServersCode(answer: string): string {
  return `
import http from 'node:http';
import dgram from 'node:dgram';
const chunk = Buffer.alloc(64 * 1024, 120);
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/bulk') {
    let left = Number(u.searchParams.get('n') ?? 0);
    res.writeHead(200, { 'content-length': String(left) });
    const more = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return res.once('drain', more);
      }
      res.end();
    };
    return more();
  }
  res.end('outside-ok ' + req.socket.localAddress + '\\n');
}).listen(${HTTP_PORT}, '0.0.0.0', () => {
  const dns = dgram.createSocket('udp4');
  dns.on('message', (q, from) => {
    // Header, then the question as asked; one A answer pointing back at the question's name.
    let off = 12;
    const labels = [];
    while (q[off] !== 0) { labels.push(q.subarray(off + 1, off + 1 + q[off]).toString()); off += q[off] + 1; }
    const qEnd = off + 5;
    const name = labels.join('.');
    const type = q.readUInt16BE(off + 1);
    const ok = name.endsWith('.test') && type === 1;
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(0x8180 | (ok ? 0 : 3), 2);
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(ok ? 1 : 0, 6);
    head.writeUInt32BE(0, 8);
    const ans = ok ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...'${answer}'.split('.').map(Number)]) : Buffer.alloc(0);
    dns.send(Buffer.concat([head, q.subarray(12, qEnd), ans]), from.port, from.address);
  });
  dns.bind(53, '0.0.0.0', () => console.log('ready'));
});
`;
}
