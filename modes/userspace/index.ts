// The userspace mode: an in-process TCP/UDP relay (see README.md in this folder).
import type { ModeModule, ModeOptions } from '../../src/model/mode.ts';
import { parseConfig } from './config.ts';
import { removeInterface } from './interface.ts';
import { UserspaceProxy } from './proxy.ts';
import { render } from './render.ts';
import { trace } from './trace.ts';

export { UserspaceProxy } from './proxy.ts';
export type { RelayStats, ServiceStats } from './stats.ts';

function configOf(options: ModeOptions): ReturnType<typeof parseConfig>['config'] {
  const { config, problems } = parseConfig(options.config);
  for (const p of problems) options.log.warn({}, p);
  return config;
}

export const mode: ModeModule = {
  name: 'userspace',
  async create(options) {
    return new UserspaceProxy({ config: configOf(options), log: options.log.child({ mode: 'userspace' }) });
  },
  async cleanup(options) {
    const { interfaceName } = configOf(options);
    if (await removeInterface(interfaceName)) options.log.info({ interface: interfaceName }, 'removed the relay interface');
  },
  render,
  trace,
};
