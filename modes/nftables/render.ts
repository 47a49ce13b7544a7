// The typed ruleset and transactions → `nft -f` text. Pure; the only place nftables syntax is written.
//
// Every rule carries a comment ending in "#" + a digest of the rule's own text, so the periodic check can tell,
// from the kernel's copy, whether a rule is still the one kproxy wrote (see netlink/ and reconcile.ts).
import { hash } from 'node:crypto';
import type { Chain, Element, Expr, Match, NftFamily, Rule, SetSpec, Statement, Value, Verdict } from './ruleset.ts';
import type { Transaction } from './transaction.ts';

/** Elements per `add element` command: long enough to be cheap, short enough for nft to report a useful line. */
const ELEMENTS_PER_COMMAND = 500;

const ADDR: Readonly<Record<NftFamily, string>> = { ip: 'ip', ip6: 'ip6' };

export function exprText(expr: Expr, family: NftFamily): string {
  switch (expr.kind) {
    case 'addr': return `${ADDR[family]} ${expr.dir}`;
    case 'l4proto': return 'meta l4proto';
    case 'dport': return 'th dport';
    case 'port-value': return `${expr.protocol} dport`;
    case 'mark': return 'meta mark';
    case 'numgen': return `numgen random mod ${expr.mod}${expr.offset ? ` offset ${expr.offset}` : ''}`;
  }
}

export function keyText(key: readonly Expr[], family: NftFamily): string {
  return key.map((e) => exprText(e, family)).join(' . ');
}

function valueText(value: Value): string {
  return value.kind === 'number' ? String(value.value) : value.value;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

function matchText(match: Match, family: NftFamily): string {
  switch (match.kind) {
    case 'cmp': return `${exprText(match.left, family)} ${match.negate ? '!= ' : ''}${valueText(match.value)}`;
    case 'mark-clear': return `meta mark & ${hex(match.mask)} ${match.negate ? '!=' : '=='} 0`;
    case 'lookup': return `${keyText(match.key, family)} ${match.negate ? '!= ' : ''}@${match.set}`;
    case 'fib-local': return `fib ${match.dir} type local`;
    case 'ct-dnat': return 'ct status dnat';
  }
}

export function verdictText(verdict: Verdict): string {
  switch (verdict.kind) {
    case 'jump': case 'goto': return `${verdict.kind} ${verdict.chain}`;
    default: return verdict.kind;
  }
}

function hostPort(ip: string, port: number, family: NftFamily): string {
  return family === 'ip6' ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function statementText(statement: Statement, family: NftFamily): string {
  switch (statement.kind) {
    case 'mark-or': return `meta mark set meta mark | ${hex(statement.value)}`;
    case 'mark-xor': return `meta mark set meta mark ^ ${hex(statement.value)}`;
    case 'update': return `update @${statement.set} { ${keyText(statement.key, family)} timeout ${statement.timeoutSeconds}s }`;
    case 'dnat': return `meta l4proto ${statement.protocol} dnat ${ADDR[family]} to ${hostPort(statement.ip, statement.port, family)}`;
    case 'dnat-map': return `meta l4proto ${statement.protocol} dnat ${ADDR[family]} to ${keyText(statement.key, family)} map @${statement.map}`;
    case 'vmap': return `${keyText(statement.key, family)} vmap @${statement.map}`;
    case 'masquerade': return 'masquerade fully-random';
    case 'reject': return 'reject';
    case 'verdict': return verdictText(statement.verdict);
  }
}

/** The rule without its comment: what the digest covers. */
export function ruleBody(rule: Rule, family: NftFamily): string {
  return [...rule.matches.map((m) => matchText(m, family)), ...rule.statements.map((s) => statementText(s, family))].join(' ');
}

/** 8 hex digits identifying a rule's text (not a security measure: it tells kproxy's rules from edited ones). */
export function ruleDigest(body: string): string {
  return hash('sha256', body, 'hex').slice(0, 8);
}

/** The comment the kernel keeps for a rule: its human text, then "#digest". */
export function ruleComment(rule: Rule, family: NftFamily): string {
  const tag = `#${ruleDigest(ruleBody(rule, family))}`;
  return rule.comment ? `${rule.comment.replaceAll('"', "'")} ${tag}` : tag;
}

export function ruleText(rule: Rule, family: NftFamily): string {
  return `${ruleBody(rule, family)} comment "${ruleComment(rule, family)}"`;
}

function chainSpec(chain: Chain): string {
  const base = chain.base;
  return base ? ` { type ${base.type} hook ${base.hook} priority ${base.priority}; policy accept; }` : '';
}

function setSpecText(set: SetSpec, family: NftFamily): string {
  const parts: string[] = [];
  const data = set.data === undefined ? '' : ` : ${set.data === 'verdict' ? 'verdict' : keyText(set.data, family)}`;
  parts.push(`typeof ${keyText(set.key, family)}${data};`);
  if (set.flags && set.flags.length > 0) parts.push(`flags ${set.flags.join(',')};`);
  if (set.size !== undefined) parts.push(`size ${set.size};`);
  return `{ ${parts.join(' ')} }`;
}


function* chunked<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/**
 * The transaction as `nft -f` input, piece by piece (a first sync at 10k services is megabytes: it is written while
 * nft reads it). Order: table, new sets, new chains (declared, then filled), replaced chains (flushed, refilled),
 * flushed sets, element deletions, element additions, then chains (emptied, then deleted) and sets that nothing
 * refers to any more.
 */
export function* renderTransaction(tx: Transaction): Generator<string> {
  const { family, table } = tx;
  const at = `${family} ${table}`;
  if (tx.deleteTable) yield `delete table ${at}\n`;
  if (tx.ensureTable) yield `add table ${at} { comment "${tx.ensureTable.comment.replaceAll('"', "'")}"; }\n`;
  for (const set of tx.addSets) yield `add ${set.data === undefined ? 'set' : 'map'} ${at} ${set.name} ${setSpecText(set, family)}\n`;
  for (const chain of tx.addChains) yield `add chain ${at} ${chain.name}${chainSpec(chain)}\n`;
  const fill = (chain: Chain): string => chain.rules.map((rule) => `add rule ${at} ${chain.name} ${ruleText(rule, family)}\n`).join('');
  for (const chain of tx.addChains) yield fill(chain);
  for (const chain of tx.replaceChains) yield `flush chain ${at} ${chain.name}\n${fill(chain)}`;
  for (const name of tx.flushSets) yield `flush set ${at} ${name}\n`;
  for (const [set, keys] of tx.deleteElements) {
    for (const chunk of chunked(keys, ELEMENTS_PER_COMMAND)) yield `delete element ${at} ${set} { ${chunk.join(', ')} }\n`;
  }
  for (const [set, elements] of tx.addElements) {
    for (const chunk of chunked(elements, ELEMENTS_PER_COMMAND)) yield `add element ${at} ${set} { ${chunk.join(', ')} }\n`;
  }
  // Emptied first, so chains that jump to each other can go in any order.
  for (const name of tx.deleteChains) yield `flush chain ${at} ${name}\n`;
  for (const name of tx.deleteChains) yield `delete chain ${at} ${name}\n`;
  for (const name of tx.deleteSets) yield `delete set ${at} ${name}\n`;
}

export function transactionText(tx: Transaction): string {
  return [...renderTransaction(tx)].join('');
}

/** `nft list`-like text of a whole table (for `kproxy plan`): the transaction that creates it from nothing. */
export function tableTransaction(table: { family: NftFamily; name: string; chains: readonly Chain[]; sets: readonly SetSpec[]; elements: ReadonlyMap<string, readonly Element[]> }, comment: string): Transaction {
  return {
    family: table.family, table: table.name, ensureTable: { comment },
    addSets: table.sets, addChains: table.chains, replaceChains: [], flushSets: [],
    deleteElements: new Map(), addElements: table.elements, deleteChains: [], deleteSets: [],
  };
}
