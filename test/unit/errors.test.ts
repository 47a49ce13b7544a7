import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ERROR_CODES, ApplyError, ConfigError, ConfigUnreadableError, KproxyError, ListenError, ManifestError, ModeInvalidError,
  ModeUnavailableError, SourceUnavailableError, UsageError,
} from '../../src/errors.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Map(
  [...doc.matchAll(/^\| `(KP_ERR_[A-Z_]+)` \| (\d+) \| ([^|]+) \|/gm)].map((m) => [m[1], { exitCode: Number(m[2]), summary: (m[3] ?? '').trim() }]),
);

test('docs/errors.md lists exactly the codes of src/errors.ts, with the same exit status and summary', () => {
  assert.deepEqual([...documented.keys()].sort(), ERROR_CODES.map((c) => c.code).sort());
  for (const info of ERROR_CODES) {
    assert.equal(documented.get(info.code)?.exitCode, info.exitCode, info.code);
    assert.equal(documented.get(info.code)?.summary, info.summary, info.code);
  }
});

test('every error class carries a documented code and prints one line', () => {
  const errors: KproxyError[] = [
    new UsageError('Unknown argument: x'),
    new ConfigError({ field: 'iptables.syncPeriod', value: '30', reason: 'is not a duration' }),
    new ConfigUnreadableError('cannot read config file /x: ENOENT'),
    new ModeUnavailableError('nftables'),
    new ModeInvalidError('bad module'),
    new SourceUnavailableError('no source'),
    new ManifestError('KP_ERR_MANIFEST_INVALID', 'a.yaml', 'a.yaml line 3: bad\nindentation'),
    new ApplyError('iptables-restore failed'),
    new ListenError('health server: cannot listen on 0.0.0.0:10256: EADDRINUSE'),
  ];
  for (const err of errors) {
    assert.ok(documented.has(err.code), err.code);
    assert.equal(err.exitCode, documented.get(err.code)?.exitCode);
    assert.doesNotMatch(err.oneLine(), /\n/);
    assert.ok(err.oneLine().endsWith(`(${err.code})`));
    assert.equal(err.name, err.constructor.name);
  }
  assert.equal(new ModeUnavailableError('nftables').message, 'proxy mode nftables is not available in this build');
  assert.equal(new ConfigError({ field: 'mode', value: 'x', reason: 'must be one of a, b' }).message, 'invalid mode "x": must be one of a, b');
});
