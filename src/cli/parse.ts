// The command line: kube-proxy's flags (so kproxy can replace it in a DaemonSet as is) plus kproxy's own,
// and the `plan` / `trace` subcommands. Parsing only: no defaults here (an unset flag must not override the
// config file), no validation beyond shape (src/config does that, with one-line errors).
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { UsageError } from '../errors.ts';
import type { FlagValues } from '../config/types.ts';
import type { PacketOrigin } from '../model/trace.ts';

export type OutputFormat = 'text' | 'json';

export interface TraceRequest {
  readonly src: string;
  /** "IP:PORT[/PROTO]" or "[IPv6]:PORT[/PROTO]" as typed; parsed by the trace command. */
  readonly dst: string;
  readonly from?: PacketOrigin;
}

export type CliCommand =
  | { readonly kind: 'run'; readonly flags: FlagValues }
  | { readonly kind: 'plan'; readonly flags: FlagValues; readonly format: OutputFormat }
  | { readonly kind: 'trace'; readonly flags: FlagValues; readonly format: OutputFormat; readonly trace: TraceRequest }
  /** --help or --version: print `output` and exit 0. */
  | { readonly kind: 'print'; readonly output: string };

const KUBE_PROXY_GROUP = 'kube-proxy flags:';
const KPROXY_GROUP = 'kproxy flags:';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function globalOptions(parser: Argv): Argv {
  return parser
    .option('proxy-mode', { type: 'string', description: 'Which proxy mode to use: iptables (default), ipvs, nftables or userspace' })
    .option('config', { type: 'string', description: 'Path to a KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1, as kubeadm writes it); flags given explicitly override it' })
    .option('kubeconfig', { type: 'string', description: 'Path to a kubeconfig file with authorization information' })
    .option('master', { type: 'string', description: 'The address of the Kubernetes API server (overrides any value in kubeconfig)' })
    .option('hostname-override', { type: 'string', description: 'Use this name to identify the node instead of the actual hostname' })
    .option('bind-address-hard-fail', { type: 'boolean', description: 'Exit when the health or metrics server cannot listen, instead of retrying every 5 s' })
    .option('bind-address', { type: 'string', description: 'Overrides kube-proxy\'s idea of the primary node IP (default 0.0.0.0)' })
    .option('cluster-cidr', { type: 'string', description: 'The CIDR range(s) of the pods in the cluster (comma-separated, at most one per family); traffic from outside it is treated as external' })
    .option('nodeport-addresses', { type: 'string', description: 'Comma-separated CIDRs (or "primary") of the node addresses NodePorts are served on; default: all local addresses' })
    .option('masquerade-all', { type: 'boolean', description: 'SNAT all traffic sent via Service cluster IPs' })
    .option('iptables-masquerade-bit', { type: 'number', description: 'The bit of the fwmark space (0..31) used to mark packets to SNAT (default 14)' })
    .option('sync-period', { type: 'string', description: 'Maximum interval between full resyncs of the programmed rules, e.g. "30s", "1m0s" (default 30s)' })
    .option('min-sync-period', { type: 'string', description: 'Minimum interval between rule syncs; bursts of changes are coalesced, e.g. "1s" (default 1s)' })
    .option('healthz-bind-address', { type: 'string', description: 'IP:port for the health check server (default 0.0.0.0:10256); empty disables it' })
    .option('metrics-bind-address', { type: 'string', description: 'IP:port for the metrics server (default 127.0.0.1:10249); empty disables it' })
    .option('cleanup', { type: 'boolean', description: 'Remove everything the selected proxy mode programmed on this node, then exit' })
    .option('v', { type: 'number', description: 'Log verbosity: 0-1 info, 2-3 debug, 4 and above trace' })
    .group(['proxy-mode', 'config', 'kubeconfig', 'master', 'hostname-override', 'bind-address', 'bind-address-hard-fail', 'cluster-cidr', 'nodeport-addresses',
      'masquerade-all', 'iptables-masquerade-bit', 'sync-period', 'min-sync-period', 'healthz-bind-address', 'metrics-bind-address',
      'cleanup', 'v'], KUBE_PROXY_GROUP)
    .option('manifests', { type: 'string', description: 'A YAML/JSON file or folder of Services, EndpointSlices and one Node to use instead of the API server (watched for changes)' })
    .option('log-format', { type: 'string', description: 'Log format: json (default) or text' })
    .option('iptables-variant', { type: 'string', description: 'Which iptables backend to program: legacy, nft or auto (default: the one that already holds rules, as iptables-wrapper does)' })
    .option('service-proxy-name', { type: 'string', description: 'Serve the Services labelled service.kubernetes.io/service-proxy-name=<this value> (by default such Services are left to their own proxy)' })
    .group(['manifests', 'log-format', 'service-proxy-name', 'iptables-variant'], KPROXY_GROUP);
}

function buildParser(): Argv {
  return globalOptions(yargs())
    .scriptName('kproxy')
    .usage('kproxy: a kube-proxy replacement (iptables, nftables, ipvs, userspace)\n\nUsage: kproxy [flags]  (run the proxy)')
    .command('$0', 'Run the proxy on this node')
    .command('plan', 'Print what this node would program, without touching the kernel', (y) => y
      .option('format', { type: 'string', description: 'Output format: text (default) or json' })
      .example('kproxy plan --manifests examples/basic --format json', 'the desired state as JSON')
      .example('kproxy plan --manifests examples/basic --proxy-mode iptables', 'also the iptables rules'))
    .command('trace', 'Show what the proxy mode does with one packet', (y) => y
      .option('src', { type: 'string', description: 'Source IP address of the packet' })
      .option('dst', { type: 'string', description: 'Destination as IP:PORT[/PROTO] ([IPv6]:PORT[/PROTO]); PROTO is TCP (default), UDP or SCTP' })
      .option('from', { type: 'string', description: 'Where the packet comes from: pod (default), node or external' })
      .option('format', { type: 'string', description: 'Output format: text (default) or json' })
      .example('kproxy trace --manifests examples/basic --proxy-mode iptables --src 10.244.1.5 --dst 10.96.0.10:80', ''))
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .strict()
    .wrap(120);
}

/** Parse `args` (without node and the script path). Throws UsageError (one line) on a bad command line. */
export async function parseCommandLine(args: readonly string[]): Promise<CliCommand> {
  const parser = buildParser();
  let failure: Error | undefined;
  let helpOutput = '';
  const argv = await new Promise<Record<string, unknown>>((resolve) => {
    void parser.parseAsync([...args], {}, (err: Error | undefined, parsed: unknown, output: string) => {
      failure = err ?? undefined;
      helpOutput = output;
      resolve(parsed as Record<string, unknown>);
    });
  });
  if (failure) throw new UsageError(`${lastLine(failure.message)}; see kproxy --help`);
  if (helpOutput !== '') return { kind: 'print', output: helpOutput };

  const positional = Array.isArray(argv._) ? argv._.map(String) : [];
  const command = positional[0] ?? 'run';
  if (positional.length > 1) throw new UsageError(`unexpected argument ${positional[1]}; see kproxy --help`);
  const flags = flagValues(argv);
  if (command === 'plan') return { kind: 'plan', flags, format: outputFormat(argv.format) };
  if (command === 'trace') {
    const src = stringOption(argv, 'src');
    const dst = stringOption(argv, 'dst');
    if (src === undefined) throw new UsageError('kproxy trace needs --src IP');
    if (dst === undefined) throw new UsageError('kproxy trace needs --dst IP:PORT[/PROTO]');
    const from = origin(argv.from);
    return { kind: 'trace', flags, format: outputFormat(argv.format), trace: { src, dst, ...(from !== undefined && { from }) } };
  }
  return { kind: 'run', flags };
}

function flagValues(argv: Record<string, unknown>): FlagValues {
  const nodeport = argv['nodeport-addresses'];
  const values: Record<string, unknown> = {
    proxyMode: stringOption(argv, 'proxy-mode'),
    config: stringOption(argv, 'config'),
    kubeconfig: stringOption(argv, 'kubeconfig'),
    master: stringOption(argv, 'master'),
    hostnameOverride: stringOption(argv, 'hostname-override'),
    bindAddress: stringOption(argv, 'bind-address'),
    bindAddressHardFail: booleanOption(argv, 'bind-address-hard-fail'),
    clusterCidr: stringOption(argv, 'cluster-cidr'),
    nodeportAddresses: Array.isArray(nodeport) ? nodeport.map(String) : typeof nodeport === 'string' ? nodeport : undefined,
    masqueradeAll: booleanOption(argv, 'masquerade-all'),
    iptablesMasqueradeBit: numberOption(argv, 'iptables-masquerade-bit'),
    syncPeriod: stringOption(argv, 'sync-period'),
    minSyncPeriod: stringOption(argv, 'min-sync-period'),
    healthzBindAddress: stringOption(argv, 'healthz-bind-address'),
    metricsBindAddress: stringOption(argv, 'metrics-bind-address'),
    cleanup: booleanOption(argv, 'cleanup'),
    v: numberOption(argv, 'v'),
    manifests: stringOption(argv, 'manifests'),
    logFormat: stringOption(argv, 'log-format'),
    serviceProxyName: stringOption(argv, 'service-proxy-name'),
    iptablesVariant: stringOption(argv, 'iptables-variant'),
  };
  // Drop unset flags so that `flag ?? file` keeps the file's value.
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as FlagValues;
}

/** A flag given twice: the last one wins, as with kube-proxy's pflag. */
function last(value: unknown): unknown {
  return Array.isArray(value) ? value.at(-1) : value;
}

function stringOption(argv: Record<string, unknown>, name: string): string | undefined {
  const value = last(argv[name]);
  return value === undefined ? undefined : String(value);
}

function booleanOption(argv: Record<string, unknown>, name: string): boolean | undefined {
  const value = last(argv[name]);
  return typeof value === 'boolean' ? value : undefined;
}

function numberOption(argv: Record<string, unknown>, name: string): number | undefined {
  const value = last(argv[name]);
  return typeof value === 'number' ? value : undefined;
}

function outputFormat(value: unknown): OutputFormat {
  const text = last(value);
  if (text === undefined || text === 'text') return 'text';
  if (text === 'json') return 'json';
  throw new UsageError(`invalid --format ${JSON.stringify(text)}: must be text or json`);
}

function origin(value: unknown): PacketOrigin | undefined {
  const text = last(value);
  if (text === undefined) return undefined;
  if (text === 'pod' || text === 'node' || text === 'external') return text;
  throw new UsageError(`invalid --from ${JSON.stringify(text)}: must be pod, node or external`);
}

function lastLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.join(' ');
}
