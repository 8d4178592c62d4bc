// k6 load test of warm synchronous invocations against a running faasbox.
//   FAASBOX_URL=http://127.0.0.1:8080 FAASBOX_API_KEY=... k6 run bench/k6/invoke.js
// Deploys a trivial function once (setup), then drives it at the configured rate and
// reports latency by start kind (X-Cold-Start) as custom trends.
import http from 'k6/http';
import { check } from 'k6';
import { Trend, Counter } from 'k6/metrics';

const URL = __ENV.FAASBOX_URL || 'http://127.0.0.1:8080';
const KEY = __ENV.FAASBOX_API_KEY;
const NAME = __ENV.FUNCTION || 'k6-noop';
const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };

const byKind = { warm: new Trend('invoke_warm_ms', true), specialized: new Trend('invoke_specialized_ms', true), cold: new Trend('invoke_cold_ms', true) };
const failures = new Counter('invoke_failures');

export const options = {
  scenarios: {
    steady: { executor: 'constant-vus', vus: Number(__ENV.VUS || 16), duration: __ENV.DURATION || '30s' },
  },
  thresholds: { http_req_failed: ['rate<0.01'] },
};

export function setup() {
  const body = JSON.stringify({ runtime: 'nodejs20', code: 'export default async (e) => ({ ok: true, n: e.n })', memoryMb: 128 });
  const r = http.put(`${URL}/v1/functions/${NAME}`, body, { headers });
  check(r, { deployed: (res) => res.status === 200 || res.status === 201 });
}

export default function () {
  const r = http.post(`${URL}/v1/functions/${NAME}/invoke`, JSON.stringify({ n: __ITER }), { headers });
  if (!check(r, { 'status 200': (res) => res.status === 200 })) failures.add(1);
  const kind = r.headers['X-Cold-Start'];
  if (byKind[kind]) byKind[kind].add(r.timings.duration);
}
