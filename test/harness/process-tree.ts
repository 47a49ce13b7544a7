// What a process and everything it started hold right now, read from /proc: the resident memory and open
// descriptors of the Node processes among them (the agent and its userspace relay processes), and how many
// descendants there are (relay processes, and tools such as iptables-restore or conntrack while they run).
// A child caught between fork and exec is still a copy of its parent (same command line, the parent's pages and
// descriptors): it counts as a descendant, not as a Node process, or the agent would be counted twice.
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';

export interface ProcessTreeUsage {
  /** VmRSS summed over the Node processes of the tree (the root included). */
  readonly rssKiB: number;
  /** Open descriptors summed over the same processes. */
  readonly fds: number;
  /** How many Node processes that is. */
  readonly nodeProcesses: number;
  /** Every descendant of the root, whatever it runs (an unreaped exited tool counts too). */
  readonly descendants: number;
}

const NODE_BINARY = realpathSync(process.execPath);

/** Direct children of a process (over all its threads); [] once it is gone. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return children;
  }
  for (const task of tasks) {
    try {
      for (const word of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ')) if (word !== '') children.push(Number(word));
    } catch {
      // the thread ended while we read
    }
  }
  return children;
}

export function descendantsOf(pid: number): number[] {
  const found: number[] = [];
  for (let queue = childrenOf(pid); queue.length > 0;) {
    const next = queue.shift() as number;
    found.push(next);
    queue = queue.concat(childrenOf(next));
  }
  return found;
}

function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return undefined;
  }
}

function isNodeProcess(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === NODE_BINARY;
  } catch {
    return false; // gone, or a zombie (its exe link is empty)
  }
}

function rssKiBOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function fdsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Usage of `root` and its descendants now. Throws when the root itself is gone. */
export function processTreeUsage(root: number): ProcessTreeUsage {
  if (!isNodeProcess(root)) throw new Error(`process ${root} is gone (or is not a Node process)`);
  const descendants = descendantsOf(root);
  const rootCommand = commandLine(root);
  const nodes = [root, ...descendants.filter((pid) => isNodeProcess(pid) && commandLine(pid) !== rootCommand)];
  let rssKiB = 0;
  let fds = 0;
  for (const pid of nodes) {
    rssKiB += rssKiBOf(pid);
    fds += fdsOf(pid);
  }
  return { rssKiB, fds, nodeProcesses: nodes.length, descendants: descendants.length };
}
