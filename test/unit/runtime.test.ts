import { test } from 'node:test';
import assert from 'node:assert/strict';

test('tests run on the Node 24 the project brings (node_modules/.bin/node first on PATH)', () => {
  assert.match(process.version, /^v24\./);
});
