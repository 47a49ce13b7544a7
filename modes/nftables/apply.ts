// The nftables mode's apply layer: checks at start that nft and the kernel can hold the layout, then keeps one
// table per IP family in step with the desired state (writer.ts). Never flushes anything at start or stop;
// `--cleanup` deletes kproxy's tables and nothing else.
import { spawn } from 'node:child_process';
import type { Logger, ModeOptions, ProxyMode, SyncReport, SyncRequest } from '../../src/model/mode.ts';
import type { DesiredState, IPFamily } from '../../src/model/types.ts';
import { compileSource, type NftSource } from './diff.ts';
import { NetlinkTableReader, type TableReader } from './kernel.ts';
import { TABLE } from './names.ts';
import { checkFeatures, deleteTable, type NftRunner } from './nft.ts';
import { FAMILY_OF } from './ruleset.ts';
import { NftTableWriter } from './writer.ts';

const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

export interface NftablesProxyOptions extends ModeOptions {
  /** Runs nft; tests may wrap it (e.g. `ip netns exec`). Default: spawn it. */
  readonly run?: NftRunner;
  /** Reads the table back; default: netlink from this process (which must be in the node's namespace). */
  readonly reader?: TableReader;
}

export const spawnRunner: NftRunner = (cmd, args, input) => new Promise((resolve) => {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let failed: Error | undefined;
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.on('error', () => { /* nft exited early; its exit code says why */ });
  child.on('error', (error) => { failed = error; });
  child.on('close', (code) => resolve(failed
    ? { code: 127, stdout: '', stderr: `${cmd}: ${failed.message}` }
    : { code: code ?? 1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  void (async () => {
    try {
      if (typeof input === 'string') child.stdin.write(input);
      else if (input) for (const piece of input) if (!child.stdin.write(piece)) await new Promise((r) => child.stdin.once('drain', r));
    } catch { /* the pipe broke: nft failed, and says so */ }
    child.stdin.end();
  })();
});

interface Family {
  readonly writer: NftTableWriter;
  applied: NftSource | undefined;
  idle: boolean;
}

export async function createNftablesProxy(options: NftablesProxyOptions): Promise<ProxyMode> {
  const run = options.run ?? spawnRunner;
  const reader = options.reader ?? new NetlinkTableReader();
  const log: Logger = options.log.child({ mode: 'nftables' });
  const families = new Map<IPFamily, Family>();
  for (const family of FAMILIES) {
    const problem = await checkFeatures(run, family);
    if (problem === undefined) families.set(family, { writer: new NftTableWriter(FAMILY_OF[family], run, reader, log), applied: undefined, idle: false });
    else if (family === 'IPv4') throw new Error(problem);
    else log.info({ problem }, 'IPv6 nftables unavailable; serving IPv4 only');
  }

  return {
    name: 'nftables',
    async sync(state: DesiredState, request: SyncRequest): Promise<SyncReport> {
      const started = performance.now();
      let operations = 0;
      let full = request.full;
      let tablesRead = 0;
      try {
        for (const [family, memory] of families) {
          if (memory.idle && state.families[family].services.length === 0) continue;
          memory.idle = false;
          const source = compileSource(state, family);
          const prev = memory.applied;
          if (request.full || prev === undefined || prev.contextKey !== source.contextKey) {
            full = true;
            const report = await memory.writer.full(source);
            if (report === 'idle') { memory.idle = true; continue; }
            operations += report.operations;
            if (report.read) tablesRead++;
          } else {
            operations += await memory.writer.partial(prev, source);
          }
          memory.applied = source;
        }
      } catch (error) {
        for (const memory of families.values()) {
          memory.applied = undefined;
          memory.idle = false;
          memory.writer.forget();
        }
        throw error;
      }
      return { full, stats: { operations, tablesRead, durationMs: Math.round(performance.now() - started) } };
    },
    async stop(): Promise<void> {
      // The tables stay: a restart must not interrupt traffic.
      reader.close();
    },
  };
}

/** Deletes kproxy's tables (both families) and nothing else. */
export async function cleanupNftables(options: NftablesProxyOptions): Promise<void> {
  const run = options.run ?? spawnRunner;
  const log = options.log.child({ mode: 'nftables' });
  const failures: string[] = [];
  for (const family of FAMILIES) {
    try {
      if (await deleteTable(run, FAMILY_OF[family], TABLE)) log.info({ family }, 'removed kproxy nftables table');
    } catch (error) {
      const version = await run('nft', ['--version']);
      if (version.code === 127) return; // no nft: nothing of ours can be there
      failures.push((error as Error).message);
    }
  }
  if (failures.length > 0) throw new Error(`nftables cleanup incomplete: ${failures.join('; ')}`);
}
