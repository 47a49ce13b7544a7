import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, ipFamily, joinHostPort, normalizeIP, parseCidr } from '../../src/util/ip.ts';

test('ipFamily tells v4, v6 and garbage apart', () => {
  const cases: Array<[string, string | undefined]> = [
    ['10.0.0.1', 'IPv4'], ['fd00::1', 'IPv6'], ['::ffff:10.0.0.1', 'IPv6'], ['10.0.0.256', undefined],
    ['', undefined], ['fe80::1%eth0', undefined], ['hello', undefined],
  ];
  for (const [ip, family] of cases) assert.equal(ipFamily(ip), family, ip);
});

test('normalizeIP gives the canonical form', () => {
  const cases: Array<[string, string | undefined]> = [
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'], ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['::', '::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'], ['fd00:0::1:0', 'fd00::1:0'], ['10.1.2.3', '10.1.2.3'], ['x', undefined],
  ];
  for (const [ip, want] of cases) assert.equal(normalizeIP(ip), want, ip);
});

test('parseCidr clears host bits and rejects nonsense', () => {
  assert.equal(parseCidr('10.244.1.7/16')?.text, '10.244.0.0/16');
  assert.equal(parseCidr('fd00:10::5/64')?.text, 'fd00:10::/64');
  assert.equal(parseCidr('10.0.0.1')?.text, '10.0.0.1/32');
  assert.equal(parseCidr('0.0.0.0/0')?.text, '0.0.0.0/0');
  for (const bad of ['10.0.0.0/33', '10.0.0.0/-1', '10.0.0/8', 'a/8', '10.0.0.0/8/1', '::/129', '10.0.0.0/x']) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

test('cidrContains matches only its own family and range', () => {
  const v4 = parseCidr('10.244.0.0/16');
  const v6 = parseCidr('fd00::/8');
  assert.ok(v4 && v6);
  assert.equal(cidrContains(v4, '10.244.200.1'), true);
  assert.equal(cidrContains(v4, '10.245.0.1'), false);
  assert.equal(cidrContains(v4, 'fd00::1'), false);
  assert.equal(cidrContains(v6, 'fd12::1'), true);
  assert.equal(cidrContains(v6, 'fe00::1'), false);
});

test('joinHostPort brackets IPv6', () => {
  assert.equal(joinHostPort('10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(joinHostPort('fd00::1', 80), '[fd00::1]:80');
});
