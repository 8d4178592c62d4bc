/**
 * A service's own Redis connections report an outage once, not once per reconnect try:
 * ioredis emits 'error' for every failed reconnect, and prints "[ioredis] Unhandled error
 * event" with a stack for a connection that has no listener (measured in
 * e2e/crash-delivery: a dozen such stacks per service for a one-second Redis restart).
 * Commands meanwhile wait for the reconnect (maxRetriesPerRequest) as before.
 */
import type { Redis } from 'ioredis';

export function reportRedisErrors(conn: Redis, label: string, log: (line: string) => void): void {
  let down = false;
  conn.on('error', (err: Error) => {
    if (!down) log(`${label}: ${err.message}; reconnecting`);
    down = true;
  });
  conn.on('ready', () => {
    if (down) log(`${label}: connected again`);
    down = false;
  });
}
