import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReply } from './replies.js';

test('the protocol messages are read with their types', () => {
  assert.deepEqual(parseReply('{"type":"ready","runtime":"nodejs20","pid":1,"bootMs":12.5}'), { type: 'ready', runtime: 'nodejs20', pid: 1, bootMs: 12.5 });
  assert.deepEqual(parseReply('{"type":"loaded","ms":3}'), { type: 'loaded', ms: 3 });
  assert.deepEqual(parseReply('{"type":"result","id":"a","ok":true,"value":{"x":1}}'), { type: 'result', id: 'a', ok: true, value: { x: 1 } });
  assert.deepEqual(parseReply('{"type":"result","id":"a","ok":true,"http":{"status":201,"headers":{},"body":""}}'), {
    type: 'result',
    id: 'a',
    ok: true,
    http: { status: 201, headers: {}, body: '' },
  });
  assert.deepEqual(parseReply('{"type":"result","id":"a","ok":false,"error":{"name":"TypeError","message":"x is not a function","stack":"at f"}}'), {
    type: 'result',
    id: 'a',
    ok: false,
    error: { name: 'TypeError', message: 'x is not a function', stack: 'at f' },
  });
});

test('a failure without its error payload still reads as one, with a message', () => {
  assert.deepEqual(parseReply('{"type":"result","id":"a","ok":false}'), { type: 'result', id: 'a', ok: false, error: { name: 'Error', message: 'the function failed' } });
  assert.deepEqual(parseReply('{"type":"load-error","error":"boom"}'), { type: 'load-error', error: { name: 'Error', message: 'unknown error' } });
});

test('what a function writes to fd 4 is not taken for a reply', () => {
  for (const line of ['hello', '42', 'null', '[]', '{"type":"nonsense"}', '{"type":"result","ok":true,"value":1}', '{"type":"result","id":7,"ok":true}']) {
    assert.equal(parseReply(line), undefined, line);
  }
});
