import assert from 'node:assert/strict';
import { test } from 'node:test';
import { embeddedV4, HostPolicy, HostPolicyConfigError, splitList } from './host-policy.js';

const policy = new HostPolicy({ denyOwnAddresses: false });
const refused = (url: string, p = policy) => {
  const v = p.checkUrl(url);
  assert.equal(v.ok, false, `${url} should be refused`);
  return (v as { reason: string }).reason;
};
const permitted = (url: string, p = policy) => assert.equal(p.checkUrl(url).ok, true, `${url} should be permitted`);

test('by default loopback, private, link-local (metadata), unspecified and multicast addresses are refused', () => {
  for (const url of [
    'http://127.0.0.1/',
    'http://127.1.2.3:8080/x',
    'http://10.1.2.3/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://169.254.169.254/latest/meta-data/',
    'http://0.0.0.0/',
    'http://100.64.0.1/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
  ]) {
    assert.match(refused(url), /denied range/, url);
  }
  permitted('http://93.184.216.34/');
  permitted('https://172.32.0.1/');
});

test('IPv6 equivalents are refused, mapped and NAT64 IPv4 included, and the URL parser\'s other spellings of an address', () => {
  for (const url of ['http://[::1]/', 'http://[::]/', 'http://[fe80::1]/', 'http://[fd00::5]/', 'http://[fc00::1]/', 'http://[ff02::1]/', 'http://[::ffff:127.0.0.1]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[64:ff9b::10.0.0.1]/']) {
    assert.match(refused(url), /denied range/, url);
  }
  // WHATWG URL normalises these to 127.0.0.1 before the check sees them.
  for (const url of ['http://2130706433/', 'http://0x7f.1/', 'http://127.000.000.001/']) assert.match(refused(url), /denied range/, url);
  permitted('http://[2606:4700::1111]/');
  permitted('http://[::ffff:8.8.8.8]/');
});

test('embeddedV4 reads the IPv4 inside mapped and NAT64 addresses only', () => {
  assert.equal(embeddedV4('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(embeddedV4('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(embeddedV4('64:ff9b::a9fe:a9fe'), '169.254.169.254');
  assert.equal(embeddedV4('2001:db8::1'), undefined);
  assert.equal(embeddedV4('10.0.0.1'), undefined);
});

test('only http and https, and no credentials in the URL', () => {
  assert.match(refused('ftp://example.com/'), /http\(s\)/);
  assert.match(refused('file:///etc/passwd'), /http\(s\)/);
  assert.match(refused('gopher://example.com/'), /http\(s\)/);
  assert.match(refused('https://user:pw@example.com/'), /credentials/);
  assert.match(refused('not a url'), /not a URL/);
  assert.match(refused('http://localhost:8080/'), /loopback/);
  permitted('https://hooks.example.com/faasbox');
});

test('the allow list wins over the deny lists; hostnames and *.domain entries match', () => {
  const p = new HostPolicy({ allow: ['127.0.0.1', '10.1.0.0/16', 'internal.example.com'], deny: ['evil.example.org', '*.blocked.example', '203.0.113.0/24'], denyOwnAddresses: false });
  permitted('http://127.0.0.1:9999/cb', p);
  assert.equal(p.checkAddress('127.0.0.1').ok, true);
  assert.equal(p.checkAddress('127.0.0.2').ok, false, 'only the address allowed, not its range');
  permitted('http://10.1.2.3/', p);
  refused('http://10.2.0.1/', p);
  permitted('http://internal.example.com/', p);
  assert.equal(p.nameAllowed('internal.example.com'), true);
  assert.match(refused('http://evil.example.org/', p), /deny list/);
  assert.match(refused('https://a.b.blocked.example/', p), /deny list/);
  refused('http://203.0.113.7/', p);
  permitted('http://example.org/', p);
});

test('deny "*" makes the allow list the only way through', () => {
  const p = new HostPolicy({ allow: ['hooks.example.com', '198.51.100.0/24'], deny: ['*'], denyOwnAddresses: false });
  permitted('https://hooks.example.com/x', p);
  permitted('http://198.51.100.9/', p);
  refused('https://other.example.com/', p);
  assert.equal(p.checkAddress('93.184.216.34').ok, false);
});

test('the machine\'s own interface addresses are denied unless told otherwise', () => {
  const own = new HostPolicy();
  assert.equal(own.checkAddress('127.0.0.1').ok, false);
});

test('a malformed list entry is refused with the setting it came from', () => {
  assert.throws(() => new HostPolicy({ allow: ['10.0.0.0/33'] }), HostPolicyConfigError);
  assert.throws(() => new HostPolicy({ deny: ['http://x/'] }), /FAASBOX_CALLBACK_DENY/);
  assert.throws(() => new HostPolicy({ allow: ['::1/129'] }), /FAASBOX_CALLBACK_ALLOW/);
  assert.deepEqual(splitList(' 127.0.0.1, 10.0.0.0/8  a.example.com,,'), ['127.0.0.1', '10.0.0.0/8', 'a.example.com']);
  assert.deepEqual(splitList(undefined), []);
});
