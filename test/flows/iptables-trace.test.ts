// The packet-flow table against the iptables tracer (the compiled ruleset, interpreted).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mode } from '../../modes/iptables/index.ts';
import { FLOW_CASES, flowClusterState } from './table.ts';

describe('packet-flow table: iptables tracer', () => {
  const state = flowClusterState();
  for (const flow of FLOW_CASES) {
    test(flow.name, () => {
      const { src, dst, port, protocol, from } = flow.packet;
      assert.deepEqual(mode.trace(mode.compile(state), flow.packet), flow.expect, `${from} ${src} -> ${dst}:${port}/${protocol}`);
    });
  }
});
