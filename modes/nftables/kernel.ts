// What the apply layer reads back from the kernel: the nf_tables generation and kproxy's table, through the netlink
// reader in this process (which must run in the node's network namespace, as the agent does).
import type { KernelView } from './diff.ts';
import { comparableSets } from './diff.ts';
import { readElements, readGeneration, readTable, type KernelChain } from './netlink/read.ts';
import { NetfilterSocket } from './netlink/socket.ts';
import type { NftFamily, Table } from './ruleset.ts';

export interface TableReader {
  /** Changes with every transaction anyone commits in this network namespace. */
  generation(): Promise<number>;
  /** The table, with the elements of every desired set it holds in the desired layout; undefined when absent. */
  read(desired: Table): Promise<KernelView | undefined>;
  /** Only the chains and their rules (cheap: the rules are few). */
  chains(family: NftFamily, table: string): Promise<ReadonlyMap<string, KernelChain> | undefined>;
  close(): void;
}

export class NetlinkTableReader implements TableReader {
  #socket: Promise<NetfilterSocket> | undefined;

  #open(): Promise<NetfilterSocket> {
    this.#socket ??= NetfilterSocket.open();
    return this.#socket;
  }

  async generation(): Promise<number> {
    return readGeneration(await this.#open());
  }

  async read(desired: Table): Promise<KernelView | undefined> {
    const socket = await this.#open();
    const table = await readTable(socket, desired.family, desired.name);
    if (!table) return undefined;
    const elements = new Map<string, Map<string, string | undefined>>();
    for (const spec of comparableSets(desired, table)) {
      const map = new Map<string, string | undefined>();
      await readElements(socket, desired.family, desired.name, spec, (key, value) => map.set(key, value));
      elements.set(spec.name, map);
    }
    return { chains: table.chains, sets: table.sets, elements };
  }

  async chains(family: NftFamily, name: string): Promise<ReadonlyMap<string, KernelChain> | undefined> {
    return (await readTable(await this.#open(), family, name))?.chains;
  }

  close(): void {
    void this.#socket?.then((s) => s.close(), () => {});
    this.#socket = undefined;
  }
}
