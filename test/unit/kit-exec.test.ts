import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from '../../kit/exec.ts';

describe('runCommand', () => {
  test('collects stdout, or hands it over chunk by chunk without collecting it', async () => {
    const script = 'for i in $(seq 1 20000); do echo "line $i"; done';
    const whole = await runCommand('sh', ['-c', script]);
    assert.equal(whole.code, 0);
    const copies: Buffer[] = [];
    const streamed = await runCommand('sh', ['-c', script], undefined, { onStdout: (chunk) => copies.push(chunk) });
    assert.equal(streamed.code, 0);
    assert.equal(streamed.stdout, '');
    assert.ok(copies.length > 1, 'more than one chunk');
    assert.equal(Buffer.concat(copies).toString(), whole.stdout);
  });

  test('an output consumer that throws ends the tool with a one-line error instead of crashing', async () => {
    const result = await runCommand('sh', ['-c', 'echo hello; exec sleep 5'], undefined, { onStdout: () => { throw new Error('bad listing'); } });
    assert.notEqual(result.code, 0);
    assert.equal(result.stderr, 'sh: reading its output failed: bad listing');
  });

  test('a missing tool is code 127, with the streaming option too', async () => {
    const result = await runCommand('kproxy-no-such-tool', [], undefined, { onStdout: () => {} });
    assert.equal(result.code, 127);
    assert.match(result.stderr, /^kproxy-no-such-tool: /);
  });
});
