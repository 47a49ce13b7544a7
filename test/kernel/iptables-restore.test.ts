// The rendered text against the real tools (legacy and nft variants, IPv4 and IPv6), inside throwaway network
// namespaces only: full load (string and streamed), partial sync, hook idempotence, stale-chain and stale-hook
// removal, and --cleanup.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { compileSource } from '../../modes/iptables/compile.ts';
import { materialize } from '../../kit/iptables/ruleset.ts';
import { missingHooks, renderCleanup, renderDiff, renderFull, renderFullStream, staleChains } from '../../kit/iptables/render.ts';
import { parseSave as parseListing } from '../../kit/iptables/save.ts';
import { RESTORE_ARGS } from '../../kit/iptables/tools.ts';
import { runCommand } from '../../kit/exec.ts';
import { CHAIN_PREFIX } from '../../modes/iptables/names.ts';
import type { Ruleset } from '../../kit/iptables/ruleset.ts';
import type { DesiredState, IPFamily, ServicePortPlan } from '../../src/model/types.ts';
import { flowClusterState } from '../flows/cluster.ts';
import { replan } from '../harness/state.ts';
import '../harness/xtables-lock.ts';
import { CT_STATE_INVALID_DROPPED } from '../../kit/nfacct.ts';

/** The listing's kproxy chains and hooks. */
const parseSave = (text: string) => parseListing(text, CHAIN_PREFIX);

type Variant = 'legacy' | 'nft';
const tool = (variant: Variant, family: IPFamily, what: 'restore' | 'save'): string =>
  `${family === 'IPv4' ? 'iptables' : 'ip6tables'}-${variant}-${what}`;

function inNamespace(ns: string, args: readonly string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}
const restore = (ns: string, variant: Variant, family: IPFamily, text: string): void => {
  inNamespace(ns, [tool(variant, family, 'restore'), '--noflush', '-w'], text);
};
const save = (ns: string, variant: Variant, family: IPFamily): string =>
  inNamespace(ns, [tool(variant, family, 'save'), '-t', 'nat']) + inNamespace(ns, [tool(variant, family, 'save'), '-t', 'filter']);

/** A listing with the order of dispatch-chain rules (irrelevant by design) and counters taken out. */
function normalized(listing: string, ruleset: Ruleset): string {
  const dispatch = new Set([...ruleset.nat.chains, ...ruleset.filter.chains].filter((c) => c.kind === 'dispatch').map((c) => c.name));
  const out: string[] = [];
  let table = '';
  const byChain = new Map<string, string[]>();
  const flush = (): void => {
    for (const [chain, rules] of [...byChain].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(`${table} ${chain}`, ...(dispatch.has(chain) ? [...rules].sort() : rules));
    }
    byChain.clear();
  };
  for (const line of listing.split('\n')) {
    if (line.startsWith('*')) { flush(); table = line; continue; }
    if (line.startsWith(':')) { byChain.set(line.split(' ')[0]?.slice(1) ?? '', byChain.get(line.split(' ')[0]?.slice(1) ?? '') ?? []); continue; }
    if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1] ?? '';
      byChain.set(chain, [...(byChain.get(chain) ?? []), line]);
    }
  }
  flush();
  return out.join('\n');
}

function withServices(state: DesiredState, change: (services: readonly ServicePortPlan[]) => ServicePortPlan[]): DesiredState {
  return {
    ...state,
    families: {
      IPv4: { ...state.families.IPv4, services: change(state.families.IPv4.services) },
      IPv6: { ...state.families.IPv6, services: change(state.families.IPv6.services) },
    },
  };
}

const first = flowClusterState();
/** An endpoint fewer, a service gone, a service that gets its first endpoint, a new affinity service. */
const second = withServices(first, (services) => {
  const out: ServicePortPlan[] = [];
  for (const s of services) {
    if (s.key === 'default/mixed:http') continue;
    if (s.key === 'default/echo:http') out.push(replan(s, { clusterEndpoints: s.clusterEndpoints.slice(0, 2) }));
    else if (s.key === 'default/empty:http') {
      out.push(replan(s, { hasEndpoints: true, clusterEndpoints: [{ ip: '10.244.1.4', port: 8080, local: true, ready: true, serving: true, terminating: false }] }));
    } else out.push(s);
    if (s.key === 'default/affinity:http') {
      out.push(replan(s, { key: 'default/sticky:http', name: 'sticky', clusterIP: '10.96.0.99', frontends: [{ kind: 'ClusterIP', ip: '10.96.0.99', port: 80 }] }));
    }
  }
  return out;
});

for (const variant of ['legacy', 'nft'] as const) {
  describe(`iptables-${variant}-restore accepts the rendered text`, () => {
    const prefix = `kpir${process.pid}${variant[0]}`;
    const [nsA, nsB] = [`${prefix}a`, `${prefix}b`];
    before(() => {
      for (const ns of [nsA, nsB]) {
        execFileSync('ip', ['netns', 'add', ns]);
        // The INVALID drop counts in this nfacct object, which the apply layer creates before its first restore.
        inNamespace(ns, ['nfacct', 'add', CT_STATE_INVALID_DROPPED]);
      }
    });
    after(() => {
      for (const ns of [nsA, nsB]) {
        try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* already gone */ }
      }
    });

    test('a restore whose input keeps streaming for more than 5 s is not cut short', async () => {
      // A full sync renders while the tool reads (~30 s at 10k services); with `-w 5` iptables-legacy-restore's
      // lock alarm interrupted its read after 5 s ("COMMIT expected"). The kit's restore arguments must not.
      async function* slowly(): AsyncGenerator<string> {
        // More than the runner gathers before writing (64 KiB), so the tool has read it and waits for the rest.
        yield `*filter\n:KPROXY-SLOW - [0:0]\n${'# padding\n'.repeat(8000)}`;
        await new Promise((resolve) => setTimeout(resolve, 6000));
        yield '-A KPROXY-SLOW -j ACCEPT\nCOMMIT\n';
      }
      const result = await runCommand('ip', ['netns', 'exec', nsA, tool(variant, 'IPv4', 'restore'), ...RESTORE_ARGS], slowly());
      assert.equal(result.code, 0, result.stderr);
      assert.match(save(nsA, variant, 'IPv4'), /-A KPROXY-SLOW -j ACCEPT/);
      restore(nsA, variant, 'IPv4', '*filter\n:KPROXY-SLOW - [0:0]\n-X KPROXY-SLOW\nCOMMIT\n');
    });

    for (const family of ['IPv4', 'IPv6'] as const) {
      test(`${family}: full load, partial sync, hooks once, stale chains, cleanup`, () => {
        const prevSource = compileSource(first, family);
        const nextSource = compileSource(second, family);
        const prev = materialize(prevSource);
        const next = materialize(nextSource);
        const streamed = (source: typeof prevSource, ns: string): string => {
          const onNode = parseSave(save(ns, variant, family));
          return [...renderFullStream(source, { onNode, insertHooks: missingHooks(source.base, onNode) })].join('');
        };
        // Something that is not ours, which must survive everything below.
        for (const ns of [nsA, nsB]) restore(ns, variant, family, '*filter\n:OTHER - [0:0]\n-A INPUT -j OTHER\n-A OTHER -j ACCEPT\nCOMMIT\n');

        restore(nsA, variant, family, streamed(prevSource, nsA));
        const loaded = parseSave(save(nsA, variant, family));
        assert.deepEqual(missingHooks(prev, loaded), []);
        assert.deepEqual(staleChains(prev, loaded), { nat: [], filter: [] });

        // A resync finds every hook in place: no duplicate.
        restore(nsA, variant, family, streamed(prevSource, nsA));
        assert.equal(parseSave(save(nsA, variant, family)).hooks.length, prev.nat.hooks.length + prev.filter.hooks.length);

        // Partial sync ≡ a fresh full load of the next ruleset (the string render).
        const diff = renderDiff(prevSource, nextSource);
        assert.ok(diff.lines > 0);
        restore(nsA, variant, family, diff.text);
        restore(nsB, variant, family, renderFull(next, { insertHooks: [...next.nat.hooks, ...next.filter.hooks] }));
        assert.equal(normalized(save(nsA, variant, family), next), normalized(save(nsB, variant, family), next));

        // Back to the first ruleset with a full sync: chains only `next` had are deleted, even one a built-in chain
        // still jumps to (as after an upgrade from a layout with other hooks).
        const leaving = next.nat.chains.find((c) => c.name.startsWith('KPROXY-SVC-') && !prev.nat.chains.some((p) => p.name === c.name));
        assert.ok(leaving || family === 'IPv6', 'the services added in `second` leave chains behind');
        if (leaving) restore(nsB, variant, family, `*nat\n-A PREROUTING -j ${leaving.name}\nCOMMIT\n`);
        restore(nsB, variant, family, streamed(prevSource, nsB));
        const fresh = compileSource(first, family);
        restore(nsA, variant, family, renderDiff(nextSource, fresh).text);
        assert.equal(normalized(save(nsB, variant, family), prev), normalized(save(nsA, variant, family), prev));
        assert.deepEqual(staleChains(prev, parseSave(save(nsB, variant, family))), { nat: [], filter: [] });

        // --cleanup: nothing of kproxy left, the foreign chain untouched.
        for (const ns of [nsA, nsB]) {
          restore(ns, variant, family, renderCleanup(parseSave(save(ns, variant, family))));
          const listing = save(ns, variant, family);
          assert.doesNotMatch(listing, /KPROXY/);
        }
        for (const ns of [nsA, nsB]) assert.match(save(ns, variant, family), /-A INPUT -j OTHER\n[^]*-A OTHER -j ACCEPT/);
      });
    }
  });
}
