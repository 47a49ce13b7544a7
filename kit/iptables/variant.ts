// Which iptables backend to drive: iptables-legacy (x_tables) or iptables-nft (nf_tables with the iptables ABI).
// Both can be installed; rules written through one are invisible to the other, so kproxy must use the one the
// host already uses. Like kube-proxy images' iptables-wrapper, "already uses" means "holds more rules".
import type { IPFamily } from '../../src/model/types.ts';
import type { CommandRunner } from '../exec.ts';
import { IP_FAMILIES } from '../../src/util/ip.ts';

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

/** Number of rules the variant's save tool prints for both families; -1 when its tools are missing. */
async function ruleCount(run: CommandRunner, variant: IptablesVariant): Promise<number> {
  let count = 0;
  let usable = false;
  for (const family of IP_FAMILIES) {
    // Count rule lines ("-A …") as the listing streams by: on a node with 10k services it is ≈ 60 MB.
    let lines = 0;
    let atLineStart = true;
    const onStdout = (chunk: Buffer): void => {
      for (const byte of chunk) {
        if (atLineStart && byte === 0x2d /* '-' */) lines++;
        atLineStart = byte === 0x0a;
      }
    };
    const result = await run(toolsFor(variant, family).save, [], undefined, { onStdout });
    if (result.code !== 0) continue;
    usable = true;
    // A runner that ignores onStdout hands the text back instead.
    for (const line of result.stdout.split('\n')) if (line.startsWith('-')) lines++;
    count += lines;
  }
  return usable ? count : -1;
}

/** The variant holding more rules; nft on a tie (the default of current distributions). */
export async function detectVariant(run: CommandRunner): Promise<IptablesVariant> {
  const legacy = await ruleCount(run, 'legacy');
  const nft = await ruleCount(run, 'nft');
  return legacy > nft ? 'legacy' : 'nft';
}
