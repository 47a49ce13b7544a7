// Opens COUNT connections to HOST:PORT (CONCURRENCY at a time), asks one line on each and keeps them all open.
// Prints one JSON line {"held":N,"errors":{...},"answers":{...}} once every connection answered or failed,
// then holds them until stdin closes. usage: hold-many.ts HOST PORT COUNT [CONCURRENCY]
import net from 'node:net';

const [host = '', portText = '0', countText = '0', concText = '500'] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const concurrency = Number(concText);
const sockets: net.Socket[] = [];
const errors: Record<string, number> = {};
const answers: Record<string, number> = {};
let held = 0;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error('TIMEOUT')), 20_000);
    socket.once('data', (data: Buffer) => {
      clearTimeout(timer);
      const name = data.toString().split(' ')[0] ?? '';
      answers[name] = (answers[name] ?? 0) + 1;
      held++;
      resolve();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = err.code ?? err.message;
      errors[code] = (errors[code] ?? 0) + 1;
      resolve();
    });
    socket.write('hi\n');
    sockets.push(socket);
  });
}

let next = 0;
async function lane(): Promise<void> {
  while (next < count) {
    next++;
    await one();
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
process.stdout.write(`${JSON.stringify({ held, errors, answers })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
