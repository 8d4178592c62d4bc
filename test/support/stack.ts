/**
 * A whole faasbox for one test file: a private redis-server, a worker with its own state
 * dir and cgroup root (real containers), and a gateway on a free port. close() proves
 * that nothing the stack made is left: no containers, cgroups or mounts.
 */
import type { NetworkSettings } from '../../worker/engine/network/options.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, type TestRedis } from './redis.js';
import { startWorker, type RunningWorker } from '../../worker/main.js';
import { startGateway, type RunningGateway } from '../../gateway/main.js';
import { mountsUnder } from '../../worker/engine/mounts.js';
import type { SizingConfig } from '../../worker/pool/policy.js';
import type { PullImage } from '../../worker/engine/image/pull-types.js';
import { Registry } from 'prom-client';
import { SecretBox } from '../../common/secrets.js';
import { eventually } from './eventually.js';
import { isFinal } from '../../common/invocations.js';

export const STACK_KEY = 'stack-test-key-0123456789abcdef';

export interface InvokeReply {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface TestStack {
  url: string;
  /** The Redis key prefix the stack's gateway and worker share. */
  prefix: string;
  redis: TestRedis;
  /** The key gateway and worker share (a scheduler started beside them signs callbacks with it). */
  secrets: SecretBox;
  worker: RunningWorker;
  gateway: RunningGateway;
  deploy(name: string, body: Record<string, unknown>): Promise<InvokeReply>;
  invoke(name: string, event?: unknown, opts?: { key?: string | null; query?: string; headers?: Record<string, string> }): Promise<InvokeReply>;
  get(pathname: string): Promise<InvokeReply>;
  /** Polls an invocation record (its Location) until it is final (succeeded, failed or dead-lettered), and returns it. */
  finished(location: string, ms?: number, what?: string): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  del(pathname: string): Promise<InvokeReply>;
  close(): Promise<void>;
}

export interface ApiReply {
  status: number;
  headers: Headers;
  /** The body parsed as JSON, or its text when it is not JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** When the answer came (epoch ms), and how long it took. */
  at: number;
  ms: number;
}

/** One gateway call with the stack's key, for tests that run their own gateways (drain, crash, worker exit). */
export async function callApi(base: string, method: string, p: string, body?: unknown, opts: { timeoutMs?: number } = {}): Promise<ApiReply> {
  const started = Date.now();
  const r = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' },
    ...(opts.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(opts.timeoutMs) }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, headers: r.headers, json, at: Date.now(), ms: Date.now() - started };
}

async function reply(r: Response): Promise<InvokeReply> {
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

export async function startStack(
  name: string,
  opts: { pools?: boolean; budgetMb?: number; sizing?: Partial<SizingConfig>; freezeGraceMs?: number; userns?: boolean; network?: NetworkSettings; callbackAllow?: string[]; puller?: () => Promise<PullImage> } = {},
): Promise<TestStack> {
  const work = mkdtempSync(path.join(tmpdir(), `faasbox-stack-${name}-`));
  const redis = await startRedis();
  const prefix = `t${process.pid}`;
  // One registry, as `faasbox up` has it: the gateway's /metrics shows the worker's too.
  const metrics = new Registry();
  // One key for both, as `faasbox up` gives them.
  const secrets = new SecretBox(SecretBox.generateKey());
  const worker = await startWorker({
    metrics,
    secrets,
    redisUrl: redis.url,
    prefix,
    stateDir: path.join(work, 'state'),
    budgetMb: opts.budgetMb ?? 2048,
    pools: opts.pools ?? true,
    cgroupRoot: `/faasbox-test-${name}-${process.pid}`,
    ...(opts.sizing ? { sizing: opts.sizing } : {}),
    ...(opts.freezeGraceMs !== undefined ? { freezeGraceMs: opts.freezeGraceMs } : {}),
    ...(opts.userns !== undefined ? { userns: opts.userns } : {}),
    ...(opts.network ? { network: opts.network } : {}),
    ...(opts.puller ? { puller: opts.puller } : {}),
  });
  const gateway = await startGateway({ apiKey: STACK_KEY, redisUrl: redis.url, prefix, port: 0, ...(opts.callbackAllow ? { callbackAllow: opts.callbackAllow } : {}) }, { metrics, secrets });
  const auth = { authorization: `Bearer ${STACK_KEY}` };
  const get = async (p: string) => reply(await fetch(`${gateway.url}${p}`, { headers: auth }));
  return {
    url: gateway.url,
    prefix,
    redis,
    secrets,
    worker,
    gateway,
    async deploy(fn, body) {
      return reply(await fetch(`${gateway.url}/v1/functions/${fn}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) }));
    },
    async invoke(fn, event = {}, o = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...(o.headers ?? {}) };
      if (o.key !== null) headers.authorization = `Bearer ${o.key ?? STACK_KEY}`;
      return reply(await fetch(`${gateway.url}/v1/functions/${fn}/invoke${o.query ?? ''}`, { method: 'POST', headers, body: JSON.stringify(event) }));
    },
    get,
    async finished(location, ms = 15_000, what = `invocation ${location} to finish`) {
      let rec: { status?: string } | undefined;
      await eventually(async () => {
        rec = (await get(location)).json as { status?: string } | undefined;
        return isFinal(rec?.status);
      }, ms, what);
      return rec;
    },
    async del(p) {
      return reply(await fetch(`${gateway.url}${p}`, { method: 'DELETE', headers: auth }));
    },
    async close() {
      await gateway.close();
      await worker.close();
      const report = await worker.engine.gc({ all: true });
      worker.engine.cgroups.removeRoot();
      const left = mountsUnder(work);
      await redis.stop();
      rmSync(work, { recursive: true, force: true });
      if (report.containers.length) throw new Error(`the worker left containers behind: ${report.containers.join(', ')}`);
      if (left.length) throw new Error(`mounts left behind: ${left.join(', ')}`);
    },
  };
}

