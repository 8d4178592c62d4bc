/**
 * What a trigger may hand to a function: an event the gateway would have accepted as an
 * invoke body (JSON, at most maxEventBytes, nesting at most maxJsonDepth). A source job
 * that is not is refused with its reason instead of blocking its queue.
 */
export class EventRejectedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'EventRejectedError';
  }
}

export interface EventBounds {
  maxEventBytes: number;
  maxJsonDepth: number;
}

function depthOver(value: unknown, max: number, depth = 0): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth + 1 > max) return true;
  for (const v of Array.isArray(value) ? value : Object.values(value)) if (depthOver(v, max, depth + 1)) return true;
  return false;
}

/** The event's JSON size in bytes; throws EventRejectedError with the reason. */
export function checkEvent(event: unknown, bounds: EventBounds): number {
  let text: string | undefined;
  try {
    text = JSON.stringify(event);
  } catch (err) {
    throw new EventRejectedError(`the event is not JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw new EventRejectedError('the event is not JSON (undefined, a function or a symbol)');
  const bytes = Buffer.byteLength(text);
  if (bytes > bounds.maxEventBytes) throw new EventRejectedError(`the event is ${bytes} bytes of JSON, more than the ${bounds.maxEventBytes} an invocation accepts`);
  if (depthOver(event, bounds.maxJsonDepth)) throw new EventRejectedError(`the event nests arrays and objects more than ${bounds.maxJsonDepth} levels deep, the limit`);
  return bytes;
}
