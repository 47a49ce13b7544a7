// The shared packet-flow table against the userspace tracer. A relay opens its own connection to the endpoint,
// so every backend sees the node as the source: every expected reach is masqueraded here. SCTP is not relayed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mode } from '../../modes/userspace/index.ts';
import { FLOW_CASES, flowClusterState } from '../flows/table.ts';
import { relayExpectation } from './relay-expectation.ts';

describe('packet-flow table: userspace tracer', () => {
  const state = flowClusterState();
  for (const flow of FLOW_CASES) {
    test(flow.name, () => {
      const { src, dst, port, protocol, from } = flow.packet;
      assert.deepEqual(mode.trace(mode.compile(state), flow.packet), relayExpectation(flow), `${from} ${src} -> ${dst}:${port}/${protocol}`);
    });
  }
});
