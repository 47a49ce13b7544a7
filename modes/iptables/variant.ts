// Which iptables backend to drive: iptables-legacy (x_tables) or iptables-nft (nf_tables with the iptables ABI).
// Both can be installed; rules written through one are invisible to the other, so kproxy must use the one the
// host already uses. Like kube-proxy images' iptables-wrapper, "already uses" means "holds more rules".
import type { IPFamily } from '../../src/model/types.ts';
import type { CommandRunner } from './exec.ts';

export type IptablesVariant = 'legacy' | 'nft';
export const VARIANTS: readonly IptablesVariant[] = ['legacy', 'nft'];

export interface IptablesTools {
  readonly variant: IptablesVariant;
  readonly family: IPFamily;
  /** e.g. "iptables-nft", "ip6tables-legacy". */
  readonly iptables: string;
  readonly restore: string;
  readonly save: string;
}

export function toolsFor(variant: IptablesVariant, family: IPFamily): IptablesTools {
  const base = `${family === 'IPv4' ? 'iptables' : 'ip6tables'}-${variant}`;
  return { variant, family, iptables: base, restore: `${base}-restore`, save: `${base}-save` };
}

/** Reads the `iptablesVariant` setting: 'legacy', 'nft' or 'auto' (also when absent). Throws a one-line error. */
export function variantSetting(value: unknown): IptablesVariant | 'auto' {
  if (value === undefined || value === null || value === '' || value === 'auto') return 'auto';
  if (value === 'legacy' || value === 'nft') return value;
  throw new Error(`invalid iptablesVariant ${JSON.stringify(value)}: expected "legacy", "nft" or "auto"`);
}

/** Number of rules the variant's save tool prints for both families; -1 when its tools are missing. */
async function ruleCount(run: CommandRunner, variant: IptablesVariant): Promise<number> {
  let count = 0;
  let usable = false;
  for (const family of ['IPv4', 'IPv6'] as const) {
    const result = await run(toolsFor(variant, family).save, []);
    if (result.code !== 0) continue;
    usable = true;
    for (const line of result.stdout.split('\n')) if (line.startsWith('-')) count++;
  }
  return usable ? count : -1;
}

/** The variant holding more rules; nft on a tie (the default of current distributions). */
export async function detectVariant(run: CommandRunner): Promise<IptablesVariant> {
  const legacy = await ruleCount(run, 'legacy');
  const nft = await ruleCount(run, 'nft');
  return legacy > nft ? 'legacy' : 'nft';
}
