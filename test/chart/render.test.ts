// The Helm chart (charts/kproxy) without a cluster: it lints strictly, renders for every mode with the objects
// parsed and asserted, its ConfigMap and arguments are accepted by kproxy's own configuration loader, and bad
// values are rejected by values.schema.json (which tools/chart/values-schema.ts writes from src/config/schema.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseCommandLine } from '../../src/cli/parse.ts';
import { loadConfig } from '../../src/config/index.ts';
import { leaves } from '../../src/config/schema.ts';
import { CHART_OWNED, renderedSchema, SCHEMA_PATH } from '../../tools/chart/values-schema.ts';
import {
  CHART_DIR, configText, daemonSet, expandArgs, helm, helmTemplate, initContainer, kproxyContainer, only, renderChart,
  type Container, type KubeObject,
} from './helm.ts';

const MODES = ['iptables', 'nftables', 'ipvs', 'userspace'] as const;
type Mode = typeof MODES[number];

/** What each mode's pod must get, and nothing more. */
const EXPECTED: Readonly<Record<Mode, { caps?: readonly string[]; privileged: boolean; xtablesLock: boolean; libModules: boolean; init: boolean }>> = {
  iptables: { caps: ['NET_ADMIN', 'NET_RAW'], privileged: false, xtablesLock: true, libModules: true, init: true },
  nftables: { caps: ['NET_ADMIN'], privileged: false, xtablesLock: false, libModules: true, init: true },
  ipvs: { privileged: true, xtablesLock: true, libModules: true, init: true },
  userspace: { caps: ['NET_ADMIN', 'NET_BIND_SERVICE'], privileged: false, xtablesLock: false, libModules: false, init: false },
};

const packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** kproxy's own view of a rendered container: its args (NODE_NAME expanded) with the ConfigMap written to a file. */
async function kproxyView(objects: readonly KubeObject[], container: Container = kproxyContainer(objects)): Promise<ReturnType<typeof loadConfig>> {
  const dir = mkdtempSync(join(tmpdir(), 'kproxy-chart-config-'));
  try {
    writeFileSync(join(dir, 'config.conf'), configText(objects));
    const args = expandArgs(container, 'node-a').map((arg) => arg.replace(/^--config=.*/, `--config=${join(dir, 'config.conf')}`));
    const command = await parseCommandLine(args);
    assert.equal(command.kind, 'run');
    return loadConfig(command.flags);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('charts/kproxy', () => {
  test('helm lint --strict passes for every mode', async () => {
    for (const mode of MODES) {
      const result = await helm(['lint', '--strict', CHART_DIR, '--set', `proxyMode=${mode}`]);
      assert.equal(result.code, 0, `${mode}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('values.schema.json is what tools/chart/values-schema.ts writes from src/config/schema.ts', () => {
    assert.equal(readFileSync(SCHEMA_PATH, 'utf8'), renderedSchema(), 'run node tools/chart/values-schema.ts');
  });

  test('the schema\'s config takes every KubeProxyConfiguration field kproxy applies, except the chart\'s own', () => {
    const schema = JSON.parse(renderedSchema()) as { properties: { config: unknown } };
    interface Node { properties?: Readonly<Record<string, Node>> }
    const covered = (node: Node, prefix = ''): string[] => node.properties
      ? Object.entries(node.properties).flatMap(([key, child]) => covered(child, prefix ? `${prefix}.${key}` : key)) : [prefix];
    const applied = leaves().filter((leaf) => leaf.spec.noEffect === undefined && !CHART_OWNED.includes(leaf.path)).map((leaf) => leaf.path);
    assert.deepEqual(covered(schema.properties.config as Node).sort(), applied.sort());
  });

  test('Chart.yaml: appVersion is kproxy\'s version, the default image tag', async () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string; apiVersion: string };
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.appVersion, packageVersion);
    assert.equal(kproxyContainer(await renderChart()).image, `kproxy:${packageVersion}`);
    assert.equal(kproxyContainer(await renderChart({ image: { repository: 'registry.example/kproxy', tag: 'v9' } })).image, 'registry.example/kproxy:v9');
  });

  for (const mode of MODES) {
    test(`${mode}: the DaemonSet runs kproxy in ${mode} mode with only what the mode needs`, async () => {
      const objects = await renderChart({ proxyMode: mode, config: { clusterCIDR: '10.244.0.0/16' } });
      const ds = daemonSet(objects);
      const pod = ds.spec.template.spec;
      const container = kproxyContainer(objects);
      const expected = EXPECTED[mode];

      assert.equal(ds.metadata.namespace, 'kube-system');
      assert.equal(pod.hostNetwork, true);
      assert.equal(pod.priorityClassName, 'system-node-critical');
      assert.deepEqual(pod.tolerations, [{ key: 'CriticalAddonsOnly', operator: 'Exists' }, { operator: 'Exists' }]);
      assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
      assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
      assert.equal(pod.serviceAccountName, only(objects, 'ServiceAccount').metadata.name);
      assert.equal(container.command, undefined, 'the image\'s entrypoint (kproxy with its runtime flags) runs');
      assert.deepEqual(container.args, ['--config=/var/lib/kproxy/config.conf', '--hostname-override=$(NODE_NAME)']);
      assert.deepEqual(container.env, [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
      assert.deepEqual(container.ports.map((p) => [p.name, p.containerPort]), [['healthz', 10256], ['metrics', 10249]]);
      assert.deepEqual(container.livenessProbe.httpGet, { path: '/livez', port: 'healthz' });
      assert.deepEqual(container.readinessProbe.httpGet, { path: '/healthz', port: 'healthz' });
      assert.deepEqual(container.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });

      // Capabilities, not privileged, wherever the mode allows.
      const security = container.securityContext;
      assert.equal(security.privileged, expected.privileged);
      if (expected.caps) {
        assert.deepEqual(security.capabilities, { drop: ['ALL'], add: expected.caps });
        assert.equal(security.allowPrivilegeEscalation, false);
      } else {
        assert.equal(security.capabilities, undefined);
      }

      // Mounts: the config, the host's xtables lock and /lib/modules where the mode uses them.
      const mounts = Object.fromEntries(container.volumeMounts.map((m) => [m.name, m]));
      const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
      assert.deepEqual(mounts.config, { name: 'config', mountPath: '/var/lib/kproxy', readOnly: true });
      assert.deepEqual(volumes.config?.configMap, { name: only(objects, 'ConfigMap').metadata.name });
      assert.equal(mounts['xtables-lock'] !== undefined, expected.xtablesLock);
      assert.equal(mounts['lib-modules'] !== undefined, expected.libModules);
      if (expected.xtablesLock) {
        assert.equal(mounts['xtables-lock']?.mountPath, '/run/xtables.lock');
        assert.deepEqual(volumes['xtables-lock']?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });
      }
      if (expected.libModules) {
        assert.deepEqual(mounts['lib-modules'], { name: 'lib-modules', mountPath: '/lib/modules', readOnly: true });
        assert.deepEqual(volumes['lib-modules']?.hostPath, { path: '/lib/modules' });
      }
      assert.deepEqual(Object.keys(volumes).sort(), Object.keys(mounts).sort());

      // kproxy reads the ConfigMap and the args as the mode, with no warning (no unknown field).
      const { config, warnings } = await kproxyView(objects);
      assert.deepEqual(warnings, []);
      assert.equal(config.mode, mode);
      assert.equal(config.hostnameOverride, 'node-a');
      assert.deepEqual(config.clusterCIDRs, ['10.244.0.0/16']);
      assert.equal(config.kubeconfig, undefined, 'the pod\'s service account');
      assert.equal(config.healthzBindAddress, '0.0.0.0:10256');
      assert.equal(config.metricsBindAddress, '127.0.0.1:10249');
      assert.equal((parse(configText(objects)) as { mode: string }).mode, mode);

      // Kernel modes: a privileged init container applies the start-up settings (--init-only) with the same config.
      const init = initContainer(objects);
      assert.equal(init !== undefined, expected.init);
      if (init) {
        assert.equal(init.image, container.image);
        assert.deepEqual(init.args, [...container.args, '--init-only']);
        assert.deepEqual(init.env, container.env);
        assert.deepEqual(init.securityContext, { privileged: true });
        assert.deepEqual(init.volumeMounts, [mounts.config]);
        const initView = await kproxyView(objects, init);
        assert.deepEqual(initView.warnings, []);
        assert.equal(initView.config.initOnly, true);
        assert.equal(initView.config.mode, mode);
      }
    });
  }

  test('initContainer.enabled=false: no init container (the kernel\'s conntrack values stay)', async () => {
    assert.equal(initContainer(await renderChart({ initContainer: { enabled: false } })), undefined);
  });

  test('every object carries the app.kubernetes.io labels; the pods carry the selector', async () => {
    const objects = await renderChart({ serviceMonitor: { enabled: true }, config: { metricsBindAddress: '0.0.0.0:10249' } });
    assert.deepEqual(objects.map((o) => o.kind).sort(),
      ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Role', 'RoleBinding', 'Service', 'ServiceAccount', 'ServiceMonitor']);
    for (const object of objects) {
      const labels = object.metadata.labels ?? {};
      for (const key of ['name', 'instance', 'version', 'component', 'part-of', 'managed-by']) {
        assert.ok(labels[`app.kubernetes.io/${key}`], `${object.kind} ${object.metadata.name} lacks app.kubernetes.io/${key}`);
      }
      assert.equal(labels['app.kubernetes.io/version'], packageVersion);
    }
    const ds = daemonSet(objects);
    for (const [key, value] of Object.entries(ds.spec.selector.matchLabels)) assert.equal(ds.spec.template.metadata.labels[key], value);
  });

  test('RBAC: list+watch of Services, EndpointSlices and Nodes, create of Events in "default"; nothing else', async () => {
    const objects = await renderChart({}, { namespace: 'kube-system', release: 'kp' });
    const serviceAccount = only(objects, 'ServiceAccount');
    const subject = [{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace: 'kube-system' }];
    const clusterRole = only(objects, 'ClusterRole');
    assert.deepEqual(clusterRole.rules, [
      { apiGroups: [''], resources: ['services', 'nodes'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ]);
    const role = only(objects, 'Role');
    assert.equal(role.metadata.namespace, 'default');
    assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['events'], verbs: ['create'] }]);
    assert.deepEqual(only(objects, 'ClusterRoleBinding').subjects, subject);
    assert.deepEqual(only(objects, 'ClusterRoleBinding').roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole.metadata.name });
    assert.equal(only(objects, 'RoleBinding').metadata.namespace, 'default');
    assert.deepEqual(only(objects, 'RoleBinding').subjects, subject);
    assert.deepEqual(only(objects, 'RoleBinding').roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    const text = JSON.stringify([clusterRole.rules, role.rules]);
    assert.doesNotMatch(text, /\*|secrets/);
  });

  test('apiServer.host/port point the in-cluster client at the API server itself', async () => {
    const objects = await renderChart({ apiServer: { host: '192.0.2.10', port: 8443 } });
    const { env } = kproxyContainer(objects);
    assert.deepEqual(env.slice(1), [{ name: 'KUBERNETES_SERVICE_HOST', value: '192.0.2.10' }, { name: 'KUBERNETES_SERVICE_PORT', value: '8443' }]);
  });

  test('serviceProxyName, extraArgs and a moved health port reach the command line and the probes', async () => {
    const objects = await renderChart({
      serviceProxyName: 'kproxy', extraArgs: ['--v=2', '--iptables-variant=legacy'],
      config: { healthzBindAddress: '0.0.0.0:10266', metricsBindAddress: '127.0.0.1:10259' },
    });
    const container = kproxyContainer(objects);
    assert.deepEqual(container.args.slice(2), ['--service-proxy-name=kproxy', '--v=2', '--iptables-variant=legacy']);
    assert.deepEqual(container.ports.map((p) => p.containerPort), [10266, 10259]);
    const { config, warnings } = await kproxyView(objects);
    assert.deepEqual(warnings, []);
    assert.equal(config.serviceProxyName, 'kproxy');
    assert.equal(config.healthzBindAddress, '0.0.0.0:10266');
    assert.equal(config.log.verbosity, 2);
    assert.equal(config.modeSettings.variant, 'legacy');
  });

  test('a changed configuration changes the pod template (rolls the pods); other values do not', async () => {
    const checksum = async (values: object): Promise<string | undefined> =>
      daemonSet(await renderChart(values)).spec.template.metadata.annotations?.['checksum/config'];
    const base = await checksum({});
    assert.match(base ?? '', /^[0-9a-f]{64}$/);
    assert.notEqual(await checksum({ config: { iptables: { masqueradeAll: true } } }), base);
    assert.notEqual(await checksum({ proxyMode: 'nftables' }), base);
    assert.equal(await checksum({ resources: { requests: { cpu: '200m' } } }), base);
  });

  test('a ServiceMonitor and its headless Service only when enabled, on the metrics port', async () => {
    assert.equal((await renderChart()).some((o) => o.kind === 'ServiceMonitor' || o.kind === 'Service'), false);
    const objects = await renderChart({ serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } }, config: { metricsBindAddress: '0.0.0.0:10249' } });
    const service = only(objects, 'Service') as KubeObject & { spec: { clusterIP: string; ports: unknown; selector: unknown } };
    assert.equal(service.spec.clusterIP, 'None');
    assert.deepEqual(service.spec.ports, [{ name: 'metrics', port: 10249, targetPort: 'metrics', protocol: 'TCP' }]);
    assert.deepEqual(service.spec.selector, daemonSet(objects).spec.selector.matchLabels);
    const monitor = only(objects, 'ServiceMonitor') as KubeObject & { spec: { endpoints: Array<{ port: string; path: string; interval: string }>; selector: unknown } };
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(monitor.metadata.labels?.release, 'prom');
    assert.deepEqual(monitor.spec.selector, { matchLabels: daemonSet(objects).spec.selector.matchLabels });
    assert.deepEqual(monitor.spec.endpoints.map((e) => [e.port, e.path, e.interval]), [['metrics', '/metrics', '15s']]);
  });

  test('securityContext replaces the mode\'s', async () => {
    const container = kproxyContainer(await renderChart({ securityContext: { privileged: true } }));
    assert.deepEqual(container.securityContext, { privileged: true });
  });

  test('NOTES.txt tells how to check the rollout and where to troubleshoot', async () => {
    const result = await helm(['install', 'kp', CHART_DIR, '--dry-run=client', '--namespace', 'kube-system', '--set', 'proxyMode=nftables']);
    assert.equal(result.code, 0, result.stderr);
    const notes = result.stdout.slice(result.stdout.indexOf('NOTES:'));
    assert.match(notes, /kube-system\/kp-kproxy in nftables mode/);
    assert.match(notes, /rollout status daemonset\/kp-kproxy/);
    assert.match(notes, /nft list table/);
    assert.match(notes, /set apiServer\.host/);
    assert.match(notes, /docs\/troubleshooting\.md/);
  });

  // Each value is merged over values.yaml; each must be refused by the schema with a message naming the field.
  const BAD_VALUES: ReadonlyArray<{ readonly name: string; readonly values: object; readonly message: RegExp }> = [
    { name: 'unknown mode', values: { proxyMode: 'ebpf' }, message: /\/proxyMode': value must be one of/ },
    { name: 'misspelt top-level value', values: { proxymode: 'ipvs' }, message: /additional properties 'proxymode' not allowed/ },
    { name: 'unknown config field', values: { config: { iptables: { masqueradeBits: 14 } } }, message: /\/config\/iptables': additional properties 'masqueradeBits'/ },
    { name: 'mode set in config instead of proxyMode', values: { config: { mode: 'ipvs' } }, message: /\/config': additional properties 'mode'/ },
    { name: 'kubeconfig in config (the pod uses its service account)', values: { config: { clientConnection: { kubeconfig: '/x' } } }, message: /additional properties 'kubeconfig'/ },
    { name: 'masquerade bit out of range', values: { config: { iptables: { masqueradeBit: 32 } } }, message: /masqueradeBit': maximum: got 32, want 31/ },
    { name: 'duration without a unit', values: { config: { iptables: { syncPeriod: '30' } } }, message: /syncPeriod': '30' does not match pattern/ },
    { name: 'duration as a number', values: { config: { iptables: { minSyncPeriod: 1 } } }, message: /minSyncPeriod': got number, want null or string/ },
    { name: 'unknown iptables variant', values: { config: { iptables: { variant: 'both' } } }, message: /variant': value must be one of/ },
    { name: 'health server disabled (the probes need it)', values: { config: { healthzBindAddress: '' } }, message: /healthzBindAddress': '' does not match pattern/ },
    { name: 'bad bind address', values: { config: { metricsBindAddress: 'everywhere:10249' } }, message: /metricsBindAddress': 'everywhere:10249' does not match/ },
    { name: 'unknown detectLocalMode', values: { config: { detectLocalMode: 'PodCIDR' } }, message: /detectLocalMode': value must be one of/ },
    { name: 'API server port out of range', values: { apiServer: { host: '10.0.0.1', port: 70000 } }, message: /\/apiServer\/port': maximum/ },
    { name: 'API server host with a scheme', values: { apiServer: { host: 'https://10.0.0.1' } }, message: /\/apiServer\/host': .* does not match pattern/ },
    { name: 'image pull policy', values: { image: { pullPolicy: 'Sometimes' } }, message: /pullPolicy': value must be one of/ },
    { name: 'extra arg that is no flag', values: { extraArgs: ['iptables'] }, message: /\/extraArgs\/0': 'iptables' does not match pattern/ },
    { name: 'ServiceMonitor with metrics on loopback', values: { serviceMonitor: { enabled: true } }, message: /\/config\/metricsBindAddress': 'not' failed/ },
    { name: 'bad memory quantity', values: { resources: { limits: { memory: 'lots' } } }, message: /memory': 'lots' does not match pattern/ },
    { name: 'update strategy', values: { updateStrategy: { type: 'Recreate' } }, message: /updateStrategy\/type': value must be one of/ },
  ];
  for (const bad of BAD_VALUES) {
    test(`rejected by the schema: ${bad.name}`, async () => {
      const result = await helmTemplate(bad.values);
      assert.notEqual(result.code, 0, `rendered although it should not:\n${result.stdout.slice(0, 500)}`);
      assert.match(result.stderr, /values don't meet the specifications of the schema/);
      assert.match(result.stderr, bad.message);
    });
  }
});
