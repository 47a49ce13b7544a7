// The userspace mode: an in-process TCP/UDP relay (see README.md in this folder).
import type { ModeModule, ModeOptions, Proxier } from '../../src/model/mode.ts';
import type { DesiredState } from '../../src/model/types.ts';
import { parseConfig } from './config.ts';
import { removeInterface } from './interface.ts';
import { UserspaceProxy } from './proxy.ts';
import { renderTable } from './render.ts';
import { compile, type ListenerTable } from './table.ts';
import { nodeAddressesOf, traceTable } from './trace.ts';

export { UserspaceProxy } from './proxy.ts';
export type { RelayStats, ServiceStats } from './stats.ts';

/**
 * The listener table from the Node object's addresses (what plan and trace show), and the state it came from:
 * the relay compiles it again with the addresses its interfaces really have.
 */
export interface UserspaceCompiled {
  readonly state: DesiredState;
  readonly table: ListenerTable;
}

function configOf(options: ModeOptions): ReturnType<typeof parseConfig>['config'] {
  const { config, problems } = parseConfig(options.config);
  for (const p of problems) options.log.warn({}, p);
  return config;
}

export const mode: ModeModule<UserspaceCompiled> = {
  name: 'userspace',
  compile: (state) => ({ state, table: compile(state) }),
  render: (compiled) => renderTable(compiled.table),
  trace: (compiled, packet) => traceTable(compiled.table, nodeAddressesOf(compiled.state), packet),
  async create(options): Promise<Proxier<UserspaceCompiled>> {
    const proxy = new UserspaceProxy({ config: configOf(options), log: options.log });
    return {
      sync: (compiled, request) => proxy.sync(compiled.state, request),
      stop: () => proxy.stop(),
      trafficStats: () => proxy.trafficStats(),
    };
  },
  async cleanup(options) {
    const { interfaceName } = configOf(options);
    if (await removeInterface(interfaceName)) options.log.info({ interface: interfaceName }, 'removed the relay interface');
  },
};
