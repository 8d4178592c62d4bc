/**
 * How deep a JSON text nests, found before JSON.parse sees it. JSON.parse itself copes
 * with deep nesting, but what handles the value after it recurses: an invoke body nested
 * 5,000 levels deep answered 500 (a RangeError in serialisation) and, async, left its
 * record `queued`. So the edge refuses what nests deeper than a limit.
 *
 * One pass over the bytes, no recursion: brackets are counted outside strings. A UTF-8
 * multi-byte sequence never contains an ASCII byte, so scanning bytes is exact.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** True when some value in raw nests more than limit arrays/objects deep. */
export function nestsDeeperThan(raw: Buffer, limit: number): boolean {
  // It takes limit + 1 opening brackets to exceed the limit.
  if (raw.length <= limit) return false;
  let depth = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === QUOTE) {
      // Skip the string with indexOf (native): a 6 MiB string-valued event took 56 ms
      // byte by byte, 3 ms this way. A quote ends the string unless an odd run of
      // backslashes precedes it.
      for (;;) {
        const q = raw.indexOf(QUOTE, i + 1);
        if (q === -1) return false; // unterminated: JSON.parse will say so
        let k = q - 1;
        while (raw[k] === BACKSLASH) k--;
        i = q;
        if ((q - 1 - k) % 2 === 0) break;
      }
    } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) depth--;
  }
  return false;
}
