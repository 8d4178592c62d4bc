/**
 * The trigger body (PUT /v1/triggers/:name), validated once at the edge; the store and the
 * scheduler's runner trust the TriggerSpec it becomes. Retry and destinations are the
 * shapes of common/delivery-spec.ts, so a trigger overrides its function's `async`
 * settings field by field.
 *
 * Defaults: concurrency 10 (invocations in flight for this trigger); no batching (the
 * event is the job's data, the stream entry); with batchSize or batchWindowMs the event
 * is an array of items, batchSize defaulting to 10 and batchWindowMs to 0 (a batch goes
 * as soon as the source has nothing more waiting); a stream's entries of a dead consumer
 * are reclaimed after 60 s idle; a cron trigger skips a tick while its last run is in
 * flight and makes no catch-up run after downtime.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import { destinationSchema, redisUrlSchema, retrySchema } from './delivery-spec.js';
import { functionNameSchema } from './function-spec.js';
import { parseSchedule, ScheduleError } from './cron.js';
import { parseWith } from './validation.js';

export const TRIGGER_LIMITS = {
  concurrency: { min: 1, max: 1000, default: 10 },
  batchSize: { min: 1, max: 1000, default: 10 },
  batchWindowMs: { min: 0, max: 300_000, default: 0 },
  reclaimIdleMs: { min: 1000, max: 24 * 3600_000, default: 60_000 },
} as const;

export const triggerNameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a trigger name is 1-63 lowercase letters, digits or "-", starting with a letter');

const keyName = (what: string) => z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:{}-]{0,127}$/, `${what} is 1-128 letters, digits, ".", "_", ":", "{", "}" or "-"`);
const int = (b: { min: number; max: number }) => z.number().int().min(b.min).max(b.max);

export const queueSourceSchema = z.strictObject({
  kind: z.literal('queue'),
  queue: keyName('a queue name'),
  prefix: z.string().regex(/^[A-Za-z0-9._:{}-]{1,64}$/, 'a BullMQ prefix').default('bull'),
  redisUrl: redisUrlSchema.optional(),
});

export const streamSourceSchema = z.strictObject({
  kind: z.literal('stream'),
  stream: keyName('a stream key'),
  group: keyName('a consumer group'),
  redisUrl: redisUrlSchema.optional(),
  reclaimIdleMs: int(TRIGGER_LIMITS.reclaimIdleMs).default(TRIGGER_LIMITS.reclaimIdleMs.default),
});

export const cronSourceSchema = z
  .strictObject({
    kind: z.literal('cron'),
    schedule: z.string().min(1).max(256),
    timezone: z.string().min(1).max(64).default('UTC'),
    overlap: z.enum(['skip', 'allow']).default('skip'),
    catchUp: z.boolean().default(false),
  })
  .superRefine((src, ctx) => {
    try {
      parseSchedule(src.schedule, src.timezone);
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      ctx.addIssue({ code: 'custom', path: [err.field], message: err.message });
    }
  });

export const sourceSchema = z.discriminatedUnion('kind', [queueSourceSchema, streamSourceSchema, cronSourceSchema]);

export const triggerSpecSchema = z
  .strictObject({
    function: functionNameSchema,
    version: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a version is "sha256:" and 64 hex digits').optional(),
    source: sourceSchema,
    concurrency: int(TRIGGER_LIMITS.concurrency).default(TRIGGER_LIMITS.concurrency.default),
    batchSize: int(TRIGGER_LIMITS.batchSize).optional(),
    batchWindowMs: int(TRIGGER_LIMITS.batchWindowMs).optional(),
    retry: retrySchema.optional(),
    onSuccess: destinationSchema.optional(),
    onFailure: destinationSchema.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.source.kind === 'cron' && (t.batchSize !== undefined || t.batchWindowMs !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['batchSize'], message: 'a cron trigger fires one event per tick: batchSize and batchWindowMs are for queue and stream sources' });
    }
  });

export type QueueSource = z.output<typeof queueSourceSchema>;
export type StreamSource = z.output<typeof streamSourceSchema>;
export type CronSource = z.output<typeof cronSourceSchema>;
export type TriggerSource = z.output<typeof sourceSchema>;
export type TriggerSpec = z.output<typeof triggerSpecSchema>;

/** How a trigger batches, or undefined when each event is invoked alone. */
export function batchingOf(spec: TriggerSpec): { size: number; windowMs: number } | undefined {
  if (spec.batchSize === undefined && spec.batchWindowMs === undefined) return undefined;
  return { size: spec.batchSize ?? TRIGGER_LIMITS.batchSize.default, windowMs: spec.batchWindowMs ?? TRIGGER_LIMITS.batchWindowMs.default };
}

export function parseTriggerSpec(input: unknown): TriggerSpec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationError('invalid trigger: the body must be a JSON object', [{ path: '(root)', message: 'expected an object' }]);
  }
  return parseWith(triggerSpecSchema, input, 'trigger');
}
