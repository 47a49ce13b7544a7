#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node --max-semi-space-size=4
// The flag caps V8's young generation (semi-spaces of 4 MiB): without it, ingesting 10k services grows it to
// 128 MiB and it is never given back (measured at 10k services: iptables mode 310 → ≈ 200 MiB peak RSS, the
// Kubernetes source 376 → 234 MiB; docs/benchmarks.md). MALLOC_ARENA_MAX=1: one malloc arena for all threads
// (libuv and V8 helper threads), ≈ 8 MiB less at 10k services.
// kproxy's entry point. The sources are TypeScript run directly by Node 24 (type stripping), so an older Node
// cannot even load them: say so in one line instead of a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`kproxy: needs Node.js 24 or newer, this is ${process.version} (run it with npx kproxy, or node_modules/.bin/node bin/kproxy.js)\n`);
  process.exit(1);
}
// Cache the compiled (type-stripped) modules on disk: start-up then matches a compiled-JS build
// (see README, "Node 24 type stripping, no build step"). Harmless when the cache folder is not writable.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
const { main } = await import('../src/main.ts');
const status = await main(process.argv.slice(2));
// Exit explicitly: mode workers or sockets being closed must not hold the process after a clean stop. But first
// let stdout and stderr drain: into a pipe Node writes what does not fit at once later, and exit would cut it
// (`kproxy plan … | less` lost everything after the first 64 KiB).
await Promise.all([process.stdout, process.stderr].map((stream) => new Promise((resolve) => stream.write('', resolve))));
process.exit(status);
