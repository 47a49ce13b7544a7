// The protobuf list decoder on hand-built messages: the wire format's corners (negative int32 as 10 bytes, fields it
// does not know of every wire type, truncation), the envelope, and JSON's omitempty rules. Equality with JSON on real
// apiserver output is test/kube/protobuf.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEndpointSlice, decodeListPage, decodeService, ProtoReader } from '../../controllers/kube/protobuf.ts';

// --- a tiny encoder for the tests ---
const varint = (value: number | bigint): number[] => {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
};
const key = (field: number, wire: number): number[] => varint(field * 8 + wire);
const int = (field: number, value: number): number[] => [...key(field, 0), ...varint(value)];
const bytes = (field: number, content: readonly number[]): number[] => [...key(field, 2), ...varint(content.length), ...content];
const str = (field: number, text: string): number[] => bytes(field, [...Buffer.from(text, 'utf8')]);
const msg = (field: number, ...parts: number[][]): number[] => bytes(field, parts.flat());
const envelope = (list: number[]): Buffer => Buffer.from([0x6b, 0x38, 0x73, 0x00, ...msg(1, str(1, 'v1'), str(2, 'List')), ...bytes(2, list), ...str(4, 'application/vnd.kubernetes.protobuf')]);

describe('protobuf reader', () => {
  test('int32: small, large and negative (sign-extended to 10 bytes)', () => {
    for (const value of [0, 1, 300, 65535, 2 ** 31 - 1, -1, -30000, -(2 ** 31)]) {
      const r = new ProtoReader(Buffer.from(varint(value)));
      assert.equal(r.int32(), value);
      assert.equal(r.more(), false);
    }
  });

  test('unknown fields of every wire type are skipped; truncation is an error, not a wrong value', () => {
    const service = [
      ...int(99, 7), ...[...key(98, 1), 1, 2, 3, 4, 5, 6, 7, 8], ...[...key(97, 5), 1, 2, 3, 4], ...str(96, 'ignored'),
      ...msg(1, str(1, 'web'), str(3, 'shop'), str(6, '42'), str(4, 'selflink'), msg(11, str(1, 'a'), str(2, 'b'))),
      ...msg(2, msg(1, str(1, 'http'), str(2, 'TCP'), int(3, 80), msg(4, int(1, 1), str(3, 'named')), int(5, 0))),
    ];
    assert.deepEqual(decodeService(new ProtoReader(Buffer.from(service))), {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: 'web', namespace: 'shop', resourceVersion: '42' },
      spec: { ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'named' }] },
      status: { loadBalancer: {} },
    });
    assert.throws(() => decodeService(new ProtoReader(Buffer.from(service.slice(0, -3)))), /truncated/);
  });

  test('JSON omitempty: empty strings and zero ports of non-pointer fields are left out; set pointers stay', () => {
    const service = [...msg(2, str(3, ''), str(4, 'ClusterIP'), str(11, ''), int(12, 0), str(17, 'SingleStack'), str(22, ''))];
    assert.deepEqual(decodeService(new ProtoReader(Buffer.from(service))).spec, { type: 'ClusterIP', ipFamilyPolicy: 'SingleStack', internalTrafficPolicy: '' });
  });

  test('an EndpointSlice without endpoints or ports reads as JSON writes it: null', () => {
    const slice = decodeEndpointSlice(new ProtoReader(Buffer.from([...msg(1, str(1, 's')), ...str(4, 'IPv4')])));
    assert.deepEqual(slice, { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's' }, addressType: 'IPv4', ports: null, endpoints: null });
  });

  test('a list: envelope, items, resourceVersion and continue token', () => {
    const list = [...msg(1, str(2, '77'), str(3, 'next')), ...msg(2, msg(1, str(1, 'a'))), ...msg(2, msg(1, str(1, 'b')))];
    const page = decodeListPage(envelope(list), decodeService);
    assert.deepEqual(page.items.map((s) => (s as { metadata: { name: string } }).metadata.name), ['a', 'b']);
    assert.equal(page.resourceVersion, '77');
    assert.equal(page.continueToken, 'next');
    assert.equal(decodeListPage(envelope([...msg(1, str(2, '1'), str(3, ''))]), decodeService).continueToken, undefined);
    assert.throws(() => decodeListPage(Buffer.from('{"kind":"ServiceList"}'), decodeService), /no k8s envelope/);
  });
});
