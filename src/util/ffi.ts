// C library functions through koffi, the foreign-function library the project ships (prebuilt per platform):
// for the few system calls Node itself does not offer (splice and epoll for the relay, netlink sockets for IPVS).
import { firstLineOf } from './errors.ts';

/** A bound C function: call it synchronously, or with .async on a pool thread (the callback gets the result). */
export interface ForeignFunction {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}

interface Koffi {
  load(path: string): { func(definition: string): ForeignFunction };
  errno(): number;
}

export interface LibcFunctions<K extends string> {
  readonly call: Readonly<Record<K, ForeignFunction>>;
  /** errno of the last failed call on this thread. */
  errno(): number;
}

/**
 * Bind `definitions` (C prototypes by name, e.g. { close: 'int close(int)' }) from the C library. Rejects with
 * one line when koffi cannot be loaded or the platform is not Linux; `purpose` names what needs it.
 */
export async function loadLibcFunctions<K extends string>(purpose: string, definitions: Readonly<Record<K, string>>): Promise<LibcFunctions<K>> {
  if (process.platform !== 'linux') throw new Error(`${purpose} needs Linux, not ${process.platform}`);
  let koffi: Koffi;
  try {
    koffi = ((await import('koffi')) as { default: Koffi }).default;
  } catch (err) {
    throw new Error(`the koffi module cannot be loaded (${firstLineOf(err)})`);
  }
  const lib = koffi.load('libc.so.6');
  const call = Object.fromEntries(Object.entries<string>(definitions).map(([name, definition]) => [name, lib.func(definition)])) as
    Record<K, ForeignFunction>;
  return { call, errno: () => koffi.errno() };
}
