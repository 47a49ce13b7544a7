// Helm and kubectl for the chart tests (tools/helm/install.sh caches them; CI runs it first), and the chart
// rendered into parsed objects.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { run, type RunResult } from '../harness/run.ts';

export const CHART_DIR = fileURLToPath(new URL('../../charts/kproxy', import.meta.url));
const INSTALL = fileURLToPath(new URL('../../tools/helm/install.sh', import.meta.url));

/** The directory holding helm and kubectl, or an error saying how to get them. */
export function toolsDir(): string {
  const printed = spawnSync('bash', [INSTALL, '--print'], { encoding: 'utf8' });
  const dir = printed.stdout.trim().split('\n').pop() ?? '';
  if (printed.status !== 0 || !existsSync(join(dir, 'helm')) || !existsSync(join(dir, 'kubectl'))) {
    throw new Error(`helm/kubectl missing in ${dir || '?'}: run tools/helm/install.sh first (CI does)`);
  }
  return dir;
}

export const helmPath = (): string => join(toolsDir(), 'helm');
export const kubectlPath = (): string => join(toolsDir(), 'kubectl');

export function helm(args: readonly string[]): Promise<RunResult> {
  return run(helmPath(), args, { allowFailure: true, timeoutMs: 60_000 });
}

/** A Kubernetes object as rendered (only the envelope is typed; tests narrow the rest). */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Readonly<Record<string, string>>; readonly annotations?: Readonly<Record<string, string>> };
  readonly [field: string]: unknown;
}

export interface RenderOptions {
  readonly release?: string;
  readonly namespace?: string;
}

/** `helm template` with `values` (merged over the chart's values.yaml). Resolves with stdout/stderr/code. */
export async function helmTemplate(values: object, options: RenderOptions = {}): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-chart-'));
  try {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    return await helm(['template', options.release ?? 'kproxy', CHART_DIR, '--namespace', options.namespace ?? 'kube-system', '--values', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rendered objects; throws with helm's message when rendering fails. */
export async function renderChart(values: object = {}, options: RenderOptions = {}): Promise<KubeObject[]> {
  const result = await helmTemplate(values, options);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr.trim()}`);
  return parseObjects(result.stdout);
}

export function parseObjects(text: string): KubeObject[] {
  return parseAllDocuments(text).map((doc) => doc.toJS() as KubeObject | null).filter((object): object is KubeObject => object !== null);
}

/** The one object of a kind (and name, when given); throws when there is not exactly one. */
export function only(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.filter((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as KubeObject;
}

// The parts of a DaemonSet the tests read.
export interface EnvVar { readonly name: string; readonly value?: string; readonly valueFrom?: { readonly fieldRef?: { readonly fieldPath: string } } }
export interface VolumeMount { readonly name: string; readonly mountPath: string; readonly readOnly?: boolean }
export interface Volume { readonly name: string; readonly configMap?: { readonly name: string }; readonly hostPath?: { readonly path: string; readonly type?: string } }
export interface SecurityContext {
  readonly privileged?: boolean;
  readonly allowPrivilegeEscalation?: boolean;
  readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
}
export interface Probe { readonly httpGet: { readonly path: string; readonly port: string | number } }
export interface Container {
  readonly name: string;
  readonly image: string;
  readonly command?: readonly string[];
  readonly args: readonly string[];
  readonly env: readonly EnvVar[];
  readonly securityContext: SecurityContext;
  readonly resources?: { readonly requests?: Readonly<Record<string, string>>; readonly limits?: Readonly<Record<string, string>> };
  readonly volumeMounts: readonly VolumeMount[];
}
/** The long-running container: also ports and probes. */
export interface MainContainer extends Container {
  readonly ports: ReadonlyArray<{ readonly name: string; readonly containerPort: number }>;
  readonly livenessProbe: Probe;
  readonly readinessProbe: Probe;
}
export interface PodSpec {
  readonly serviceAccountName: string;
  readonly hostNetwork: boolean;
  readonly priorityClassName: string;
  readonly tolerations: ReadonlyArray<Readonly<Record<string, string>>>;
  readonly nodeSelector?: Readonly<Record<string, string>>;
  readonly initContainers?: readonly Container[];
  readonly containers: readonly MainContainer[];
  readonly volumes: readonly Volume[];
}
export interface DaemonSet extends KubeObject {
  readonly spec: {
    readonly selector: { readonly matchLabels: Readonly<Record<string, string>> };
    readonly updateStrategy: { readonly type: string; readonly rollingUpdate?: { readonly maxUnavailable?: number | string } };
    readonly template: { readonly metadata: { readonly labels: Readonly<Record<string, string>>; readonly annotations?: Readonly<Record<string, string>> }; readonly spec: PodSpec };
  };
}

export function daemonSet(objects: readonly KubeObject[]): DaemonSet {
  return only(objects, 'DaemonSet') as DaemonSet;
}

/** The kproxy container of the DaemonSet. */
export function kproxyContainer(objects: readonly KubeObject[]): MainContainer {
  const container = daemonSet(objects).spec.template.spec.containers.find((c) => c.name === 'kproxy');
  if (!container) throw new Error('no kproxy container in the DaemonSet');
  return container;
}

/** The init container that applies the start-up settings, when the DaemonSet has one. */
export function initContainer(objects: readonly KubeObject[]): Container | undefined {
  const init = daemonSet(objects).spec.template.spec.initContainers ?? [];
  if (init.length > 1) throw new Error(`${init.length} init containers`);
  return init[0];
}

/** The ConfigMap's config.conf text. */
export function configText(objects: readonly KubeObject[]): string {
  const data = only(objects, 'ConfigMap').data as Readonly<Record<string, string>> | undefined;
  const text = data?.['config.conf'];
  if (text === undefined) throw new Error('the ConfigMap has no config.conf');
  return text;
}

/** Kubernetes' $(VAR) expansion of container args, from the container's env (fieldRef spec.nodeName → nodeName). */
export function expandArgs(container: Container, nodeName: string): string[] {
  const env = new Map<string, string>();
  for (const variable of container.env) {
    if (variable.value !== undefined) env.set(variable.name, variable.value);
    else if (variable.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env.set(variable.name, nodeName);
  }
  return container.args.map((arg) => arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env.get(name) ?? whole));
}
