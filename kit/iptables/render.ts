// The only place iptables rule text is built. Pure.
// Output is `iptables-restore --noflush -w` / `ip6tables-restore --noflush -w` input (legacy and nft variants).
import type { IPFamily } from '../../src/model/types.ts';
import { changedPlans } from '../plan-diff.ts';
import { chainRules, TABLE_NAMES } from './ruleset.ts';
import type { BuiltinChain, Chain, HookRule, Match, Rule, RuleTally, Ruleset, RulesetSource, ServiceRules, Table, TableName, Target } from './ruleset.ts';
import type { SavedHook, SavedState } from './save.ts';

const MAX_COMMENT = 255;
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
const FULL_MASK: Readonly<Record<IPFamily, string>> = {
  IPv4: '255.255.255.255',
  IPv6: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
};

/**
 * Probability as iptables-save prints it: the kernel keeps it as a 31-bit fraction, so 1/3 reads back as
 * 0.33333333349. Rendering the stored value keeps our text identical to what the kernel lists.
 */
export function formatProbability(p: number): string {
  const stored = Math.round(0x80000000 * Math.min(Math.max(p, 0), 1));
  return (stored / 0x80000000).toFixed(11);
}

function sanitizeComment(text: string): string {
  return text.replace(/["\\\n\r]/g, '').slice(0, MAX_COMMENT);
}

function matchArgs(match: Match, family: IPFamily): string[] {
  const not = (negate: boolean | undefined): string[] => (negate ? ['!'] : []);
  switch (match.kind) {
    case 'src': return [...not(match.negate), '-s', match.cidr];
    case 'dst': return [...not(match.negate), '-d', match.cidr];
    case 'protocol': {
      const p = match.protocol.toLowerCase();
      return match.dport === undefined ? ['-p', p] : ['-p', p, '-m', p, '--dport', String(match.dport)];
    }
    case 'addrtype': return ['-m', 'addrtype', ...not(match.negate), `--${match.direction}-type`, match.type];
    case 'mark': return ['-m', 'mark', ...not(match.negate), '--mark', `${hex(match.value)}/${hex(match.mask)}`];
    case 'statistic': return ['-m', 'statistic', '--mode', 'random', '--probability', formatProbability(match.probability)];
    case 'recent':
      return match.mode === 'check'
        ? ['-m', 'recent', '--name', match.name, '--mask', FULL_MASK[family], '--rsource', '--rcheck',
          '--seconds', String(match.seconds), ...(match.reap ? ['--reap'] : [])]
        : ['-m', 'recent', '--set', '--name', match.name, '--mask', FULL_MASK[family], '--rsource'];
    case 'conntrack': return ['-m', 'conntrack', '--ctstate', match.states.join(',')];
    case 'nfacct': return ['-m', 'nfacct', '--nfacct-name', match.name];
  }
}

function targetArgs(target: Target, family: IPFamily): string[] {
  switch (target.kind) {
    case 'jump': return ['-j', target.chain];
    case 'DNAT': {
      const dest = family === 'IPv6' ? `[${target.ip}]:${target.port}` : `${target.ip}:${target.port}`;
      return ['-j', 'DNAT', '--to-destination', dest];
    }
    case 'MARK': return ['-j', 'MARK', target.op === 'or' ? '--or-mark' : '--xor-mark', hex(target.value)];
    case 'MASQUERADE': return target.randomFully ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
    case 'REJECT': case 'DROP': case 'RETURN': case 'ACCEPT': return ['-j', target.kind];
  }
}

/**
 * A rule as an argument vector (after `-A CHAIN`), e.g. for `iptables -t nat -C PREROUTING ...args`. `terse`: leave
 * out the comment of a per-endpoint rule (RulesetSource.omitEndpointComments).
 */
export function ruleArgv(rule: Rule, family: IPFamily, terse = false): string[] {
  const args: string[] = [];
  if (rule.comment !== undefined && !(terse && rule.perEndpoint === true)) args.push('-m', 'comment', '--comment', sanitizeComment(rule.comment));
  for (const match of rule.matches) args.push(...matchArgs(match, family));
  args.push(...targetArgs(rule.target, family));
  return args;
}

/** The argument vector as iptables-restore reads it (only comments may hold spaces; they are quoted). */
export function ruleText(rule: Rule, family: IPFamily, terse = false): string {
  return ruleArgv(rule, family, terse).map((arg) => (/^[\w./:,!\[\]+-]+$/.test(arg) ? arg : `"${arg}"`)).join(' ');
}

/** A tally of zero rules in each table. */
export const noRules = (): RuleTally => ({ nat: 0, filter: 0 });

const declare = (name: string): string => `:${name} - [0:0]`;

export interface RenderFullOptions {
  /** Hook rules missing from the built-in chains: inserted at the top, in the order the ruleset lists them. */
  readonly insertHooks?: readonly HookRule[];
  /** kproxy chains present on the node that this ruleset no longer has: flushed and deleted. */
  readonly staleChains?: Readonly<Partial<Record<TableName, readonly string[]>>>;
  /**
   * Rules of the node's built-in (or foreign) chains that jump to one of `staleChains` (e.g. a hook an older
   * kproxy installed): deleted before the chains, or the deletion would fail ("chain in use").
   */
  readonly staleHooks?: readonly SavedHook[];
  /** Leave out the comments of per-endpoint rules (what a large-cluster source writes; `kproxy plan` keeps them). */
  readonly omitEndpointComments?: boolean;
}

/** The whole ruleset: every kproxy chain declared (hence flushed) and refilled, in one transaction per table. */
export function renderFull(ruleset: Ruleset, options: RenderFullOptions = {}): string {
  const terse = options.omitEndpointComments === true;
  const out: string[] = [];
  for (const tableName of TABLE_NAMES) {
    const table = ruleset[tableName];
    const ours = new Set(table.chains.map((c) => c.name));
    const stale = (options.staleChains?.[tableName] ?? []).filter((name) => !ours.has(name));
    out.push(`*${tableName}`);
    for (const chain of table.chains) out.push(declare(chain.name));
    for (const name of stale) out.push(declare(name));
    for (const chain of table.chains) {
      const prefix = `-A ${chain.name} `;
      for (const rule of chainRules(chain)) out.push(prefix + ruleText(rule, ruleset.family, terse));
    }
    out.push(...hookInsertLines(table, options.insertHooks ?? [], ruleset.family));
    for (const line of staleRemovalLines(tableName, stale, options.staleHooks ?? [])) out.push(line);
    out.push('COMMIT');
  }
  return out.join('\n') + '\n';
}

/** Hook deletions for the stale chains, then the chains themselves (already declared, hence flushed). */
function staleRemovalLines(table: TableName, stale: readonly string[], hooks: readonly SavedHook[]): string[] {
  if (stale.length === 0) return [];
  const names = new Set(stale);
  const out = hooks.filter((h) => h.table === table && names.has(h.target)).map((h) => `-D ${h.spec}`);
  for (const name of stale) out.push(`-X ${name}`);
  return out;
}

export interface RenderStreamOptions {
  /** As in RenderFullOptions. */
  readonly insertHooks?: readonly HookRule[];
  /** What the node holds (iptables-save): its kproxy chains that the ruleset lacks are deleted, with their hooks. */
  readonly onNode?: SavedState;
  /** Counts, as the stream is read, the rules written into kproxy's chains of each table (hooks not included). */
  readonly tally?: RuleTally;
}

/**
 * renderFull for the apply layer: the same rules and the same resulting kernel state, produced piece by piece
 * (about one service per piece) and compiled on the fly, so neither the ruleset nor its text (60 MB at 10k
 * services) is ever whole in memory. To make that possible each service's chains are declared just before its
 * rules (a jump needs its target declared), dispatch tails come after every service's rules, and stale chains are
 * known only at the end (node chains never declared by the stream).
 */
export function* renderFullStream(source: RulesetSource, options: RenderStreamOptions = {}): Generator<string> {
  const { family, base } = source;
  const terse = source.omitEndpointComments;
  const onNode = options.onNode;
  const tally = options.tally ?? noRules();
  const leftover: Record<TableName, Set<string>> = {
    nat: new Set(onNode?.chains.nat ?? []), filter: new Set(onNode?.chains.filter ?? []),
  };
  const filterLines: string[] = []; // filter dispatch rules: few (services without usable endpoints, firewalls)
  const head = (table: Table): string[] => {
    const lines = [`*${table.name}`];
    for (const chain of table.chains) {
      lines.push(declare(chain.name));
      leftover[table.name].delete(chain.name);
    }
    return lines;
  };
  const tail = (table: Table): string => {
    const lines: string[] = [];
    for (const chain of table.chains) {
      const prefix = `-A ${chain.name} `;
      for (const rule of chainRules(chain)) lines.push(prefix + ruleText(rule, family, terse)); // base chains: dispatch ones hold only their tails
      tally[table.name] += chainRules(chain).length;
    }
    lines.push(...hookInsertLines(table, options.insertHooks ?? [], family));
    const stale = [...leftover[table.name]];
    for (const name of stale) lines.push(declare(name));
    lines.push(...staleRemovalLines(table.name, stale, onNode?.hooks ?? []), 'COMMIT');
    return lines.join('\n') + '\n';
  };

  yield head(base.nat).join('\n') + '\n';
  for (const plan of source.services) {
    const rules = source.compileService(plan);
    const lines: string[] = [];
    for (const chain of rules.chains) {
      lines.push(declare(chain.name));
      leftover.nat.delete(chain.name);
    }
    for (const chain of rules.chains) {
      const prefix = `-A ${chain.name} `;
      for (const rule of chain.rules) lines.push(prefix + ruleText(rule, family, terse));
      tally.nat += chain.rules.length;
    }
    source.dispatch.forEach(({ table, chain }, slot) => {
      const dispatched = rules.dispatch[slot] ?? [];
      for (const rule of dispatched) (table === 'nat' ? lines : filterLines).push(`-A ${chain} ${ruleText(rule, family, terse)}`);
      tally[table] += dispatched.length;
    });
    if (lines.length > 0) yield lines.join('\n') + '\n';
  }
  yield tail(base.nat);
  yield head(base.filter).join('\n') + '\n';
  if (filterLines.length > 0) yield filterLines.join('\n') + '\n';
  yield tail(base.filter);
}

/** `-I BUILTIN 1 …` lines; inserted last-first so the hooks end up in the ruleset's order. */
function hookInsertLines(table: Table, wanted: readonly HookRule[], family: IPFamily): string[] {
  const selected = table.hooks.filter((hook) => wanted.some((w) => sameHook(w, hook)));
  return selected.reverse().map((hook) => `-I ${hook.builtin} 1 ${ruleText(hook.rule, family)}`);
}

function sameHook(a: HookRule, b: HookRule): boolean {
  return a.table === b.table && a.builtin === b.builtin && hookTarget(a) === hookTarget(b);
}

function hookTarget(hook: HookRule): string {
  return hook.rule.target.kind === 'jump' ? hook.rule.target.chain : hook.rule.target.kind;
}

export interface RenderedDiff {
  /** iptables-restore --noflush input; empty when nothing changed. */
  readonly text: string;
  /** Lines of `text` (table headers and COMMIT included). */
  readonly lines: number;
  /** Rules `text` writes (-A, -I) per table. */
  readonly rulesWritten: RuleTally;
  /** Rules kproxy owns after the diff minus before, per table. */
  readonly rulesDelta: RuleTally;
}

/**
 * Only what changed from `prev` (what the kernel holds) to `next`: new or changed chains are declared and
 * refilled, dispatch chains get -D/-I of single rules (and -D/-A of their tail when it changed), vanished chains
 * are flushed and deleted. Services are compared by plan identity, so the work is proportional to the change:
 * only plans that are not shared by both sides are compiled (all of them if the family-wide context changed).
 */
export function renderDiff(prev: RulesetSource, next: RulesetSource): RenderedDiff {
  const family = next.family;
  const terse = next.omitEndpointComments;
  const changes = changedPlans(prev, next);
  const removed = changes.removed.map((plan) => prev.compileService(plan));
  const added = changes.added.map((plan) => next.compileService(plan));
  // Both sources come from the same compile, so their dispatch chains are the same, in the same order.
  const slots = next.dispatch.map((d, slot) => ({ ...d, slot }));

  const out: string[] = [];
  const rulesWritten = noRules();
  const rulesDelta = noRules();
  for (const tableName of TABLE_NAMES) {
    const { lines: body, written, delta } = diffTable({
      family, terse, prev: prev.base[tableName], next: next.base[tableName],
      removed: tableName === 'nat' ? removed.flatMap((r) => r.chains) : [],
      added: tableName === 'nat' ? added.flatMap((r) => r.chains) : [],
      dispatch: slots.filter((d) => d.table === tableName).map(({ slot, chain }) => ({ chain, before: rulesOf(removed, slot), after: rulesOf(added, slot) })),
    });
    if (body.length > 0) out.push(`*${tableName}`, ...body, 'COMMIT');
    rulesWritten[tableName] = written;
    rulesDelta[tableName] = delta;
  }
  return { text: out.length === 0 ? '' : out.join('\n') + '\n', lines: out.length, rulesWritten, rulesDelta };
}

const rulesOf = (groups: readonly ServiceRules[], slot: number): Rule[] => groups.flatMap((g) => g.dispatch[slot] ?? []);

interface TableChanges {
  readonly family: IPFamily;
  /** Leave out per-endpoint comments (the source's omitEndpointComments). */
  readonly terse: boolean;
  readonly prev: Table;
  readonly next: Table;
  /** Chains of the services that only `prev` has (or whose plan changed), and of those only `next` has. */
  readonly removed: readonly Chain[];
  readonly added: readonly Chain[];
  /** Per dispatch chain, the rules of those same services. */
  readonly dispatch: ReadonlyArray<{ readonly chain: string; readonly before: readonly Rule[]; readonly after: readonly Rule[] }>;
}

/** A table's diff: its lines, the rules they write (-A, -I), and rules owned after minus before. */
interface TableDiff {
  readonly lines: string[];
  readonly written: number;
  readonly delta: number;
}

function diffTable(changes: TableChanges): TableDiff {
  const { family, terse } = changes;
  const text = (rule: Rule): string => ruleText(rule, family, terse);
  const declarations: string[] = [];
  const deletes: string[] = [];
  const appends: string[] = [];
  const removals: string[] = [];
  let delta = 0;
  /** `chain` flushed and refilled; it held `before` rules. */
  const rewrite = (chain: Chain, before: number): void => {
    declarations.push(declare(chain.name));
    const rules = chainRules(chain);
    for (const rule of rules) appends.push(`-A ${chain.name} ${text(rule)}`);
    delta += rules.length - before;
  };
  /** `chain` flushed and deleted. */
  const remove = (chain: Chain): void => {
    declarations.push(declare(chain.name));
    removals.push(`-X ${chain.name}`);
    delta -= chainRules(chain).length;
  };
  // Base chains: plain ones rewritten when their text changed; dispatch ones keep their rules, only a changed tail is
  // replaced (-D every old tail rule, -A the new ones: the tail stays last since dispatch rules go in with -I … 1).
  const prevBase = new Map(changes.prev.chains.map((c) => [c.name, c]));
  const nextBase = new Set(changes.next.chains.map((c) => c.name));
  for (const chain of changes.next.chains) {
    const old = prevBase.get(chain.name);
    if (old === chain) continue;
    if (old && old.kind === 'dispatch' && chain.kind === 'dispatch') {
      if (sameRules(old.tail, chain.tail, text)) continue;
      for (const rule of old.tail) deletes.push(`-D ${chain.name} ${text(rule)}`);
      for (const rule of chain.tail) appends.push(`-A ${chain.name} ${text(rule)}`);
      delta += chain.tail.length - old.tail.length;
      continue;
    }
    if (old && old.kind === chain.kind && sameRules(chainRules(old), chainRules(chain), text)) continue;
    rewrite(chain, old ? chainRules(old).length : 0);
  }
  for (const chain of changes.prev.chains) if (!nextBase.has(chain.name)) remove(chain);
  // Service chains of the changed services only.
  const before = new Map(changes.removed.map((c) => [c.name, c]));
  const after = new Set(changes.added.map((c) => c.name));
  for (const chain of changes.added) {
    const old = before.get(chain.name);
    if (old && sameRules(chainRules(old), chainRules(chain), text)) continue;
    rewrite(chain, old ? chainRules(old).length : 0);
  }
  for (const chain of changes.removed) if (!after.has(chain.name)) remove(chain);
  for (const { chain, before: old, after: now } of changes.dispatch) {
    const { removed, added } = dispatchChanges(old, now, text);
    for (const line of removed) deletes.push(`-D ${chain} ${line}`);
    for (const line of added) appends.push(`-I ${chain} 1 ${line}`);
    delta += added.length - removed.length;
  }
  return { lines: declarations.concat(deletes, appends, removals), written: appends.length, delta };
}

/** Texts of the rules only one side has (a rule rebuilt with the same text counts as unchanged). */
function dispatchChanges(before: readonly Rule[], after: readonly Rule[], text: (rule: Rule) => string): { removed: string[]; added: string[] } {
  const removedTexts = before.map(text);
  const addedTexts = after.map(text);
  const removedSet = new Set(removedTexts);
  const addedSet = new Set(addedTexts);
  return {
    removed: removedTexts.filter((text) => !addedSet.has(text)),
    added: addedTexts.filter((text) => !removedSet.has(text)),
  };
}

function sameRules(a: readonly Rule[], b: readonly Rule[], text: (rule: Rule) => string): boolean {
  return a.length === b.length && a.every((rule, i) => {
    const other = b[i];
    return other !== undefined && (rule === other || text(rule) === text(other));
  });
}

/** Chain names per table, e.g. to compare with what the node holds. */
export function chainNames(ruleset: Ruleset): Record<TableName, string[]> {
  return { nat: ruleset.nat.chains.map((c) => c.name), filter: ruleset.filter.chains.map((c) => c.name) };
}

/** Chains the node holds that `ruleset` does not (pass as RenderFullOptions.staleChains). */
export function staleChains(ruleset: Ruleset, saved: SavedState): Record<TableName, string[]> {
  const wanted = chainNames(ruleset);
  const nat = new Set(wanted.nat);
  const filter = new Set(wanted.filter);
  return {
    nat: saved.chains.nat.filter((name) => !nat.has(name)),
    filter: saved.chains.filter.filter((name) => !filter.has(name)),
  };
}

/** Hook rules of `ruleset` that the listing does not show (pass as RenderFullOptions.insertHooks). */
export function missingHooks(ruleset: Ruleset, saved: SavedState): HookRule[] {
  return TABLE_NAMES.flatMap((tableName) => ruleset[tableName].hooks.filter((hook) => !saved.hooks.some(
    (h) => h.table === hook.table && h.builtin === hook.builtin && h.target === hookTarget(hook),
  )));
}

/**
 * `--cleanup`: remove every kproxy hook rule and chain the listing shows, and nothing else. Empty string when there
 * is nothing to remove. Works for whatever a previous kproxy version created, since it reads the node's state.
 */
export function renderCleanup(saved: SavedState): string {
  const out: string[] = [];
  for (const table of TABLE_NAMES) {
    const hooks = saved.hooks.filter((h) => h.table === table);
    const chains = saved.chains[table];
    if (hooks.length === 0 && chains.length === 0) continue;
    out.push(`*${table}`);
    for (const hook of hooks) out.push(`-D ${hook.spec}`);
    for (const name of chains) out.push(declare(name));
    for (const name of chains) out.push(`-X ${name}`);
    out.push('COMMIT');
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}

/** For `iptables -t TABLE -C|-I|-D BUILTIN ...argv`. */
export function hookArgv(hook: HookRule, family: IPFamily): { table: TableName; builtin: BuiltinChain; args: string[] } {
  return { table: hook.table, builtin: hook.builtin, args: ruleArgv(hook.rule, family) };
}
