// The apply layer's view of the kernel: transactions written as nfnetlink batches (netlink/batch.ts), the
// nf_tables generation, and kproxy's table read back (netlink/read.ts), all over one netlink socket of this
// process — which must run in the node's network namespace, as the agent does.
import type { KernelView } from './diff.ts';
import { BatchEncoder, encodeTransaction } from './netlink/batch.ts';
import { readChainRules, readElements, readGeneration, readTable, tableExists, type KernelChain, type KernelRule } from './netlink/read.ts';
import { NetfilterSocket } from './netlink/socket.ts';
import { element, type NftFamily, type SetSpec } from './ruleset.ts';
import type { Transaction } from './transaction.ts';

export interface Kernel {
  /** Applies a transaction, all or nothing; `sets` lays out the existing sets it adds elements to. */
  transact(tx: Transaction, sets: ReadonlyMap<string, SetSpec>): Promise<void>;
  /**
   * Applies a transaction that `write` encodes as it goes (a whole table at 10k services, never held as data);
   * `expectedBytes` sizes the buffer.
   */
  stream(family: NftFamily, table: string, expectedBytes: number, write: (out: BatchEncoder) => void): Promise<void>;
  /** Changes with every transaction anyone commits in this network namespace. */
  generation(): Promise<number>;
  /** The table (its elements read set by set when the view is asked); undefined when absent. */
  read(family: NftFamily, table: string): Promise<KernelView | undefined>;
  /** Whether the table exists. */
  exists(family: NftFamily, table: string): Promise<boolean>;
  /** The rules of these chains (as the reader reports them). */
  rules(family: NftFamily, table: string, chains: readonly string[]): Promise<ReadonlyMap<string, readonly KernelRule[]>>;
  /** Every chain with its rules. */
  chains(family: NftFamily, table: string): Promise<ReadonlyMap<string, KernelChain> | undefined>;
  close(): void;
}

export class NetlinkKernel implements Kernel {
  #socket: Promise<NetfilterSocket> | undefined;

  #open(): Promise<NetfilterSocket> {
    this.#socket ??= NetfilterSocket.open();
    return this.#socket;
  }

  async transact(tx: Transaction, sets: ReadonlyMap<string, SetSpec>): Promise<void> {
    const socket = await this.#open();
    const batch = encodeTransaction(tx, sets, socket.nextSeq);
    socket.used(batch.lastSeq + 1); // + the batch end
    try {
      await socket.transact(batch);
    } finally {
      batch.release();
    }
  }

  async stream(family: NftFamily, table: string, expectedBytes: number, write: (out: BatchEncoder) => void): Promise<void> {
    const socket = await this.#open();
    const out = new BatchEncoder(family, table, new Map(), socket.nextSeq, expectedBytes);
    write(out);
    const batch = out.finish();
    socket.used(batch.lastSeq + 1);
    try {
      await socket.transact(batch);
    } finally {
      batch.release();
    }
  }

  async generation(): Promise<number> {
    return readGeneration(await this.#open());
  }

  async read(family: NftFamily, name: string): Promise<KernelView | undefined> {
    const socket = await this.#open();
    const table = await readTable(socket, family, name);
    if (!table) return undefined;
    const elements = async (spec: SetSpec): Promise<string[]> => {
      const list: string[] = [];
      await readElements(socket, family, name, spec, (key, value) => list.push(element(key, value)));
      return list;
    };
    return { chains: table.chains, sets: table.sets, elements };
  }

  async exists(family: NftFamily, table: string): Promise<boolean> {
    return tableExists(await this.#open(), family, table);
  }

  async rules(family: NftFamily, table: string, chains: readonly string[]): Promise<ReadonlyMap<string, readonly KernelRule[]>> {
    return readChainRules(await this.#open(), family, table, chains);
  }

  async chains(family: NftFamily, name: string): Promise<ReadonlyMap<string, KernelChain> | undefined> {
    return (await readTable(await this.#open(), family, name))?.chains;
  }

  close(): void {
    void this.#socket?.then((s) => s.close(), () => {});
    this.#socket = undefined;
  }
}
