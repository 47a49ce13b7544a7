import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compile, compileSource } from '../../modes/iptables/compile.ts';
import { materialize } from '../../kit/iptables/ruleset.ts';
import { serviceChainNames } from '../../modes/iptables/names.ts';
import { missingHooks, noRules, renderCleanup, renderDiff, renderFull, renderFullStream, ruleText, staleChains } from '../../kit/iptables/render.ts';
import { chainRules, type RuleTally, type Ruleset, type RulesetSource } from '../../kit/iptables/ruleset.ts';
import { mode } from '../../modes/iptables/index.ts';
import { desiredState, endpoint, servicePort } from '../harness/state.ts';
import { parseSave as parseListing, SaveReader } from '../../kit/iptables/save.ts';
import { CHAIN_PREFIX } from '../../modes/iptables/names.ts';
import type { DesiredState, ServicePortPlan } from '../../src/model/types.ts';
import { flowClusterState } from '../flows/cluster.ts';
import { replan } from '../harness/state.ts';

/** The listing's kproxy chains and hooks. */
const parseSave = (text: string) => parseListing(text, CHAIN_PREFIX);

/** The flow cluster with `change` applied to its IPv4 services. */
function withServices(state: DesiredState, change: (services: readonly ServicePortPlan[]) => ServicePortPlan[]): DesiredState {
  return { ...state, families: { ...state.families, IPv4: { ...state.families.IPv4, services: change(state.families.IPv4.services) } } };
}

const lines = (text: string): string[] => text.split('\n').filter(Boolean);

describe('renderFull', () => {
  const ruleset = compile(flowClusterState(), 'IPv4');

  test('declares every kproxy chain before any rule, per table, and never a built-in chain', () => {
    const text = renderFull(ruleset);
    for (const table of ['nat', 'filter'] as const) {
      const section = text.slice(text.indexOf(`*${table}`), text.indexOf('COMMIT', text.indexOf(`*${table}`)));
      const declared = lines(section).filter((l) => l.startsWith(':')).map((l) => l.split(' ')[0]?.slice(1));
      assert.deepEqual(declared, ruleset[table].chains.map((c) => c.name));
      const firstRule = lines(section).findIndex((l) => l.startsWith('-'));
      const lastDeclaration = lines(section).findLastIndex((l) => l.startsWith(':'));
      assert.ok(lastDeclaration < firstRule);
    }
    assert.doesNotMatch(text, /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /m);
    assert.doesNotMatch(text, /^-[AI] (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /m, 'hooks only on request');
  });

  test('inserts the requested hooks at the top, ending in the ruleset order, and deletes stale chains last', () => {
    const hooks = ruleset.filter.hooks.filter((h) => h.builtin === 'FORWARD');
    const text = renderFull(ruleset, { insertHooks: hooks, staleChains: { nat: ['KPROXY-SVC-OLD'] } });
    const inserted = lines(text).filter((l) => l.startsWith('-I FORWARD 1 ')).map((l) => /-j (\S+)$/.exec(l)?.[1]);
    // Each goes to position 1, so they are written last-first.
    assert.deepEqual(inserted, ['KPROXY-EXTERNAL-SERVICES', 'KPROXY-SERVICES', 'KPROXY-FORWARD', 'KPROXY-FIREWALL']);
    const nat = lines(text.slice(0, text.indexOf('*filter')));
    assert.ok(nat.includes(':KPROXY-SVC-OLD - [0:0]'));
    assert.equal(nat.at(-2), '-X KPROXY-SVC-OLD');
  });

  test('a hook that jumps to a stale chain is deleted before the chain (upgrade from an older layout)', () => {
    const saved = parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:KPROXY-OLD - [0:0]\n-A PREROUTING -j KPROXY-OLD\n-A PREROUTING -j KPROXY-SERVICES\nCOMMIT\n');
    const text = renderFull(ruleset, { staleChains: staleChains(ruleset, saved), staleHooks: saved.hooks });
    const nat = lines(text.slice(0, text.indexOf('*filter')));
    assert.deepEqual(nat.slice(-3), ['-D PREROUTING -j KPROXY-OLD', '-X KPROXY-OLD', 'COMMIT']);
    assert.ok(!nat.includes('-D PREROUTING -j KPROXY-SERVICES'), 'hooks to chains we keep stay');
  });

  test('the streamed render writes the same lines, each chain declared before any rule in it or jumping to it', () => {
    const state = flowClusterState();
    for (const family of ['IPv4', 'IPv6'] as const) {
      const source = compileSource(state, family);
      const whole = materialize(source);
      const saved = parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:KPROXY-OLD - [0:0]\n-A PREROUTING -j KPROXY-OLD\nCOMMIT\n');
      const hooks = [...whole.nat.hooks, ...whole.filter.hooks];
      const pieces = [...renderFullStream(source, { insertHooks: hooks, onNode: saved })];
      assert.ok(pieces.length > source.services.length / 2, 'produced piece by piece');
      const streamed = pieces.join('');
      const text = renderFull(whole, { insertHooks: hooks, staleChains: staleChains(whole, saved), staleHooks: saved.hooks });
      const perTable = (t: string): string[][] => t.split('COMMIT\n').filter(Boolean).map((section) => lines(section).sort());
      assert.deepEqual(perTable(streamed), perTable(text));
      for (const section of streamed.split('COMMIT\n').filter(Boolean)) {
        const declared = new Set<string>();
        for (const line of lines(section)) {
          if (line.startsWith(':')) declared.add(line.slice(1).split(' ')[0] ?? '');
          const chain = /^-[AI] (\S+)/.exec(line)?.[1];
          const target = / -j (KPROXY-\S+)/.exec(line)?.[1];
          for (const name of [chain, target]) {
            if (name?.startsWith('KPROXY-')) assert.ok(declared.has(name), `${name} declared before: ${line}`);
          }
        }
      }
      const lastDispatch = (t: string): string | undefined => lines(t.slice(0, t.indexOf('*filter'))).filter((l) => l.startsWith('-A KPROXY-SERVICES ')).at(-1);
      assert.match(lastDispatch(streamed) ?? '', /-j KPROXY-NODEPORTS$/, 'the NodePorts jump stays last');
      assert.equal(lastDispatch(streamed), lastDispatch(text));
    }
  });

  test('comments are quoted and stripped of quotes', () => {
    const text = ruleText({ matches: [], target: { kind: 'ACCEPT' }, comment: 'a "quoted" name\\' }, 'IPv4');
    assert.equal(text, '-m comment --comment "a quoted name" -j ACCEPT');
  });
});

/** Rules in kproxy's chains of a whole ruleset (hooks not included), per table. */
function ruleCount(ruleset: Ruleset): RuleTally {
  const count = (table: 'nat' | 'filter'): number => ruleset[table].chains.reduce((sum, chain) => sum + chainRules(chain).length, 0);
  return { nat: count('nat'), filter: count('filter') };
}

describe('renderDiff', () => {
  const before = flowClusterState();
  /** The diff, after checking what it says of the rules it writes and of the rules owned against the whole rulesets. */
  const diffOf = (prev: RulesetSource, next: RulesetSource): ReturnType<typeof renderDiff> => {
    const diff = renderDiff(prev, next);
    const [old, now] = [ruleCount(materialize(prev)), ruleCount(materialize(next))];
    assert.deepEqual(diff.rulesDelta, { nat: now.nat - old.nat, filter: now.filter - old.filter }, 'rules owned after minus before');
    for (const table of ['nat', 'filter'] as const) {
      const section = diff.text.includes(`*${table}`) ? diff.text.slice(diff.text.indexOf(`*${table}`)).split('COMMIT')[0] ?? '' : '';
      assert.equal(diff.rulesWritten[table], lines(section).filter((l) => /^-[AI] /.test(l)).length, `${table} rules written`);
    }
    return diff;
  };
  const echo = serviceChainNames('default/echo:http', 'TCP');
  const mixed = serviceChainNames('default/mixed:http', 'TCP');

  test('one endpoint fewer: the service chain and its hairpin chain are rewritten, nothing else', () => {
    const after = withServices(before, (services) => services.map((s) => (s.key === 'default/echo:http'
      ? replan(s, { clusterEndpoints: s.clusterEndpoints.slice(0, 2) }) : s)));
    const diff = diffOf(compileSource(before, 'IPv4'), compileSource(after, 'IPv4'));
    const written = lines(diff.text);
    assert.equal(written[0], '*nat');
    assert.ok(written.includes(`:${echo.svc} - [0:0]`));
    assert.equal(written.filter((l) => l.startsWith('-X ')).length, 0, 'no chain per endpoint to remove');
    // the flow cluster's endpoints are on this node: each is a guarded pair (hairpin pick, DNAT)
    assert.equal(written.filter((l) => l.startsWith(`-A ${echo.svc} `)).length, 5, 'masquerade rule + two endpoints × 2');
    assert.equal(written.filter((l) => l.startsWith(`-A ${echo.hairpin} `)).length, 3, 'mark + two endpoints');
    assert.ok(!written.includes('*filter'), 'the filter table is untouched');
    assert.equal(diff.lines, written.length);
  });

  test('a service removed: its dispatch rule is deleted and its chains flushed and deleted', () => {
    const after = withServices(before, (services) => services.filter((s) => s.key !== 'default/mixed:http'));
    const written = lines(diffOf(compileSource(before, 'IPv4'), compileSource(after, 'IPv4')).text);
    assert.ok(written.some((l) => l.startsWith('-D KPROXY-SERVICES ') && l.endsWith(`-j ${mixed.svc}`)));
    assert.ok(written.includes(`-X ${mixed.svc}`));
    assert.ok(written.indexOf(`:${mixed.svc} - [0:0]`) < written.findIndex((l) => l.startsWith('-D ')));
    assert.ok(written.findIndex((l) => l.startsWith('-D ')) < written.indexOf(`-X ${mixed.svc}`));
  });

  test('a service that gets its first endpoint: REJECT removed from filter, dispatch rule inserted in nat', () => {
    const after = withServices(before, (services) => services.map((s) => (s.key === 'default/empty:http'
      ? replan(s, { clusterEndpoints: [{ ip: '10.244.1.2', port: 8080, local: true, ready: true, serving: true, terminating: false }], hasEndpoints: true })
      : s)));
    const written = lines(diffOf(compileSource(before, 'IPv4'), compileSource(after, 'IPv4')).text);
    assert.ok(written.some((l) => l.startsWith('-D KPROXY-SERVICES ') && l.endsWith('-j REJECT')));
    assert.ok(written.some((l) => l.startsWith('-I KPROXY-SERVICES 1 ') && l.includes('-d 10.96.0.18/32')));
    assert.ok(written.some((l) => l.startsWith('-I KPROXY-NODEPORTS 1 ') && l.includes('--dport 30088')));
  });

  test('a change of the NodePorts tail replaces only the tail, keeping it last', () => {
    const after: DesiredState = { ...before, families: { ...before.families, IPv4: { ...before.families.IPv4, nodePortAddresses: ['192.168.100.2'] } } };
    const written = lines(diffOf(compileSource(before, 'IPv4'), compileSource(after, 'IPv4')).text);
    assert.ok(!written.includes(':KPROXY-SERVICES - [0:0]'), 'the dispatch chain is not flushed');
    assert.deepEqual(written.filter((l) => l.includes('KPROXY-SERVICES ')), [
      '-D KPROXY-SERVICES -m comment --comment "kproxy service nodeports; NOTE: this must be the last rule in this chain" ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j KPROXY-NODEPORTS',
      '-A KPROXY-SERVICES -m comment --comment "kproxy service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.100.2/32 -m addrtype --dst-type LOCAL -j KPROXY-NODEPORTS',
    ]);
    assert.equal(written.length, 4, '*nat, -D, -A, COMMIT');
  });

  test('a new family-wide context (masquerade bit) rewrites the chains whose text changed', () => {
    const after: DesiredState = { ...before, settings: { ...before.settings, masqueradeBit: 5 } };
    const diff = diffOf(compileSource(before, 'IPv4'), compileSource(after, 'IPv4'));
    const written = lines(diff.text);
    assert.ok(written.includes(':KPROXY-MARK-MASQ - [0:0]'));
    assert.ok(written.includes('-A KPROXY-MARK-MASQ -j MARK --or-mark 0x20'));
    assert.ok(written.includes(':KPROXY-FORWARD - [0:0]'));
    assert.ok(!written.some((l) => l.startsWith(`:${echo.svc} `)), 'service chains with the same text are left alone');
  });

  test('only the plans that are not shared are compiled', () => {
    const source = compileSource(before, 'IPv4');
    const compiled: string[] = [];
    const counting = (s: typeof source): typeof source => ({ ...s, compileService: (plan) => { compiled.push(plan.key); return s.compileService(plan); } });
    const after = withServices(before, (services) => services.map((s) => (s.key === 'default/echo:http' ? replan(s, { clusterEndpoints: s.clusterEndpoints.slice(0, 1) }) : s)));
    renderDiff(counting(source), counting(compileSource(after, 'IPv4')));
    assert.deepEqual(compiled, ['default/echo:http', 'default/echo:http']);
  });

  test('refuses to diff two families', () => {
    assert.throws(() => renderDiff(compileSource(before, 'IPv4'), compileSource(before, 'IPv6')), /IPv4 ruleset diffed against IPv6/);
  });
});

describe('large clusters (kube-proxy\'s largeClusterEndpointsThreshold)', () => {
  /** Two services with `total` endpoints between them, one with session affinity. */
  function stateWith(total: number): DesiredState {
    const endpoints = (from: number, count: number) => Array.from({ length: count }, (_, i) => endpoint(`10.244.${Math.floor((from + i) / 250)}.${((from + i) % 250) + 1}`, 8080));
    const half = Math.floor(total / 2);
    return desiredState([
      servicePort({ name: 'a', clusterIP: '10.96.0.1', port: 80, clusterEndpoints: endpoints(0, half) }),
      servicePort({ name: 'b', clusterIP: '10.96.0.2', port: 80, clusterEndpoints: endpoints(half, total - half), affinity: { timeoutSeconds: 60 } }),
    ]);
  }
  const streamed = (source: RulesetSource): string => [...renderFullStream(source)].join('');
  /** The rules that exist once per endpoint: the split's DNATs and jumps (hairpin, endpoint chains) and their targets' own. */
  const perEndpoint = (text: string): string[] => lines(text).filter((l) => / -j DNAT /.test(l) || / -j KPROXY-(SEP|HP)-/.test(l) || l.startsWith('-A KPROXY-SEP-'));

  test('above 1000 endpoints the per-endpoint rules are written without comments; service rules keep theirs', () => {
    const at = compileSource(stateWith(1000), 'IPv4');
    const above = compileSource(stateWith(1001), 'IPv4');
    assert.equal(at.omitEndpointComments, false);
    assert.equal(above.omitEndpointComments, true);
    assert.notEqual(at.contextKey, above.contextKey, 'crossing the threshold rewrites every service');
    const text = streamed(above);
    const terse = perEndpoint(text);
    assert.ok(terse.length > 1001, `at least one rule per endpoint (${terse.length})`);
    assert.ok(terse.some((l) => l.startsWith('-A KPROXY-SEP-')) && terse.some((l) => / -j KPROXY-HP-/.test(l)), 'endpoint chains and hairpin guards both covered');
    for (const line of terse) assert.doesNotMatch(line, /--comment/, line);
    assert.ok(lines(text).some((l) => l.startsWith('-A KPROXY-SERVICES -m comment --comment "default/a: cluster IP"')), 'dispatch rules keep their comment');
    assert.ok(lines(text).some((l) => l.startsWith('-A KPROXY-SVC-') && l.includes('--comment "default/a: cluster IP"')), 'the masquerade rule keeps its comment');
    // Below the threshold every rule keeps its comment.
    for (const line of perEndpoint(streamed(at))) assert.match(line, /--comment /, line);
    const whole = materialize(above);
    const [withComments, without] = [renderFull(whole).length, renderFull(whole, { omitEndpointComments: true }).length];
    assert.ok(without < 0.8 * withComments, `smaller restore input (${without} against ${withComments} bytes)`);
  });

  test('kproxy plan shows every comment, whatever the size', () => {
    const plan = mode.render(mode.compile(stateWith(2000)));
    const rules = perEndpoint(plan);
    assert.ok(rules.length > 2000);
    for (const line of rules) assert.match(line, /--comment /, line);
    assert.ok(lines(plan).some((l) => l.includes('--comment "default/a: -> 10.244.0.1:8080')));
  });

  test('the streamed render counts the rules it writes into kproxy\'s chains, per table', () => {
    for (const total of [10, 1001]) {
      const source = compileSource(stateWith(total), 'IPv4');
      const tally = noRules();
      const text = [...renderFullStream(source, { tally, insertHooks: [...source.base.nat.hooks, ...source.base.filter.hooks] })].join('');
      assert.deepEqual(tally, ruleCount(materialize(source)));
      const section = (table: string): string[] => lines(text.slice(text.indexOf(`*${table}`)).split('COMMIT')[0] ?? '');
      assert.equal(tally.nat, section('nat').filter((l) => l.startsWith('-A ')).length, 'hooks (-I) not counted');
      assert.equal(tally.filter, section('filter').filter((l) => l.startsWith('-A ')).length);
    }
  });

  test('a diff in a large cluster writes terse endpoint rules', () => {
    const before = stateWith(1200);
    const after = withServices(before, (services) => services.map((s) => (s.key === 'default/a:' ? replan(s, { clusterEndpoints: s.clusterEndpoints.slice(1), allEndpoints: s.allEndpoints.slice(1) }) : s)));
    const written = perEndpoint(renderDiff(compileSource(before, 'IPv4'), compileSource(after, 'IPv4')).text);
    assert.ok(written.length >= 599, 'the changed service\'s endpoints are rewritten');
    for (const line of written) assert.doesNotMatch(line, /--comment/, line);
  });
});

describe('reading iptables-save for restarts and --cleanup', () => {
  const saved = [
    '# Generated by iptables-nft-save v1.8.9 (nf_tables)',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KPROXY-SERVICES - [0:0]',
    ':KPROXY-SVC-OLD - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A PREROUTING -m comment --comment "kproxy service portals" -j KPROXY-SERVICES',
    '-A KPROXY-SERVICES -d 10.96.0.1/32 -j KPROXY-SVC-OLD',
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':KPROXY-FIREWALL - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kproxy load balancer firewall" -j KPROXY-FIREWALL',
    '-A INPUT -j ACCEPT',
    'COMMIT',
    '*mangle',
    ':KPROXY-ELSEWHERE - [0:0]',
    'COMMIT',
  ].join('\n');

  test('finds kproxy chains and hooks, and nothing of kube-proxy', () => {
    const state = parseSave(saved);
    assert.deepEqual(state.chains, { nat: ['KPROXY-SERVICES', 'KPROXY-SVC-OLD'], filter: ['KPROXY-FIREWALL'] });
    assert.deepEqual(state.hooks.map((h) => `${h.table} ${h.builtin} ${h.target}`), ['nat PREROUTING KPROXY-SERVICES', 'filter INPUT KPROXY-FIREWALL']);
    const ruleset = compile(flowClusterState(), 'IPv4');
    assert.deepEqual(staleChains(ruleset, state), { nat: ['KPROXY-SVC-OLD'], filter: [] });
    const missing = missingHooks(ruleset, state).map((h) => `${h.table} ${h.builtin} ${h.rule.target.kind === 'jump' ? h.rule.target.chain : ''}`);
    assert.ok(!missing.includes('nat PREROUTING KPROXY-SERVICES'));
    assert.ok(missing.includes('nat OUTPUT KPROXY-SERVICES'));
    assert.equal(missing.length, ruleset.nat.hooks.length + ruleset.filter.hooks.length - 2);
  });

  test('cleanup deletes exactly the kproxy hooks and chains', () => {
    assert.deepEqual(lines(renderCleanup(parseSave(saved))), [
      '*nat',
      '-D PREROUTING -m comment --comment "kproxy service portals" -j KPROXY-SERVICES',
      ':KPROXY-SERVICES - [0:0]', ':KPROXY-SVC-OLD - [0:0]', '-X KPROXY-SERVICES', '-X KPROXY-SVC-OLD',
      'COMMIT',
      '*filter',
      '-D INPUT -m conntrack --ctstate NEW -m comment --comment "kproxy load balancer firewall" -j KPROXY-FIREWALL',
      ':KPROXY-FIREWALL - [0:0]', '-X KPROXY-FIREWALL',
      'COMMIT',
    ]);
    assert.equal(renderCleanup(parseSave('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n')), '');
  });
  test('the streaming reader gives the same state whatever the chunk boundaries (lines and UTF-8 characters split)', () => {
    const listing = Buffer.from(saved.replace('kproxy service portals', 'kproxy portals ✓ é') + '\n');
    const whole = parseSave(listing.toString());
    assert.equal(whole.hooks[0]?.spec, 'PREROUTING -m comment --comment "kproxy portals ✓ é" -j KPROXY-SERVICES');
    for (const size of [1, 2, 3, 7, 64, listing.length]) {
      const reader = new SaveReader(CHAIN_PREFIX);
      for (let offset = 0; offset < listing.length; offset += size) reader.push(listing.subarray(offset, offset + size));
      assert.deepEqual(reader.end(), whole, `chunks of ${size} bytes`);
    }
  });

  test('CRLF line ends, indentation and a last line without newline', () => {
    const state = parseSave('*nat\r\n  :KPROXY-A - [0:0]\r\n-A OUTPUT -j KPROXY-A\r\n*filter\n:KPROXY-B - [0:0]');
    assert.deepEqual(state.chains, { nat: ['KPROXY-A'], filter: ['KPROXY-B'] });
    assert.deepEqual(state.hooks, [{ table: 'nat', builtin: 'OUTPUT', spec: 'OUTPUT -j KPROXY-A', target: 'KPROXY-A' }]);
  });

  test('rules inside kproxy chains are never hooks, even when they jump to a kproxy chain', () => {
    const state = parseSave('*nat\n:KPROXY-SERVICES - [0:0]\n-A KPROXY-SERVICES -j KPROXY-SVC-X\n-A KUBE-X -j KPROXY-SVC-X\nCOMMIT\n');
    assert.deepEqual(state.hooks.map((h) => h.builtin), ['KUBE-X']);
  });
});
