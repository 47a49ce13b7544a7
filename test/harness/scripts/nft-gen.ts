// Watches the nf_tables generation of the namespace it runs in: one netlink query per poll (NFT_MSG_GETGEN), which
// changes with every committed transaction, whoever commits it. Prints "<epoch ms> <generation>" at start and on
// every change; exits when its stdin closes. The nftables twin of xt-count.ts, for benchmarks.
//   nft-gen.ts [INTERVAL_MS]
import { NetfilterSocket } from '../../../modes/nftables/netlink/socket.ts';
import { readGeneration } from '../../../modes/nftables/netlink/read.ts';

const interval = Number(process.argv[2] ?? 10);
const socket = await NetfilterSocket.open();
let last = -1;
let busy = false; // the socket takes one request at a time
const poll = async (): Promise<void> => {
  if (busy) return;
  busy = true;
  const generation = await readGeneration(socket).finally(() => { busy = false; });
  if (generation !== last) {
    last = generation;
    process.stdout.write(`${Date.now()} ${generation} 0\n`);
  }
};
await poll();
const timer = setInterval(() => { void poll(); }, interval);
process.stdin.resume();
const quit = (): never => { clearInterval(timer); socket.close(); process.exit(0); };
process.stdin.on('end', quit);
process.stdin.on('error', quit);
