import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { kproxy, startKproxy, fakeModesDir, waitFor, ROOT, FIXTURES, EXAMPLE } from './helpers.ts';

const NO_SERVERS = ['--healthz-bind-address=127.0.0.1:0', '--metrics-bind-address=127.0.0.1:0'];

/** One line on stderr, naming the problem, and no stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

describe('kproxy command line', () => {
  test('--help lists every flag', () => {
    const { status, stdout } = kproxy(['--help']);
    assert.equal(status, 0);
    for (const flag of ['--proxy-mode', '--config', '--kubeconfig', '--master', '--hostname-override', '--cluster-cidr',
      '--nodeport-addresses', '--masquerade-all', '--iptables-sync-period', '--iptables-min-sync-period', '--healthz-bind-address',
      '--metrics-bind-address', '--cleanup', '--init-only', '--write-config-to', '--manifests', '--log-format', '--service-proxy-name',
      '--sync-period', 'plan', 'trace']) {
      assert.ok(stdout.includes(flag), `--help does not mention ${flag}`);
    }
    assert.match(stdout, /^ {2}-v, --v\s/m);
  });

  test('a bad config file value: exit 2, one line naming field and value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-cli-'));
    try {
      const path = join(dir, 'bad.yaml');
      writeFileSync(path, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  masqueradeBit: 40\n');
      const result = kproxy(['--config', path, '--manifests', EXAMPLE]);
      assert.equal(result.status, 2);
      assertOneLineError(result.stderr, /^kproxy: invalid iptables\.masqueradeBit 40: must be an integer from 0 to 31 \(KP_ERR_CONFIG_INVALID\)$/);
      writeFileSync(path, 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: [iptables\n');
      const broken = kproxy(['--config', path]);
      assert.equal(broken.status, 2);
      assertOneLineError(broken.stderr, /bad\.yaml line \d+: .*\(KP_ERR_CONFIG_UNREADABLE\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad flag value: exit 2, one line', () => {
    const result = kproxy(['--min-sync-period', 'soon', '--manifests', EXAMPLE]);
    assert.equal(result.status, 2);
    assertOneLineError(result.stderr, /^kproxy: invalid --min-sync-period "soon": is not a duration/);
  });

  test('a bad iptables variant, from the flag or from KPROXY_IPTABLES_VARIANT: exit 2, one line naming where it came from', () => {
    const fromEnv = kproxy(['--proxy-mode', 'iptables', '--manifests', EXAMPLE], { KPROXY_IPTABLES_VARIANT: 'iptables-nftables' });
    assert.equal(fromEnv.status, 2);
    assertOneLineError(fromEnv.stderr, /^kproxy: invalid KPROXY_IPTABLES_VARIANT "iptables-nftables": must be legacy, nft or auto \(KP_ERR_CONFIG_INVALID\)$/);
    const fromFlag = kproxy(['--iptables-variant', 'new', '--manifests', EXAMPLE], { KPROXY_IPTABLES_VARIANT: 'legacy' });
    assert.equal(fromFlag.status, 2);
    assertOneLineError(fromFlag.stderr, /^kproxy: invalid --iptables-variant "new"/);
  });

  test('--write-config-to writes the effective configuration and exits 0; an unwritable path is one line, exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-cli-'));
    try {
      const path = join(dir, 'out.yaml');
      const result = kproxy(['--write-config-to', path, '--proxy-mode=nftables', '--iptables-sync-period=10s', '--log-format=text']);
      assert.equal(result.status, 0, result.stderr);
      const written = readFileSync(path, 'utf8');
      assert.match(written, /^kind: KubeProxyConfiguration$/m);
      assert.match(written, /^mode: nftables$/m);
      assert.match(written, /^nftables:\n(?: {2}.*\n)*? {2}syncPeriod: 10s$/m);
      const bad = kproxy(['--write-config-to', join(dir, 'missing', 'out.yaml')]);
      assert.equal(bad.status, 2);
      assertOneLineError(bad.stderr, /^kproxy: invalid --write-config-to ".*missing\/out\.yaml": cannot be written \(ENOENT\) \(KP_ERR_CONFIG_INVALID\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('plan output into a pipe read late is whole (nothing cut at exit)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-big-plan-'));
    try {
      const services = Array.from({ length: 400 }, (_, i) => [
        'apiVersion: v1', 'kind: Service', `metadata: {name: s${i}, namespace: default}`,
        `spec: {type: ClusterIP, clusterIP: 10.96.${i >> 8}.${i & 255}, ports: [{port: 80, protocol: TCP}]}`,
      ].join('\n'));
      writeFileSync(join(dir, 'services.yaml'), `${services.join('\n---\n')}\n`);
      const child = startKproxy(['plan', '--manifests', dir, '--format', 'json']);
      child.stdout?.pause();
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      await new Promise((resolve) => setTimeout(resolve, 1500)); // the command is done by now, the pipe full
      const chunks: Buffer[] = [];
      child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
      child.stdout?.resume();
      assert.equal(await exited, 0);
      const output = Buffer.concat(chunks).toString();
      assert.ok(output.length > 1 << 17, `more than two pipe buffers (${output.length} bytes)`);
      assert.equal((JSON.parse(output) as { state: { families: { IPv4: { services: unknown[] } } } }).state.families.IPv4.services.length, 400);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('plan and trace on a manifest that does not parse: exit 2, one line naming the file and the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kproxy-bad-manifest-'));
    try {
      const file = join(dir, 'cluster.yaml');
      writeFileSync(file, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   namespace: default\n');
      for (const args of [['plan'], ['trace', '--src', '10.0.0.1', '--dst', '10.96.0.10:80']]) {
        const result = kproxy([...args, '--manifests', dir]);
        assert.equal(result.status, 2, args[0]);
        assert.equal(result.stdout, '', 'nothing is printed as if the file were empty');
        assertOneLineError(result.stderr, new RegExp(`^kproxy: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} line 4: .*\\(KP_ERR_MANIFEST_INVALID\\)$`));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the kubeadm KubeProxyConfiguration (and its ConfigMap) loads without a warning', () => {
    for (const file of ['kubeadm-kube-proxy.conf', 'kubeadm-kube-proxy-configmap.yaml']) {
      const result = kproxy(['plan', '--config', join(FIXTURES, file), '--manifests', EXAMPLE, '--format', 'json']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr, '', `unexpected stderr for ${file}: ${result.stderr}`);
      assert.equal((JSON.parse(result.stdout) as { state: { settings: { masqueradeBit: number } } }).state.settings.masqueradeBit, 14);
    }
  });

  test('plan --format json prints the desired state of the example', () => {
    const result = kproxy(['plan', '--manifests', EXAMPLE, '--format', 'json', '--cluster-cidr', '10.244.0.0/16']);
    assert.equal(result.status, 0, result.stderr);
    const { state } = JSON.parse(result.stdout) as { state: { node: { name: string }; families: { IPv4: { services: Array<{ key: string; frontends: Array<{ kind: string }> }>; localDetector: { kind: string } } } } };
    assert.equal(state.node.name, 'worker-1', 'the node name comes from the manifest Node');
    const services = state.families.IPv4.services;
    assert.deepEqual(services.map((s) => s.key), ['default/api:grpc', 'default/shop:https', 'default/web:http', 'kube-system/kube-dns:dns', 'kube-system/kube-dns:dns-tcp']);
    const kinds = new Set(services.flatMap((s) => s.frontends.map((f) => f.kind)));
    assert.deepEqual([...kinds].sort(), ['ClusterIP', 'ExternalIP', 'LoadBalancer', 'NodePort']);
    assert.equal(state.families.IPv4.localDetector.kind, 'ClusterCIDR');
  });

  test('plan (text) and plan with a mode: the table, then the rendering', () => {
    const { dir } = fakeModesDir();
    try {
      const table = kproxy(['plan', '--manifests', EXAMPLE]);
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, /^ {2}SERVICE\s+PROTO\s+FRONTENDS/m);
      assert.match(table.stdout, /default\/web:http\s+TCP\s+10\.96\.10\.1:80 node:30080/);
      const rendered = kproxy(['plan', '--manifests', EXAMPLE, '--proxy-mode', 'iptables'], { KPROXY_MODES_DIR: dir });
      assert.equal(rendered.status, 0, rendered.stderr);
      assert.match(rendered.stdout, /default\/web:http[\s\S]*--- iptables ---\nFAKE RULES\n$/);
      const json = JSON.parse(kproxy(['plan', '--manifests', EXAMPLE, '--proxy-mode', 'iptables', '--format', 'json'], { KPROXY_MODES_DIR: dir }).stdout) as { mode: string; rendered: string };
      assert.deepEqual([json.mode, json.rendered], ['iptables', 'FAKE RULES\n']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('trace prints the verdict of the mode', () => {
    const { dir } = fakeModesDir();
    try {
      const result = kproxy(['trace', '--manifests', EXAMPLE, '--proxy-mode', 'iptables', '--src', '10.244.1.5', '--dst', '10.96.10.1:80'], { KPROXY_MODES_DIR: dir });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, 'TCP 10.244.1.5 -> 10.96.10.1:80 from pod (iptables mode): dropped\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('unknown mode and modes not in this build fail clearly with exit 2', () => {
    const unknown = kproxy(['--proxy-mode', 'bogus', '--manifests', EXAMPLE]);
    assert.equal(unknown.status, 2);
    assertOneLineError(unknown.stderr, /^kproxy: invalid --proxy-mode "bogus": must be one of iptables, ipvs, nftables, userspace/);
    // Against an empty modes folder every mode is "not built"; the real folder is checked the same way.
    const empty = mkdtempSync(join(tmpdir(), 'kproxy-no-modes-'));
    try {
      for (const [modesDir, modes] of [[empty, ['nftables', 'ipvs', 'iptables']], [join(ROOT, 'modes'), ['nftables', 'ipvs']]] as const) {
        for (const mode of modes) {
          if (existsSync(join(modesDir, mode, 'index.ts'))) continue; // built by now: covered by that mode's tests
          const result = kproxy(['--proxy-mode', mode, '--manifests', EXAMPLE, ...NO_SERVERS], { KPROXY_MODES_DIR: modesDir });
          assert.equal(result.status, 2, `${mode}: ${result.stderr}`);
          assertOneLineError(result.stderr, new RegExp(`^kproxy: proxy mode ${mode} is not available in this build \\(KP_ERR_MODE_UNAVAILABLE\\)$`));
        }
      }
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('no source: without --manifests, kubeconfig, --master or a cluster, one clear line and exit 2', () => {
    const { dir } = fakeModesDir();
    try {
      const result = kproxy(['--proxy-mode', 'iptables', ...NO_SERVERS, '--log-format', 'text'],
        { KPROXY_MODES_DIR: dir, KUBERNETES_SERVICE_HOST: '', KUBECONFIG: '' });
      assert.equal(result.status, 2, result.stderr);
      const last = result.stderr.trim().split('\n').at(-1) ?? '';
      assert.match(last, /^kproxy: .*(--manifests|in a cluster).* \(KP_ERR_SOURCE_UNAVAILABLE\)$/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--bind-address-hard-fail: a health port already in use is one line with its code, exit 1, no stack trace', async () => {
    const { dir } = fakeModesDir();
    const { taken, port } = await takeLoopbackPort();
    try {
      const result = kproxy(['--manifests', EXAMPLE, '--healthz-bind-address', `127.0.0.1:${port}`, '--metrics-bind-address=',
        '--bind-address-hard-fail', '--log-format', 'text'], { KPROXY_MODES_DIR: dir });
      assert.equal(result.status, 1, result.stderr);
      const last = result.stderr.trim().split('\n').at(-1) ?? '';
      assert.equal(last, `kproxy: health server: cannot listen on 127.0.0.1:${port}: EADDRINUSE (KP_ERR_LISTEN_FAILED)`);
      assert.doesNotMatch(result.stderr, /Unexpected error|\n\s+at /);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a health port already in use (the old proxy still holds it): keep running, retry every 5 s, serve once free', async () => {
    const { dir } = fakeModesDir();
    const { taken, port } = await takeLoopbackPort();
    const child = startKproxy(['--manifests', EXAMPLE, '--healthz-bind-address', `127.0.0.1:${port}`, '--metrics-bind-address=',
      '--log-format', 'text'], { KPROXY_MODES_DIR: dir });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => (/cannot listen on .*EADDRINUSE.*retrying every 5s/.test(stderr) ? true : undefined), 'the retry warning');
      assert.equal(child.exitCode, null, 'still running');
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      let status: number | undefined;
      for (const end = Date.now() + 10_000; status !== 200 && Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
        status = (await fetch(`http://127.0.0.1:${port}/livez`).catch(() => undefined))?.status;
      }
      assert.equal(status, 200, stderr);
      assert.match(stderr, /health server is listening now/);
    } finally {
      taken.close();
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--cleanup runs the mode cleanup and exits 0', () => {
    const { dir, calls } = fakeModesDir();
    try {
      const result = kproxy(['--cleanup', '--proxy-mode', 'iptables', '--log-format', 'text'], { KPROXY_MODES_DIR: dir });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { call: string }).call), ['cleanup']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A loopback port held by another server, as an old kube-proxy would hold 10256. */
async function takeLoopbackPort(): Promise<{ taken: Server; port: number }> {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const address = taken.address();
  return { taken, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

describe('kproxy run', () => {
  test('logs the mode, programs after the first state, follows manifest edits, and stops quickly on SIGTERM leaving rules in place', async () => {
    const { dir, calls } = fakeModesDir();
    const manifests = mkdtempSync(join(tmpdir(), 'kproxy-run-'));
    cpSync(EXAMPLE, manifests, { recursive: true });
    const child = startKproxy(['--manifests', manifests, '--min-sync-period=0s', '--log-format=text', ...NO_SERVERS], { KPROXY_MODES_DIR: dir });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const records = (): Array<{ call: string; full?: boolean; services?: string[]; node?: string }> =>
      readFileSync(calls, 'utf8').trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { call: string });
    try {
      await waitFor(() => (records().some((r) => r.call === 'sync') ? true : undefined), 'the first sync');
      assert.equal(stderr.match(/Using iptables proxier/g)?.length, 1, stderr);
      const first = records().find((r) => r.call === 'sync');
      assert.equal(first?.full, true);
      assert.equal(first?.node, 'worker-1');
      assert.equal(first?.services?.length, 5);

      // Remove a service from the watched folder: a partial sync without it follows.
      const services = readFileSync(join(manifests, 'services.yaml'), 'utf8');
      writeFileSync(join(manifests, 'services.yaml'), services.split('\n---\n').filter((doc) => !doc.includes('name: api\n')).join('\n---\n'));
      const second = await waitFor(() => records().filter((r) => r.call === 'sync')[1], 'the sync after the edit');
      assert.equal(second.full, false);
      assert.equal(second.services?.includes('default/api:grpc'), false);

      const sentAt = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, stderr);
      assert.ok(Date.now() - sentAt < 3000, `took ${Date.now() - sentAt} ms to stop`);
      const calledOnExit = records().map((r) => r.call);
      assert.equal(calledOnExit.at(-1), 'stop');
      assert.equal(calledOnExit.includes('cleanup'), false, 'SIGTERM must leave programmed state in place');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      rmSync(manifests, { recursive: true, force: true });
    }
  });
});
