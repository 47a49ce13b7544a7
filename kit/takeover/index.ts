// Taking over a node from the upstream kube-proxy (--take-over-from-kube-proxy): once the calling mode's own rules are
// in place, remove what kube-proxy left — its iptables chains and the hooks into them (both variants, both
// families, its mangle canary), its `kube-proxy` nftables tables, its IPVS services and kube-ipvs0 interface, its
// ipsets — each only after checking it is there, and nothing else (kube-proxy.ts says what is kube-proxy's).
// Mode-neutral: any mode calls it after its first full sync; a mode that owns IPVS services itself says which to keep.
import type { Logger } from '../../src/model/mode.ts';
import type { DesiredState, Protocol } from '../../src/model/types.ts';
import { IP_FAMILIES } from '../../src/util/ip.ts';
import { firstLineOf } from '../../src/util/errors.ts';
import { firstLine, type CommandRunner } from '../exec.ts';
import { renderCleanup } from '../iptables/render.ts';
import { readNodeState, restore } from '../iptables/tools.ts';
import { toolsFor, VARIANTS, type IptablesTools } from '../iptables/variant.ts';
import {
  isKubeProxyIpvsService, KUBE_PROXY_IPSETS, KUBE_PROXY_IPTABLES, KUBE_PROXY_IPVS_INTERFACE, KUBE_PROXY_MANGLE_CANARY,
  KUBE_PROXY_NFT_TABLE, kubeProxyNftFamilies, parseAddresses, parseIpvsServices, type IpvsService,
} from './kube-proxy.ts';

export interface TakeoverOptions {
  readonly run: CommandRunner;
  readonly log: Logger;
  /** What kproxy serves now: the NodePorts of its Services tell kube-proxy's IPVS services on node addresses. */
  readonly state: DesiredState;
  /** IPVS virtual services the calling mode owns itself (the ipvs mode's): never removed. */
  readonly keepIpvs?: (service: IpvsService) => boolean;
}

export interface TakeoverReport {
  /** What was removed, one line each. */
  readonly removed: readonly string[];
  /** What could not be removed, one line each (it stays; a later call tries again). */
  readonly failed: readonly string[];
}

interface Step {
  readonly removed: string[];
  readonly failed: string[];
}

/** Remove kube-proxy's leftovers; never throws (failures are in the report, and logged). */
export async function takeOverFromKubeProxy(options: TakeoverOptions): Promise<TakeoverReport> {
  const step: Step = { removed: [], failed: [] };
  const attempt = async (what: string, work: () => Promise<void>): Promise<void> => {
    try {
      await work();
    } catch (err) {
      step.failed.push(`${what}: ${firstLineOf(err)}`);
    }
  };
  for (const variant of VARIANTS) {
    for (const family of IP_FAMILIES) {
      const tools = toolsFor(variant, family);
      await attempt(tools.iptables, () => removeIptables(options, tools, step));
    }
  }
  await attempt('nftables', () => removeNftables(options, step));
  await attempt('ipvs', () => removeIpvs(options, step));
  // Last: an ipset cannot be destroyed while a rule still uses it.
  await attempt('ipset', () => removeIpsets(options, step));
  for (const line of step.removed) options.log.info({ removed: line }, `Took over from kube-proxy: removed ${line}`);
  for (const line of step.failed) options.log.warn({ failed: line }, `Could not remove kube-proxy's ${line}`);
  return step;
}

/** kube-proxy's chains in nat and filter with the hooks into them (one restore), then its mangle canary. */
async function removeIptables({ run, log }: TakeoverOptions, tools: IptablesTools, step: Step): Promise<void> {
  const { state } = await readNodeState(run, tools, KUBE_PROXY_IPTABLES);
  if (!state) return; // this variant or family is not usable here: nothing of kube-proxy's can be in it
  const text = renderCleanup(state);
  if (text !== '') {
    await restore(run, log, tools, text);
    step.removed.push(`${tools.iptables}: ${state.chains.nat.length + state.chains.filter.length} chains and ${state.hooks.length} jumps to them`);
  }
  const canary = ['-w', '5', '-t', 'mangle'];
  if ((await run(tools.iptables, [...canary, '-S', KUBE_PROXY_MANGLE_CANARY])).code !== 0) return;
  for (const op of ['-F', '-X']) {
    const result = await run(tools.iptables, [...canary, op, KUBE_PROXY_MANGLE_CANARY]);
    if (result.code !== 0) throw new Error(`mangle ${KUBE_PROXY_MANGLE_CANARY}: ${firstLine(result)}`);
  }
  step.removed.push(`${tools.iptables}: mangle chain ${KUBE_PROXY_MANGLE_CANARY}`);
}

/** The `kube-proxy` table of each nftables family that has one. */
async function removeNftables({ run, log }: TakeoverOptions, step: Step): Promise<void> {
  const listed = await run('nft', ['list', 'tables']);
  if (listed.code !== 0) {
    log.debug({ error: firstLine(listed) }, 'nftables tables not listed (no nft tool or no nf_tables): no kube-proxy table to remove');
    return;
  }
  for (const family of kubeProxyNftFamilies(listed.stdout)) {
    const result = await run('nft', ['delete', 'table', family, KUBE_PROXY_NFT_TABLE]);
    if (result.code !== 0) step.failed.push(`nftables table ${family} ${KUBE_PROXY_NFT_TABLE}: ${firstLine(result)}`);
    else step.removed.push(`nftables table ${family} ${KUBE_PROXY_NFT_TABLE}`);
  }
}

/**
 * Only where kube-proxy's ipvs mode ran (kube-ipvs0 is there): its virtual services, then the interface (its service
 * addresses are local addresses of the node while it exists, whatever becomes of the services).
 */
async function removeIpvs(options: TakeoverOptions, step: Step): Promise<void> {
  const { run } = options;
  if ((await run('ip', ['-o', 'link', 'show', 'dev', KUBE_PROXY_IPVS_INTERFACE])).code !== 0) return;
  const listed = await run('ipvsadm', ['-S', '-n']);
  if (listed.code === 0) {
    const owned = {
      interfaceAddresses: parseAddresses((await run('ip', ['-o', 'addr', 'show', 'dev', KUBE_PROXY_IPVS_INTERFACE])).stdout),
      nodeAddresses: parseAddresses((await run('ip', ['-o', 'addr', 'show'])).stdout),
      nodePorts: nodePortsOf(options.state),
    };
    for (const service of parseIpvsServices(listed.stdout)) {
      if (!isKubeProxyIpvsService(service, owned) || options.keepIpvs?.(service) === true) continue;
      const result = await run('ipvsadm', ['-D', service.kind, service.key]);
      if (result.code !== 0) step.failed.push(`IPVS service ${service.key}: ${firstLine(result)}`);
      else step.removed.push(`IPVS service ${service.protocol} ${service.key}`);
    }
  } else if (listed.code === 127) {
    step.failed.push(`IPVS services (${KUBE_PROXY_IPVS_INTERFACE} is there, but ipvsadm is not: install it to remove them)`);
  } else {
    options.log.info({ error: firstLine(listed) }, `${KUBE_PROXY_IPVS_INTERFACE} is there but IPVS is not readable (no ip_vs here): no IPVS service to remove`);
  }
  const deleted = await run('ip', ['link', 'del', KUBE_PROXY_IPVS_INTERFACE]);
  if (deleted.code !== 0) step.failed.push(`interface ${KUBE_PROXY_IPVS_INTERFACE}: ${firstLine(deleted)}`);
  else step.removed.push(`interface ${KUBE_PROXY_IPVS_INTERFACE}`);
}

/** The ipsets of kube-proxy's ipvs mode that exist. */
async function removeIpsets({ run }: TakeoverOptions, step: Step): Promise<void> {
  const listed = await run('ipset', ['list', '-n']);
  if (listed.code !== 0) return; // no ipset tool or no ip_set: kube-proxy's ipvs mode could not have made any
  const destroyed: string[] = [];
  for (const name of listed.stdout.split('\n').map((line) => line.trim()).filter((line) => KUBE_PROXY_IPSETS.has(line))) {
    const result = await run('ipset', ['destroy', name]);
    if (result.code !== 0) step.failed.push(`ipset ${name}: ${firstLine(result)}`);
    else destroyed.push(name);
  }
  if (destroyed.length > 0) step.removed.push(`ipsets ${destroyed.join(', ')}`);
}

function nodePortsOf(state: DesiredState): Map<Protocol, Set<number>> {
  const ports = new Map<Protocol, Set<number>>();
  for (const family of IP_FAMILIES) {
    for (const service of state.families[family].services) {
      if (service.nodePort === undefined) continue;
      let set = ports.get(service.protocol);
      if (!set) ports.set(service.protocol, set = new Set());
      set.add(service.nodePort);
    }
  }
  return ports;
}
