import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ValidationError } from '../../../../common/errors.js';
import { apiHost, formatReference, parseReference, referenceTarget } from './reference.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('host, path, tag and digest by Docker\'s rules', () => {
  assert.deepEqual(parseReference('127.0.0.1:5000/app'), { registry: '127.0.0.1:5000', repository: 'app' });
  assert.deepEqual(parseReference('localhost/a/b:v1.2-rc_3'), { registry: 'localhost', repository: 'a/b', tag: 'v1.2-rc_3' });
  assert.deepEqual(parseReference('registry.example.com/team/svc/api:latest'), { registry: 'registry.example.com', repository: 'team/svc/api', tag: 'latest' });
  assert.deepEqual(parseReference(`r.example:443/x@${D}`), { registry: 'r.example:443', repository: 'x', digest: D });
  assert.deepEqual(parseReference(`[::1]:5000/x:t@${D}`), { registry: '[::1]:5000', repository: 'x', tag: 't', digest: D });
  assert.deepEqual(parseReference('r.io/a.b/c__d/e--f'), { registry: 'r.io', repository: 'a.b/c__d/e--f' });
});

test('a pinned digest wins over the tag; latest when nothing is given', () => {
  assert.equal(referenceTarget(parseReference(`r.io/x:v1@${D}`)), D);
  assert.equal(referenceTarget(parseReference('r.io/x:v1')), 'v1');
  assert.equal(referenceTarget(parseReference('r.io/x')), 'latest');
  assert.equal(formatReference(parseReference('r.io/x')), 'r.io/x:latest');
  assert.equal(formatReference(parseReference(`r.io/x@${D}`)), `r.io/x@${D}`);
  assert.equal(formatReference(parseReference(`r.io/x:v1@${D}`)), `r.io/x:v1@${D}`);
});

test('Docker Hub: written out, library/ for official images, its API host', () => {
  assert.deepEqual(parseReference('docker.io/alpine:3'), { registry: 'docker.io', repository: 'library/alpine', tag: '3' });
  assert.deepEqual(parseReference('docker.io/bitnami/redis'), { registry: 'docker.io', repository: 'bitnami/redis' });
  assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(apiHost('127.0.0.1:5000'), '127.0.0.1:5000');
});

test('refused clearly, naming the part: no host, upper case, bad tag, bad digest, bad component', () => {
  const cases: [string, RegExp][] = [
    ['alpine', /no registry host.*no default registry/],
    ['library/alpine:3', /no registry host/],
    ['r.io/App', /must be lower case/],
    ['r.io/x:-bad', /not a valid tag/],
    [`r.io/x:${'t'.repeat(129)}`, /not a valid tag/],
    ['r.io/x@sha256:abc', /not sha256: and 64/],
    [`r.io/x@md5:${'a'.repeat(32)}`, /not sha256/],
    ['r.io/a..b', /not a valid path component/],
    ['r.io/a/', /not a valid path component/],
    ['r.io//a', /not a valid path component/],
    ['-bad.io/x', /not a valid registry host/],
    ['', /is empty/],
    [`r.io/${'a'.repeat(300)}`, /longer than 255/],
  ];
  for (const [ref, why] of cases) {
    assert.throws(() => parseReference(ref), (err: unknown) => err instanceof ValidationError && why.test(err.message) && err.issues[0]?.path === 'ref', ref);
  }
});
