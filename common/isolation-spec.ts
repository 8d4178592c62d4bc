/**
 * The deploy fields of issue 15's isolation options that are not networking: block I/O
 * limits (`io`) and the user-namespace mode (`userns`). Shapes and bounds live here;
 * common/function-spec.ts adds them to the deploy body and, only when given, to the
 * FunctionSpec (so that specs deployed before them hash as they did).
 */
import { z } from 'zod';

export const IO_LIMITS = {
  /**
   * Bytes per second, read or write. The floor: 64 KiB/s; below it a single 4 KiB page
   * fault waits a noticeable fraction of a second and a runtime's start stalls.
   */
  bps: { min: 64 * 1024, max: 100 * 1024 ** 3 },
  /** Operations per second; below 10 a runtime's start (a few hundred reads) takes tens of seconds. */
  iops: { min: 10, max: 10_000_000 },
} as const;

const bps = z.number().int().min(IO_LIMITS.bps.min).max(IO_LIMITS.bps.max);
const iops = z.number().int().min(IO_LIMITS.iops.min).max(IO_LIMITS.iops.max);

export const ioSchema = z
  .strictObject({ readBps: bps.optional(), writeBps: bps.optional(), readIops: iops.optional(), writeIops: iops.optional() })
  .refine((io) => Object.keys(io).length > 0, { message: 'give at least one of readBps, writeBps, readIops, writeIops' });

export type IoSpec = z.infer<typeof ioSchema>;

/** The deploy body's isolation fields, as common/function-spec.ts's deploy schema spreads them. */
export const isolationFields = {
  io: ioSchema.optional(),
  userns: z.boolean().optional(),
};

/** The FunctionSpec part: only what the deploy gave. */
export function isolationOf(req: { io?: IoSpec | undefined; userns?: boolean | undefined }): { io?: IoSpec; userns?: boolean } {
  return { ...(req.io ? { io: req.io } : {}), ...(req.userns !== undefined ? { userns: req.userns } : {}) };
}
