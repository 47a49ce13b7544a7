// The command line: kube-proxy's flags, read as kube-proxy's flag library (pflag) reads them, so that a
// DaemonSet's arguments mean the same here; kproxy's own flags; and the `plan` / `trace` subcommands. Parsing
// only: values stay raw (src/config checks them and applies kube-proxy's precedence), nothing is defaulted.
//
// pflag's rules: --name=value or --name value; booleans (and --version) take a value only as --name=value;
// -v 2, -v=2 and -v2; "_" in a name reads as "-"; a list flag given twice appends; any other flag given twice
// keeps the last; "--" ends the flags.
import { UsageError } from '../errors.ts';
import { packageVersion } from '../version.ts';
import { FLAGS, accumulates, flagNamed, flagWithShort, takesOptionalValue, type FlagKind, type FlagSpec, type FlagValue, type FlagValues } from '../config/flags.ts';
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

type Subcommand = 'plan' | 'trace';

/** Options of the subcommands (plain strings). */
const SUBCOMMAND_FLAGS: Readonly<Record<Subcommand, Readonly<Record<string, string>>>> = {
  plan: { format: 'Output format: text (default) or json' },
  trace: {
    src: 'Source IP address of the packet',
    dst: 'Destination as IP:PORT[/PROTO] ([IPv6]:PORT[/PROTO]); PROTO is TCP (default), UDP or SCTP',
    from: 'Where the packet comes from: pod (default), node or external',
    format: 'Output format: text (default) or json',
  },
};

interface Scan {
  readonly flags: Record<string, FlagValue>;
  readonly options: Record<string, string>;
  readonly positional: string[];
}

/** Parse `args` (without node and the script path). Throws UsageError (one line) on a bad command line. */
export async function parseCommandLine(args: readonly string[]): Promise<CliCommand> {
  const scan = scanArguments(args);
  const [command, extra] = scan.positional;
  if (command !== undefined && command !== 'plan' && command !== 'trace') {
    throw new UsageError(`unknown command ${JSON.stringify(command)} (kproxy takes no arguments; commands: plan, trace); see kproxy --help`);
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}; see kproxy --help`);
  for (const option of Object.keys(scan.options)) {
    if (command === undefined || SUBCOMMAND_FLAGS[command][option] === undefined) {
      throw new UsageError(`unknown flag --${option}${command === undefined ? '' : ` for kproxy ${command}`}; see kproxy --help`);
    }
  }
  if (scan.flags.help === true) return { kind: 'print', output: helpText(command) };
  // --version and --version=raw print; --version=vX.Y.Z (kube-proxy: set the reported version) runs, with a warning.
  const version = scan.flags.version;
  if (version === true || version === 'true' || version === 'raw') return { kind: 'print', output: versionText(String(version)) };

  const flags: FlagValues = scan.flags;
  if (command === 'plan') return { kind: 'plan', flags, format: outputFormat(scan.options.format) };
  if (command === 'trace') {
    const { src, dst } = scan.options;
    if (src === undefined) throw new UsageError('kproxy trace needs --src IP');
    if (dst === undefined) throw new UsageError('kproxy trace needs --dst IP:PORT[/PROTO]');
    const from = origin(scan.options.from);
    return { kind: 'trace', flags, format: outputFormat(scan.options.format), trace: { src, dst, ...(from !== undefined && { from }) } };
  }
  return { kind: 'run', flags };
}

function scanArguments(args: readonly string[]): Scan {
  const scan: Scan = { flags: {}, options: {}, positional: [] };
  const subcommand = (): Subcommand | undefined => {
    const first = scan.positional[0];
    return first === 'plan' || first === 'trace' ? first : undefined;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      scan.positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      scan.positional.push(arg);
      continue;
    }
    const long = arg.startsWith('--');
    const body = arg.slice(long ? 2 : 1);
    const eq = body.indexOf('=');
    let name = (eq < 0 ? body : body.slice(0, eq)).replaceAll('_', '-');
    let inline: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    let spec: FlagSpec | undefined;
    if (long) {
      spec = flagNamed(name);
    } else {
      // -v2 / -v=2 / -v 2, -h
      spec = flagWithShort(body[0] ?? '');
      if (spec === undefined) throw new UsageError(`unknown shorthand flag ${JSON.stringify(body[0] ?? '')} in ${arg}; see kproxy --help`);
      name = spec.name;
      const rest = body.slice(1);
      inline = rest === '' ? undefined : rest.startsWith('=') ? rest.slice(1) : rest;
    }
    const next = (): string => {
      const value = args[i + 1];
      if (value === undefined) throw new UsageError(`flag needs an argument: ${long ? `--${name}` : `-${body[0] ?? ''}`}; see kproxy --help`);
      i++;
      return value;
    };
    if (spec === undefined) {
      const sub = subcommand();
      const options = sub === undefined ? undefined : SUBCOMMAND_FLAGS[sub];
      if (options?.[name] === undefined && !isSubcommandOption(name)) throw new UsageError(`unknown flag --${name}; see kproxy --help`);
      scan.options[name] = inline ?? next();
      continue;
    }
    const value: FlagValue = takesOptionalValue(spec.kind) ? inline ?? true : inline ?? next();
    store(scan.flags, spec, value);
  }
  return scan;
}

function isSubcommandOption(name: string): boolean {
  return Object.values(SUBCOMMAND_FLAGS).some((options) => options[name] !== undefined);
}

function store(flags: Record<string, FlagValue>, spec: FlagSpec, value: FlagValue): void {
  if (!accumulates(spec.kind)) {
    flags[spec.name] = value;
    return;
  }
  const before = flags[spec.name];
  flags[spec.name] = [...(Array.isArray(before) ? before : []), String(value)];
}

function versionText(value: string): string {
  const version = packageVersion();
  if (value === 'raw') return `${JSON.stringify({ gitVersion: `v${version}`, goVersion: process.version, platform: `${process.platform}/${process.arch}` })}\n`;
  return `kproxy v${version}\n`;
}

const TYPE_NAMES: Readonly<Record<FlagKind, string>> = {
  bool: '', string: 'string', int32: 'int32', float32: 'float32', duration: 'duration', strings: 'strings',
  mapStringBool: 'mapStringBool', ip: 'ip', ipport: 'ipport', quantity: 'quantity', level: 'level',
  moduleSpec: 'pattern=N,...', version: 'version[=true]',
};

function flagLines(flags: readonly FlagSpec[]): string[] {
  const left = flags.map((f) => `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${TYPE_NAMES[f.kind] === '' ? '' : ` ${TYPE_NAMES[f.kind]}`}`);
  const width = Math.max(...left.map((l) => l.length)) + 3;
  return flags.map((f, i) => `  ${(left[i] ?? '').padEnd(width)}${f.help}`);
}

function helpText(command: Subcommand | undefined): string {
  const visible = FLAGS.filter((f) => f.hidden !== true);
  const lines = command === undefined
    ? [
      'kproxy: a kube-proxy replacement (iptables, nftables, ipvs, userspace)',
      '',
      'Usage:',
      '  kproxy [flags]                 run the proxy on this node',
      '  kproxy plan [flags]            print what this node would program, without touching the kernel',
      '  kproxy trace [flags] --src IP --dst IP:PORT[/PROTO]   show what the proxy mode does with one packet',
      '',
      'Every kube-proxy flag is accepted with kube-proxy\'s meaning; with --config, kube-proxy\'s flags other than',
      'logging, --hostname-override and the command flags are ignored, as kube-proxy ignores them (a warning says so).',
      'Flags, fields and defaults: docs/config.md.',
    ]
    : command === 'plan'
      ? ['Usage: kproxy plan [flags] [--format text|json]', '', 'Print what this node would program, without touching the kernel.',
        '  kproxy plan --manifests examples/basic --format json', '  kproxy plan --manifests examples/basic --proxy-mode iptables']
      : ['Usage: kproxy trace [flags] --src IP --dst IP:PORT[/PROTO] [--from pod|node|external] [--format text|json]', '',
        'Show what the proxy mode does with one packet.',
        '  kproxy trace --manifests examples/basic --proxy-mode iptables --src 10.244.1.5 --dst 10.96.0.10:80'];
  if (command !== undefined) {
    const options = Object.entries(SUBCOMMAND_FLAGS[command]);
    lines.push('', `${command} flags:`, ...options.map(([name, help]) => `  --${name.padEnd(10)}${help}`));
  }
  lines.push('', 'kube-proxy flags:', ...flagLines(visible.filter((f) => f.owner === 'kube-proxy')));
  lines.push('', 'kproxy flags:', ...flagLines(visible.filter((f) => f.owner === 'kproxy')));
  return `${lines.join('\n')}\n`;
}

function outputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'text') return 'text';
  if (value === 'json') return 'json';
  throw new UsageError(`invalid --format ${JSON.stringify(value)}: must be text or json`);
}

function origin(value: string | undefined): PacketOrigin | undefined {
  if (value === undefined) return undefined;
  if (value === 'pod' || value === 'node' || value === 'external') return value;
  throw new UsageError(`invalid --from ${JSON.stringify(value)}: must be pod, node or external`);
}
