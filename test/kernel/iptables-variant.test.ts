// Variant detection on a real kernel: the variant that already holds rules wins, nft on a tie.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand, type CommandRunner } from '../../kit/exec.ts';
import { detectVariant } from '../../kit/iptables/variant.ts';
import { addNamespace, deleteNamespace, nsRun, sweepStaleNamespaces, uniquePrefix } from '../harness/index.ts';
import { kernelSuite, requireKernelTools } from './preflight.ts';

describe('iptables variant detection', kernelSuite, () => {
  let ns: string;
  let run: CommandRunner;

  before(async () => {
    requireKernelTools(['iptables-legacy-save', 'iptables-nft-save']);
    sweepStaleNamespaces();
    ns = `${uniquePrefix()}-variant`;
    await addNamespace(ns);
    run = (cmd, args, input, options) => runCommand('ip', ['netns', 'exec', ns, cmd, ...args], input, options);
  });
  after(async () => { if (ns) await deleteNamespace(ns); });

  test('an empty node gets nft', async () => {
    assert.equal(await detectVariant(run), 'nft');
  });

  test('a node whose rules live in iptables-legacy gets legacy', async () => {
    await nsRun(ns, 'iptables-legacy', ['-w', '-t', 'filter', '-A', 'INPUT', '-s', '10.0.0.1', '-j', 'ACCEPT']);
    await nsRun(ns, 'iptables-legacy', ['-w', '-t', 'filter', '-A', 'INPUT', '-s', '10.0.0.2', '-j', 'ACCEPT']);
    assert.equal(await detectVariant(run), 'legacy');
  });

  test('more rules in iptables-nft win back', async () => {
    for (const host of ['10.0.0.3', '10.0.0.4', '10.0.0.5']) {
      await nsRun(ns, 'iptables-nft', ['-w', '-t', 'filter', '-A', 'INPUT', '-s', host, '-j', 'ACCEPT']);
    }
    assert.equal(await detectVariant(run), 'nft');
  });
});
