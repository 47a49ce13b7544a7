// The interface that carries service addresses which are not local, so that the relay can bind them.
// A `dummy` link where the kernel has the type, else a bridge with no ports (local, never forwards).
// It is marked with an alias; cleanup removes only a link that carries that mark.
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { firstLineOf } from '../../src/util/errors.ts';

export const OWNER_ALIAS = 'kproxy-userspace-relay';

/** Runs `ip ARGS` (with STDIN for `-batch -`) and returns stdout; rejects with stderr's first line. */
export type IpRunner = (args: readonly string[], stdin?: string) => Promise<string>;

export const runIp: IpRunner = (args, stdin) =>
  new Promise((resolve, reject) => {
    const child = execFile('ip', [...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${firstLineOf(stderr.trim() || err.message)}`));
      else resolve(stdout);
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });

interface LinkInfo {
  readonly ifalias?: string;
  readonly addr_info?: readonly { readonly local?: string; readonly prefixlen?: number }[];
}

async function readJson(args: readonly string[], run: IpRunner): Promise<LinkInfo | undefined> {
  try {
    const parsed: unknown = JSON.parse(await run(args));
    return Array.isArray(parsed) ? (parsed[0] as LinkInfo | undefined) : undefined;
  } catch {
    return undefined;
  }
}

/** The link's alias (only `link show` prints it) and addresses (only `addr show` prints them). */
async function readLink(name: string, run: IpRunner): Promise<LinkInfo | undefined> {
  const link = await readJson(['-j', 'link', 'show', 'dev', name], run);
  if (!link) return undefined;
  const addrs = await readJson(['-j', 'addr', 'show', 'dev', name], run);
  return { ...link, addr_info: addrs?.addr_info ?? [] };
}

async function createLink(name: string, run: IpRunner): Promise<'dummy' | 'bridge'> {
  let kind: 'dummy' | 'bridge' = 'dummy';
  try {
    await run(['link', 'add', name, 'type', 'dummy']);
  } catch {
    kind = 'bridge';
    await run(['link', 'add', name, 'type', 'bridge']);
  }
  await run(['link', 'set', name, 'alias', OWNER_ALIAS]);
  await run(['link', 'set', name, 'up']);
  return kind;
}

export interface AddressChange {
  readonly added: number;
  readonly removed: number;
  /** Set when this call created the link. */
  readonly created?: 'dummy' | 'bridge';
}

export interface EnsureOptions {
  readonly name: string;
  readonly addresses: readonly string[];
  /** Also remove the addresses that are not in `addresses`. */
  readonly removeOthers: boolean;
  readonly run?: IpRunner;
}

/** The link `name` if it exists; throws when it exists and is not kproxy's. */
async function ownedLink(name: string, run: IpRunner): Promise<LinkInfo | undefined> {
  const link = await readLink(name, run);
  if (link && link.ifalias !== OWNER_ALIAS) {
    throw new Error(`interface ${name} exists and is not kproxy's (alias "${link.ifalias ?? ''}"); choose another interfaceName`);
  }
  return link;
}

/** The addresses on kproxy's interface now (none when it does not exist yet). */
export async function presentAddresses(name: string, run: IpRunner = runIp): Promise<string[]> {
  const link = await ownedLink(name, run);
  return (link?.addr_info ?? []).flatMap((a) => (a.local && !a.local.startsWith('fe80:') ? [a.local] : []));
}

/** Make `name` carry `addresses`. Creates the link only when some address is needed. */
export async function ensureAddresses(options: EnsureOptions): Promise<AddressChange> {
  const run = options.run ?? runIp;
  let link = await ownedLink(options.name, run);
  let created: 'dummy' | 'bridge' | undefined;
  if (!link) {
    if (options.addresses.length === 0) return { added: 0, removed: 0 };
    created = await createLink(options.name, run);
    link = (await readLink(options.name, run)) ?? {};
  }
  const present = new Map<string, number>();
  for (const a of link.addr_info ?? []) if (a.local && !a.local.startsWith('fe80:')) present.set(a.local, a.prefixlen ?? 0);
  const wanted = new Set(options.addresses);
  const commands: string[] = [];
  for (const ip of wanted) {
    if (!present.has(ip)) commands.push(`addr add ${ip}/${isIPv6(ip) ? '128' : '32'} dev ${options.name}${isIPv6(ip) ? ' nodad' : ''}`);
  }
  const added = commands.length;
  let removed = 0;
  if (options.removeOthers) {
    for (const [ip, prefix] of present) {
      if (wanted.has(ip)) continue;
      commands.push(`addr del ${ip}/${prefix} dev ${options.name}`);
      removed++;
    }
  }
  if (commands.length > 0) await run(['-batch', '-'], `${commands.join('\n')}\n`);
  return { added, removed, ...(created ? { created } : {}) };
}

/** Delete the interface if it is kproxy's. Returns whether something was removed. */
export async function removeInterface(name: string, run: IpRunner = runIp): Promise<boolean> {
  const link = await readLink(name, run);
  if (!link || link.ifalias !== OWNER_ALIAS) return false;
  await run(['link', 'del', name]);
  return true;
}

/** Addresses of this host's interfaces, apart from `except` (the relay's own interface). */
export function hostAddresses(except?: string): string[] {
  const out: string[] = [];
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (name === except) continue;
    for (const info of list ?? []) if (!info.address.startsWith('fe80:')) out.push(info.address);
  }
  return out;
}
