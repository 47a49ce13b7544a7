// The label selectors kube-proxy lists Services and EndpointSlices with. The endpointslice controller copies
// the Service's labels onto its slices (and marks headless ones), so one selector serves both kinds.

export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

/**
 * Objects without a service-proxy-name label (or, when this proxy has a name, with exactly that one),
 * and never headless ones.
 */
export function proxyLabelSelector(proxyName?: string): string {
  const owner = proxyName ? `${SERVICE_PROXY_NAME_LABEL}=${proxyName}` : `!${SERVICE_PROXY_NAME_LABEL}`;
  return `${owner},!${HEADLESS_LABEL}`;
}

export function nodeFieldSelector(nodeName: string): string {
  return `metadata.name=${nodeName}`;
}
