// Assemble a DesiredState from per-service plans, and a one-shot (non-memoised) compute from parsed records.
import type { DesiredState, ServicePortPlan } from '../model/types.ts';
import type { ComputeOptions } from './options.ts';
import type { NodeRecord, ServiceRecord, SliceRecord } from './records.ts';
import { familyFrame, nodeView } from './node-view.ts';
import { planService, type ServicePlans } from './service-plan.ts';

/**
 * Sort key of a service so that concatenating services in this order gives plans sorted by plan key:
 * every plan key of a service starts with "namespace/name:", and strings sharing a prefix are contiguous.
 */
export const serviceSortKey = (namespace: string, name: string): string => `${namespace}/${name}:`;

export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export interface AssembleInput {
  readonly options: ComputeOptions;
  readonly node: NodeRecord | undefined;
  /** Plans of every service, already in serviceSortKey order. */
  readonly plans: Iterable<ServicePlans>;
}

export function assembleDesiredState(input: AssembleInput): DesiredState {
  const v4: ServicePortPlan[] = [];
  const v6: ServicePortPlan[] = [];
  for (const plans of input.plans) {
    for (const plan of plans.IPv4) v4.push(plan);
    for (const plan of plans.IPv6) v6.push(plan);
  }
  const { options, node } = input;
  return {
    node: nodeView(options, node),
    settings: { masqueradeAll: options.masqueradeAll, masqueradeBit: options.masqueradeBit, conntrackTcpLiberal: options.conntrackTcpLiberal === true },
    families: {
      IPv4: { ...familyFrame(options, node, 'IPv4'), services: v4 },
      IPv6: { ...familyFrame(options, node, 'IPv6'), services: v6 },
    },
  };
}

export interface ComputeInput {
  readonly options: ComputeOptions;
  readonly services: readonly ServiceRecord[];
  readonly slices: readonly SliceRecord[];
  readonly node?: NodeRecord;
}

/** Group slices by "namespace/serviceName", each group sorted by slice name. */
export function slicesByService(slices: readonly SliceRecord[]): Map<string, SliceRecord[]> {
  const groups = new Map<string, SliceRecord[]>();
  for (const slice of slices) {
    const key = `${slice.namespace}/${slice.serviceName}`;
    const group = groups.get(key);
    if (group) group.push(slice);
    else groups.set(key, [slice]);
  }
  for (const group of groups.values()) group.sort((a, b) => compareStrings(a.name, b.name));
  return groups;
}

/** The whole DesiredState from parsed records in one go (for `kproxy plan`, tests; the store memoises instead). */
export function computeDesiredState(input: ComputeInput): DesiredState {
  const groups = slicesByService(input.slices);
  const context = { nodeName: input.options.nodeName, zone: input.node?.zone, masqueradeAll: input.options.masqueradeAll };
  const services = [...input.services].sort((a, b) => compareStrings(serviceSortKey(a.namespace, a.name), serviceSortKey(b.namespace, b.name)));
  const plans = services.map((service) => planService(service, groups.get(`${service.namespace}/${service.name}`) ?? [], context));
  return assembleDesiredState({ options: input.options, node: input.node, plans });
}
