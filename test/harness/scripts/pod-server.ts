// A pod's tiny server: on every port given, answers each TCP line and each UDP datagram with
// "<pod name> <peer address>\n", so a test can tell which backend answered and which source address it saw.
// Exits when its stdin closes, so it never outlives the test process that started it.
// usage: pod-server.ts NAME PORT[,PORT...]
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const [name = 'pod', portList = '8080'] = process.argv.slice(2);
const ports = portList.split(',').map(Number);
const answer = (peer: string | undefined): string => `${name} ${peer ?? '?'}\n`;
let listening = 0;
const ready = (): void => { if (++listening === ports.length * 2) process.stdout.write('ready\n'); };

for (const port of ports) {
  const tcp = createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (data) => {
      buffered += data.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        buffered = buffered.slice(newline + 1);
        socket.write(answer(socket.remoteAddress?.replace(/^::ffff:/, '')));
        newline = buffered.indexOf('\n');
      }
    });
  });
  tcp.listen({ port, host: '::', backlog: 1024 }, ready);
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, rinfo) => {
    udp.send(answer(rinfo.address.replace(/^::ffff:/, '')), rinfo.port, rinfo.address);
  });
  udp.bind(port, '::', ready);
}
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
