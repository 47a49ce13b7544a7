// What the userspace relay must do with a packet-flow case (test/flows/table.ts): the table's verdict, adapted to
// a relay. It opens its own connection to the endpoint, so every backend sees the node as the source (every reach
// is masqueraded), and it leaves SCTP to the kernel modes. Shared by the tracer test and the netns test.
import type { Verdict } from '../../src/model/trace.ts';
import type { FlowCase } from '../flows/table.ts';

export function relayExpectation(flow: FlowCase): Verdict {
  if (flow.packet.protocol === 'SCTP') return { kind: 'untouched' };
  if (flow.expect.kind !== 'forward') return flow.expect;
  return { kind: 'forward', reaches: flow.expect.reaches.map((r) => ({ endpoint: r.endpoint, masquerade: true })) };
}
