// The chart's pod as a podman container: the DaemonSet's container (args, env, security context, volumes,
// memory limit) turned into `podman run` arguments, so the image test runs the image exactly as the chart
// does. What a kubelet would provide comes from the test: the ConfigMap's files, the ServiceAccount's token
// mount, the node's network namespace (hostNetwork) and, for host paths, stand-ins owned by the test.
import { daemonSet, expandArgs, initContainer, kproxyContainer, type Container, type KubeObject, type PodSpec } from '../chart/helm.ts';

export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PodEnvironment {
  readonly nodeName: string;
  /** The network namespace playing the node (the pod uses the host network). */
  readonly nodeNs: string;
  /** Directory with the ConfigMap's files. */
  readonly configDir: string;
  /** Directory with token, ca.crt, namespace. */
  readonly serviceAccountDir: string;
  /** hostPath → what the test mounts instead (a lock file of its own instead of the machine's /run/xtables.lock). */
  readonly hostPaths: Readonly<Record<string, string>>;
}

export interface PodmanContainer {
  readonly runArgs: string[];
  /** The container's arguments (after the image's entrypoint), with $(VAR) expanded as the kubelet does. */
  readonly args: string[];
}

export interface PodmanPod {
  /** The init container (start-up settings), run to completion first, when the chart has one. */
  readonly init?: PodmanContainer;
  readonly main: PodmanContainer;
}

/** Kubernetes memory quantity → podman's --memory value. */
function memory(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!match) throw new Error(`memory limit ${quantity}: not understood by the test`);
  return `${match[1]}${{ Ki: 'k', Mi: 'm', Gi: 'g' }[match[2] ?? ''] ?? 'b'}`;
}

function podmanContainer(pod: PodSpec, container: Container, env: PodEnvironment): PodmanContainer {
  const runArgs = [`--network=ns:/run/netns/${env.nodeNs}`, '--pull=never'];

  for (const variable of container.env) {
    if (variable.value !== undefined) runArgs.push(`--env=${variable.name}=${variable.value}`);
    else if (variable.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') runArgs.push(`--env=${variable.name}=${env.nodeName}`);
    else throw new Error(`env ${variable.name}: a source the test does not provide`);
  }

  const security = container.securityContext;
  if (security.privileged) runArgs.push('--privileged');
  for (const cap of security.capabilities?.drop ?? []) runArgs.push(`--cap-drop=${cap}`);
  for (const cap of security.capabilities?.add ?? []) runArgs.push(`--cap-add=${cap}`);
  if (security.allowPrivilegeEscalation === false) runArgs.push('--security-opt=no-new-privileges');

  const limit = container.resources?.limits?.memory;
  if (limit) runArgs.push(`--memory=${memory(limit)}`);

  const volumes = new Map(pod.volumes.map((volume) => [volume.name, volume]));
  for (const mount of container.volumeMounts) {
    const volume = volumes.get(mount.name);
    let source: string | undefined;
    if (volume?.configMap) source = env.configDir;
    else if (volume?.hostPath) source = env.hostPaths[volume.hostPath.path];
    if (!source) throw new Error(`volume ${mount.name}: the test has no stand-in for it`);
    runArgs.push(`--volume=${source}:${mount.mountPath}${mount.readOnly ? ':ro' : ''}`);
  }
  runArgs.push(`--volume=${env.serviceAccountDir}:${SERVICE_ACCOUNT_MOUNT}:ro`);
  return { runArgs, args: expandArgs(container, env.nodeName) };
}

export function podmanPod(objects: readonly KubeObject[], env: PodEnvironment): PodmanPod {
  const pod = daemonSet(objects).spec.template.spec;
  if (!pod.hostNetwork) throw new Error('the chart\'s pod does not use the host network');
  const init = initContainer(objects);
  return {
    ...(init && { init: podmanContainer(pod, init, env) }),
    main: podmanContainer(pod, kproxyContainer(objects), env),
  };
}
