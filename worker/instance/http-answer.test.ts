import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHttpAnswer, MalformedHttpAnswer, MAX_HEADER_BYTES } from './http-answer.js';

const ok = (headers: Record<string, unknown>, status = 200) => ({ status, headers, body: '' });
const problem = (http: unknown): string => {
  const r = checkHttpAnswer(http);
  assert.ok(r instanceof MalformedHttpAnswer, `expected a refusal of ${JSON.stringify(http).slice(0, 100)}`);
  return r.message;
};

test('a well-formed answer passes unchanged', () => {
  const http = { status: 201, headers: { 'content-type': 'text/plain', 'x-made-by': 'faasbox', 'set-cookie': 'a=1; Path=/, b=2' }, body: 'aGk=' };
  assert.deepEqual(checkHttpAnswer(http), http);
  assert.deepEqual(checkHttpAnswer(ok({}, 599)), ok({}, 599));
  assert.deepEqual(checkHttpAnswer(ok({ 'x-tab': 'a\tb c' })), ok({ 'x-tab': 'a\tb c' }));
});

test('statuses outside 200-599 are refused, naming the status', () => {
  for (const status of [101, 100, 199, 600, 0, -1, 200.5, '200', null]) {
    assert.match(problem(ok({}, status as number)), new RegExp(`status ${JSON.stringify(status)?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a final HTTP status`));
  }
});

test('bad header names and values are refused, naming the header', () => {
  assert.match(problem(ok({ 'x-bad': 'a\r\nx-injected: 1' })), /header "x-bad" has a CR or LF in its value/);
  assert.match(problem(ok({ 'x-lf': 'a\nb' })), /header "x-lf" has a CR or LF/);
  assert.match(problem(ok({ 'bad name': 'v' })), /header name "bad name" is not a valid HTTP field name/);
  assert.match(problem(ok({ '': 'v' })), /header name "" is not a valid/);
  assert.match(problem(ok({ 'x-caf\u00e9': 'v' })), /header name "x-caf\u00e9"/);
  assert.match(problem(ok({ 'x-u': 'caf\u00e9 \u20ac' })), /header "x-u" has a non-ASCII character/);
  assert.match(problem(ok({ 'x-nul': 'a\u0000b' })), /header "x-nul" has a control character/);
  assert.match(problem(ok({ 'x-n': 5 })), /header "x-n" has a value that is not a string/);
});

test('headers past the size bound are refused', () => {
  assert.match(problem(ok({ 'x-big': 'a'.repeat(200_000) })), new RegExp(`headers exceed ${MAX_HEADER_BYTES} bytes \\(at header "x-big"\\)`));
  const many: Record<string, string> = {};
  for (let i = 0; i < 200; i++) many[`x-h${i}`] = 'v'.repeat(40);
  assert.match(problem(ok(many)), /headers exceed/);
  // Just under the bound passes.
  assert.ok(!(checkHttpAnswer(ok({ 'x-fit': 'a'.repeat(MAX_HEADER_BYTES - 'x-fit'.length - 4) })) instanceof MalformedHttpAnswer));
});

test('a shape that is not an answer is refused', () => {
  assert.match(problem(null), /not an object/);
  assert.match(problem({ status: 200, headers: [], body: '' }), /headers are not an object/);
  assert.match(problem({ status: 200, headers: {}, body: 5 }), /body is not a base64 string/);
});
