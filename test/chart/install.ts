// The chart on the test kube-apiserver (test/kube/apiserver.ts): its rendered objects created through kubectl with
// strict server-side validation, a token for its ServiceAccount, the files a kubelet would give the pod, and the
// apiserver's audit log of what that ServiceAccount did.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { ControlPlane } from '../kube/apiserver.ts';
import { run } from '../harness/run.ts';
import { configText, kubectlPath, only, type KubeObject } from './helm.ts';

/** `kubectl create --validate=strict`: the apiserver rejects unknown or duplicate fields and invalid objects. */
export async function createObjects(plane: ControlPlane, objects: readonly KubeObject[], extraArgs: readonly string[] = []): Promise<void> {
  const manifest = objects.map((object) => stringify(object)).join('---\n');
  const result = await run(kubectlPath(), ['--kubeconfig', plane.adminKubeconfig, 'create', '--validate=strict', ...extraArgs, '-f', '-'],
    { input: manifest, allowFailure: true, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`kubectl create failed: ${result.stderr.trim()}`);
}

/** A bound token for a ServiceAccount (TokenRequest), as the kubelet projects into the pod. */
export async function serviceAccountToken(plane: ControlPlane, namespace: string, name: string): Promise<string> {
  const answer = await plane.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
  const token = (answer.status as { token?: string } | undefined)?.token;
  if (!token) throw new Error(`no token for ${namespace}/${name}`);
  return token;
}

/** The ServiceAccount the DaemonSet's pods run as: namespace, name and its username for RBAC and audit. */
export function podServiceAccount(objects: readonly KubeObject[]): { namespace: string; name: string; user: string } {
  const account = only(objects, 'ServiceAccount');
  const namespace = account.metadata.namespace ?? 'default';
  return { namespace, name: account.metadata.name, user: `system:serviceaccount:${namespace}:${account.metadata.name}` };
}

export interface PodFiles {
  /** What the ConfigMap volume holds (config.conf). */
  readonly configDir: string;
  /** What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount: token, ca.crt, namespace. */
  readonly serviceAccountDir: string;
  /**
   * For a kproxy process outside a container: the rendered config file with the same credentials as a kubeconfig
   * (clientConnection.kubeconfig; with --config, kproxy ignores the --kubeconfig flag as kube-proxy does).
   */
  readonly processConfigFile: string;
}

export function writePodFiles(dir: string, plane: ControlPlane, objects: readonly KubeObject[], token: string): PodFiles {
  const configDir = join(dir, 'config');
  const serviceAccountDir = join(dir, 'serviceaccount');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(serviceAccountDir, { recursive: true });
  writeFileSync(join(configDir, 'config.conf'), configText(objects));
  writeFileSync(join(serviceAccountDir, 'token'), token);
  writeFileSync(join(serviceAccountDir, 'ca.crt'), readFileSync(plane.caFile()));
  writeFileSync(join(serviceAccountDir, 'namespace'), podServiceAccount(objects).namespace);
  const kubeconfig = join(dir, 'serviceaccount.kubeconfig');
  const processConfigFile = join(dir, 'process-config.conf');
  const config = parse(configText(objects)) as Record<string, unknown>;
  writeFileSync(processConfigFile, stringify({ ...config, clientConnection: { ...(config.clientConnection as object | undefined), kubeconfig } }));
  writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'pod',
    clusters: [{ name: 'test', cluster: { server: plane.server, 'certificate-authority': plane.caFile() } }],
    users: [{ name: 'pod', user: { token } }],
    contexts: [{ name: 'pod', context: { cluster: 'test', user: 'pod' } }],
  }));
  return { configDir, serviceAccountDir, processConfigFile };
}

/** kube-apiserver flags that log every request of `users` (metadata only) to `dir`/audit.log. */
export function auditArgs(dir: string, users: readonly string[]): string[] {
  const policy = join(dir, 'audit-policy.yaml');
  writeFileSync(policy, stringify({
    apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'],
    rules: [{ level: 'Metadata', users: [...users] }, { level: 'None' }],
  }));
  return [`--audit-policy-file=${policy}`, `--audit-log-path=${join(dir, 'audit.log')}`, '--audit-log-mode=blocking'];
}

export interface AuditEntry {
  readonly verb: string;
  readonly stage: string;
  readonly user: string;
  readonly resource: string;
  readonly apiGroup: string;
  readonly namespace: string | undefined;
  readonly code: number | undefined;
  readonly uri: string;
}

export function readAudit(dir: string, user: string): AuditEntry[] {
  let text = '';
  try { text = readFileSync(join(dir, 'audit.log'), 'utf8'); } catch { return []; }
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => {
    const event = JSON.parse(line) as {
      verb: string; stage: string; requestURI: string; user: { username: string };
      objectRef?: { resource?: string; apiGroup?: string; namespace?: string }; responseStatus?: { code?: number };
    };
    return {
      verb: event.verb, stage: event.stage, user: event.user.username, uri: event.requestURI,
      resource: event.objectRef?.resource ?? '', apiGroup: event.objectRef?.apiGroup ?? '',
      namespace: event.objectRef?.namespace, code: event.responseStatus?.code,
    };
  }).filter((entry) => entry.user === user);
}
