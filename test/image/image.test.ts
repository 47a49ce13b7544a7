// The container image, built from a clean checkout by tools/image/build.sh and run the way the chart runs it:
// the DaemonSet's args, env, capabilities, mounts and memory limit (test/image/pod.ts), the ServiceAccount's token
// mounted where the kubelet puts it, the API server given by apiServer.host/port, and the host network played by
// the node namespace of the netns harness. Per mode (a table of rows; ipvs has none: this kernel lacks IPVS),
// kproxy programs that namespace from a real kube-apiserver, real traffic flows through what it programmed, and
// SIGTERM stops it cleanly and leaves its rules. The iptables rows prove the variant choice: the host's
// pre-existing legacy or nft rules decide, for kproxy and for `iptables` run in the pod.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, kubeTestsDisabled } from '../kube/apiserver.ts';
import { eventually, serviceBody, sliceBody } from '../kube/harness.ts';
import { createCluster, KPROXY_NODE_ENV, KPROXY_NODE_FLAGS, type Cluster } from '../harness/index.ts';
import { renderChart, type KubeObject } from '../chart/helm.ts';
import { createObjects, serviceAccountToken, writePodFiles } from '../chart/install.ts';
import { buildImage, imageTestsDisabled, podman, podmanMissing, startContainer, type BuiltImage, type Container } from './podman.ts';
import { podmanPod } from './pod.ts';

const skip = imageTestsDisabled ? 'KPROXY_NO_IMAGE_TESTS=1'
  : kubeTestsDisabled ? 'KPROXY_NO_KUBE_TESTS=1'
    : process.env.KPROXY_NO_KERNEL_TESTS === '1' ? 'KPROXY_NO_KERNEL_TESTS=1' : false;
const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string; devDependencies: Record<string, string> };
const HEALTHZ = 'http://127.0.0.1:10256/healthz';

type Variant = 'legacy' | 'nft';

/** One way of running the image; `programmed` returns the kernel's evidence for a Service IP, or '' if absent. */
interface ModeRow {
  readonly name: string;
  readonly proxyMode: 'iptables' | 'nftables' | 'ipvs' | 'userspace';
  /** The node's state before kproxy starts (e.g. rules of another iptables user). */
  prepare?(cluster: Cluster): Promise<void>;
  /** What the mode programmed for this Service IP, read from the node namespace ('' when nothing). */
  programmed(cluster: Cluster, ip: string): Promise<string>;
  /** Checks from inside the running pod (podman exec). */
  inPod?(container: Container, ip: string): Promise<void>;
  /** Whether Service traffic still flows after kproxy stopped (kernel rules do, a relay does not). */
  readonly trafficAfterStop: boolean;
}

/** Until /healthz answers 200 in the node namespace; fails at once when the container exits. */
async function waitHealthy(container: Container, cluster: Cluster, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const code = container.exitCode();
    if (code !== undefined) throw new Error(`the container exited (${code}):\n${container.output().slice(-2000)}`);
    if ((await cluster.httpStatus(cluster.nodeNs, HEALTHZ)) === 200) return;
    if (Date.now() > deadline) throw new Error(`kproxy not healthy after ${timeoutMs} ms:\n${container.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const other = (variant: Variant): Variant => (variant === 'legacy' ? 'nft' : 'legacy');

async function natRules(cluster: Cluster, variant: Variant): Promise<string> {
  const save = await cluster.exec(cluster.nodeNs, `iptables-${variant}-save`, ['-t', 'nat']);
  return save.stdout;
}

/** iptables mode on a node whose other software already uses `variant`. */
function iptablesRow(variant: Variant): ModeRow {
  return {
    name: `iptables on a node already using iptables-${variant}`,
    proxyMode: 'iptables',
    async prepare(cluster) {
      // A few rules of "another iptables user" (a CNI plugin, the kubelet) in the host's variant.
      for (const source of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
        await cluster.exec(cluster.nodeNs, `iptables-${variant}`, ['-w', '-A', 'INPUT', '-s', source, '-j', 'ACCEPT']);
      }
    },
    async programmed(cluster, ip) {
      const rules = (await natRules(cluster, variant)).split('\n').filter((line) => line.includes('KPROXY-') && line.includes(ip));
      return rules.join('\n');
    },
    async inPod(container, ip) {
      // The other variant holds nothing of kproxy's ...
      const otherRules = await container.exec([`iptables-${other(variant)}-save`, '-t', 'nat']);
      assert.doesNotMatch(otherRules.stdout, /KPROXY-/, `kproxy programmed iptables-${other(variant)} too`);
      // ... and the pod's plain iptables commands show the variant kproxy programs.
      const version = await container.exec(['iptables', '-V']);
      assert.match(version.stdout, variant === 'legacy' ? /\(legacy\)/ : /\(nf_tables\)/, version.stdout + version.stderr);
      const listing = await container.exec(['iptables-save', '-t', 'nat']);
      assert.match(listing.stdout, new RegExp(`-d ${ip.replaceAll('.', '\\.')}/32 .*KPROXY-SVC-`));
      const six = await container.exec(['ip6tables', '-V']);
      assert.match(six.stdout, variant === 'legacy' ? /\(legacy\)/ : /\(nf_tables\)/);
    },
    trafficAfterStop: true,
  };
}

/** The relay puts Service IPs on its own interface (kproxy0 by default). */
const userspaceRow: ModeRow = {
  name: 'userspace',
  proxyMode: 'userspace',
  async programmed(cluster, ip) {
    const addresses = await cluster.exec(cluster.nodeNs, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'kproxy0'], { allowFailure: true });
    return addresses.stdout.split('\n').filter((line) => line.includes(` ${ip}/`)).join('\n');
  },
  trafficAfterStop: false,
};

/** nftables mode keeps its own table, `ip kproxy`; Service addresses are elements of its maps. */
const nftablesRow: ModeRow = {
  name: 'nftables',
  proxyMode: 'nftables',
  async programmed(cluster, ip) {
    const table = await cluster.exec(cluster.nodeNs, 'nft', ['list', 'table', 'ip', 'kproxy'], { allowFailure: true });
    return table.stdout.split('\n').filter((line) => line.includes(`${ip} . tcp . 80`)).join('\n');
  },
  async inPod(container, ip) {
    const table = await container.exec(['nft', 'list', 'table', 'ip', 'kproxy']);
    assert.match(table.stdout, new RegExp(`${ip.replaceAll('.', '\\.')} \\. tcp \\. 80`), table.stdout + table.stderr);
  },
  trafficAfterStop: true,
};

// ipvs has no kernel support on this machine (its kernel tests run in test/vm), so it has no row here.
const MODE_ROWS: readonly ModeRow[] = [iptablesRow('legacy'), iptablesRow('nft'), nftablesRow, userspaceRow];

describe('the kproxy image, run as the chart runs it', { skip }, () => {
  let image: BuiltImage;
  let plane: ControlPlane;
  let work: string;
  let rowCount = 0;

  before(async () => {
    const missing = podmanMissing();
    if (missing) throw new Error(missing);
    work = mkdtempSync(join(tmpdir(), 'kproxy-image-'));
    [image, plane] = await Promise.all([buildImage(), ControlPlane.start({ apiserverArgs: ['--allow-privileged=true'] })]);
    await plane.request('POST', '/api/v1/namespaces', { metadata: { name: 'web' } });
  });

  after(async () => {
    await plane?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('it builds from a clean checkout; size and layers', async (t) => {
    t.diagnostic(image.summary);
    process.stdout.write(`# ${image.summary}\n`);
    assert.ok(image.layers <= 8, `${image.layers} layers`);
    // A guard against shipping dev dependencies or test data: Debian slim + tools ≈ 100 MB, Node ≈ 120 MB, deps ≈ 55 MB.
    assert.ok(image.megabytes < 350, `${image.megabytes} MB`);
    const config = await podman(['image', 'inspect', '--format', '{{json .Config.Entrypoint}} {{json .Config.Cmd}}', image.tag]);
    assert.equal(config.stdout.trim(), '["/opt/kproxy/bin/kproxy.js"] null');
    const listing = await podman(['run', '--rm', '--network=none', '--entrypoint', 'sh', image.tag, '-c',
      'ls /opt/kproxy; ls /opt/kproxy/node_modules; node --version; for t in iptables-legacy iptables-nft ip6tables-legacy ip6tables-nft nft ipset conntrack nfacct ip modprobe ipvsadm; do command -v $t >/dev/null || echo "missing $t"; done']);
    assert.equal(listing.code, 0, listing.stderr);
    const lines = listing.stdout.split('\n');
    // What runs and nothing else (a new top-level folder shows here: runtime code, or one more line in .dockerignore).
    assert.deepEqual(lines.slice(0, 8), ['bin', 'controllers', 'image', 'kit', 'modes', 'node_modules', 'package.json', 'src']);
    // Dev dependencies stay out: TypeScript, and the `node` package (the project's Node for npm scripts, 120 MB).
    assert.ok(!lines.includes('typescript') && !lines.includes('node'), `dev dependencies in the image: ${lines.join(' ')}`);
    assert.ok(lines.includes(`v${packageJson.devDependencies.node}`), `the project's Node ${packageJson.devDependencies.node}: ${listing.stdout}`);
    assert.doesNotMatch(listing.stdout, /missing/);
  });

  for (const row of MODE_ROWS) {
    test(`${row.name}: programs its namespace, carries traffic, SIGTERM stops it and leaves the rules`, async () => {
      const index = rowCount++;
      const cluster = await createCluster({ pods: 2, podPorts: [8080], ipv6: false });
      const dir = join(work, `row${index}`);
      const nodeName = `image-node-${index}`;
      let container: Container | undefined;
      try {
        await plane.reachFrom((cmd, args) => cluster.spawn(cluster.nodeNs, cmd, args));
        await row.prepare?.(cluster);
        const release = `kp${index}`;
        const objects: KubeObject[] = await renderChart({
          proxyMode: row.proxyMode,
          image: { repository: image.tag.slice(0, image.tag.lastIndexOf(':')) },
          apiServer: { host: '127.0.0.1', port: Number(new URL(plane.server).port) },
          config: { clusterCIDR: '10.244.0.0/16' },
        }, { release });
        await createObjects(plane, objects);
        await plane.request('POST', '/api/v1/nodes', { metadata: { name: nodeName } });
        const token = await serviceAccountToken(plane, 'kube-system', `${release}-kproxy`);
        const files = writePodFiles(dir, plane, objects, token);
        const lock = join(dir, 'xtables.lock');
        writeFileSync(lock, '');
        // The node's kernel modules, read-only; a kernel without loadable modules (this machine's) has none.
        const modules = existsSync('/lib/modules') ? '/lib/modules' : join(dir, 'no-modules');
        mkdirSync(modules, { recursive: true });
        const pod = podmanPod(objects, {
          nodeName, nodeNs: cluster.nodeNs, configDir: files.configDir, serviceAccountDir: files.serviceAccountDir,
          hostPaths: { '/run/xtables.lock': lock, '/lib/modules': modules },
        });
        const objectImage = (objects.find((o) => o.kind === 'DaemonSet')?.spec as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec.containers[0]?.image;
        assert.equal(objectImage, image.tag, 'the chart names the built image');
        if (pod.init) {
          // The start-up settings first, as the kubelet runs init containers: to completion, exit 0.
          const init = startContainer(`kproxy-test-${process.pid}-${index}-init`, pod.init.runArgs, image.tag, pod.init.args);
          try {
            assert.equal(await init.exited, 0, init.output());
            assert.match(init.output(), /"msg":"Applied the start-up settings \(--init-only\)"/);
          } finally {
            await init.remove();
          }
          // kube-proxy's 24h instead of the kernel's 5 days: a per-namespace knob, now in the node's namespace.
          const established = await cluster.exec(cluster.nodeNs, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established']);
          assert.equal(established.stdout.trim(), '86400');
        }
        container = startContainer(`kproxy-test-${process.pid}-${index}`, pod.main.runArgs, image.tag, pod.main.args);

        await waitHealthy(container, cluster);
        assert.match(container.output(), new RegExp(`"msg":"Using ${row.proxyMode} proxier"`));

        // PID 1 is kproxy's Node, with the runtime flags and environment of bin/kproxy.js's shebang.
        const cmdline = (await container.exec(['cat', '/proc/1/cmdline'])).stdout.split('\0').filter((part) => part !== '');
        assert.deepEqual(cmdline, ['node', ...KPROXY_NODE_FLAGS, '/opt/kproxy/bin/kproxy.js', ...pod.main.args]);
        const environ = (await container.exec(['cat', '/proc/1/environ'])).stdout.split('\0');
        for (const [name, value] of Object.entries(KPROXY_NODE_ENV)) assert.ok(environ.includes(`${name}=${value}`), `${name}=${value} not in PID 1's environment`);

        // A Service and its endpoints through the API: the mode programs them and traffic flows.
        const service = `web-${index}`;
        await plane.request('POST', '/api/v1/namespaces/web/services', serviceBody(service));
        await plane.request('POST', '/apis/discovery.k8s.io/v1/namespaces/web/endpointslices',
          { ...sliceBody(`${service}-1`, service, []), endpoints: cluster.pods.map((p) => ({ addresses: [p.ip], conditions: { ready: true }, nodeName })) });
        const ip = ((await plane.request('GET', `/api/v1/namespaces/web/services/${service}`)).spec as { clusterIP: string }).clusterIP;
        await eventually(`${ip} programmed`, async () => (await row.programmed(cluster, ip)) !== '', 20_000);
        await eventually('traffic balanced over both pods', async () => {
          const got = await cluster.tcp(cluster.client.ns, ip, 80, { count: 10, timeoutMs: 1000 });
          return got.answers.pod1 !== undefined && got.answers.pod2 !== undefined && Object.keys(got.errors).length === 0;
        }, 20_000);
        await row.inPod?.(container, ip);

        // Troubleshooting from inside the pod: plan and trace read the cluster with the pod's config and token.
        const config = '--config=/var/lib/kproxy/config.conf';
        const plan = await container.exec(['kproxy', 'plan', config]);
        assert.match(plan.stdout, new RegExp(`web/${service}:http +TCP +${ip.replaceAll('.', '\\.')}:80 `), plan.stdout + plan.stderr);
        const trace = await container.exec(['kproxy', 'trace', config, '--src', cluster.client.ip, '--dst', `${ip}:80`]);
        assert.match(trace.stdout, new RegExp(`\\(${row.proxyMode} mode\\): .*2 endpoints`), trace.stdout + trace.stderr);

        // SIGTERM to PID 1: a clean exit within seconds, and the rules stay.
        const before = await row.programmed(cluster, ip);
        const stopping = Date.now();
        await container.signal('TERM');
        const code = await Promise.race([container.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000))]);
        assert.equal(code, 0, container.output().slice(-2000));
        assert.ok(Date.now() - stopping < 10_000, `stopped in ${Date.now() - stopping} ms`);
        assert.match(container.output(), /"msg":"Shutting down; programmed rules stay in place"/);
        assert.equal(await row.programmed(cluster, ip), before, 'the rules changed on SIGTERM');
        const after = await cluster.tcp(cluster.client.ns, ip, 80, { count: 4, timeoutMs: 1000 });
        if (row.trafficAfterStop) assert.deepEqual(after.errors, {}, 'traffic stopped with kproxy');
        else assert.equal(Object.keys(after.answers).length, 0, 'a relay answered after it stopped');
      } finally {
        await container?.remove();
        await cluster.destroy();
      }
    });
  }
});
