// A control process with relay processes (workers: 2) serving one loopback service; prints
// {"pids":[...],"port":N} once it relays, then waits to be killed. usage: relay-parent.ts VIP BACKEND_IP BACKEND_PORT PORT
import { defaultConfig } from '../../../modes/userspace/config.ts';
import { UserspaceProxy } from '../../../modes/userspace/proxy.ts';
import { desiredState, memoryLogger } from '../helpers.ts';

const [vip = '', backendIp = '', backendPort = '0', port = '0'] = process.argv.slice(2);
const proxy = new UserspaceProxy({ config: { ...defaultConfig, workers: 2 }, log: memoryLogger() });
await proxy.sync(desiredState([{ name: 'orphan', clusterIP: vip, port: Number(port), endpoints: [[backendIp, Number(backendPort)]] }]), { full: true });
process.stdout.write(`${JSON.stringify({ pids: proxy.relayPids() })}\n`);
setInterval(() => undefined, 60_000);
