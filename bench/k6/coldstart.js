// k6 cold-start test: every iteration deploys a new version of a function and invokes it
// once, so each call is a first invocation (specialised from a stem cell, or cold when
// the worker runs with FAASBOX_POOLS=0).
//   FAASBOX_URL=http://127.0.0.1:8080 FAASBOX_API_KEY=... k6 run bench/k6/coldstart.js
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

const URL = __ENV.FAASBOX_URL || 'http://127.0.0.1:8080';
const KEY = __ENV.FAASBOX_API_KEY;
const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };
const first = new Trend('first_invocation_ms', true);

export const options = { vus: Number(__ENV.VUS || 2), iterations: Number(__ENV.ITERATIONS || 50) };

export default function () {
  const name = `k6-cold-${__VU}`;
  const code = `export default async () => ({ iteration: ${__ITER} })`;
  const d = http.put(`${URL}/v1/functions/${name}`, JSON.stringify({ runtime: 'nodejs20', code }), { headers });
  check(d, { deployed: (res) => res.status === 200 || res.status === 201 });
  const r = http.post(`${URL}/v1/functions/${name}/invoke`, '{}', { headers });
  check(r, { 'status 200': (res) => res.status === 200, 'not warm': (res) => res.headers['X-Cold-Start'] !== 'warm' });
  first.add(r.timings.duration, { kind: r.headers['X-Cold-Start'] });
}
