// The parts of @kubernetes/client-node kproxy uses (KubeConfig: kubeconfig / in-cluster loading, every auth
// method, TLS; Watch; RequestContext), without the rest. The package index loads every generated API class and
// model: ~17 MiB of module source kept in the heap and ~40 MiB of RSS, for code kproxy never calls. Its
// dist/config.js needs from './gen/index.js' only createConfiguration and ServerConfiguration (for
// makeApiClient), so that one import is resolved to a module exporting just those two, while it loads. The
// redirect is made only if this client-node release still looks that way; otherwise the full index loads.
import { readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as ConfigModule from '@kubernetes/client-node/dist/config.js';
import type * as WatchModule from '@kubernetes/client-node/dist/watch.js';
import type * as HttpModule from '@kubernetes/client-node/dist/gen/http/http.js';

const indexUrl = import.meta.resolve('@kubernetes/client-node');
const configUrl = new URL('./config.js', indexUrl).href;
const configurationUrl = new URL('./gen/configuration.js', indexUrl).href;
const serversUrl = new URL('./gen/servers.js', indexUrl).href;

const source = (url: string): string => {
  try { return readFileSync(fileURLToPath(url), 'utf8'); } catch { return ''; }
};

/** The slim stand-in for config.js's './gen/index.js', or undefined when the layout is not the expected one. */
function slimGenModule(): string | undefined {
  const imports = [...source(configUrl).matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]\.\/gen\/index\.js['"]/g)];
  const names = imports.flatMap((match) => (match[1] ?? '').split(',').map((name) => name.trim()).filter((name) => name !== ''));
  const expected = ['ServerConfiguration', 'createConfiguration'];
  if (imports.length !== 1 || names.sort().join() !== expected.join()) return undefined;
  if (!/export function createConfiguration\b/.test(source(configurationUrl))) return undefined;
  if (!/export class ServerConfiguration\b/.test(source(serversUrl))) return undefined;
  const text = `export { createConfiguration } from ${JSON.stringify(configurationUrl)};\n`
    + `export { ServerConfiguration } from ${JSON.stringify(serversUrl)};\n`;
  return `data:text/javascript,${encodeURIComponent(text)}`;
}

async function loadConfigModule(): Promise<typeof ConfigModule> {
  const slim = slimGenModule();
  if (!slim) return (await import('@kubernetes/client-node')) as unknown as typeof ConfigModule;
  const hooks = registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === './gen/index.js' && context.parentURL === configUrl) return { url: slim, shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
  try {
    return (await import(configUrl)) as typeof ConfigModule;
  } finally {
    hooks.deregister();
  }
}

const configModule = await loadConfigModule();
const watchModule = (await import(new URL('./watch.js', indexUrl).href)) as typeof WatchModule;
const httpModule = (await import(new URL('./gen/http/http.js', indexUrl).href)) as typeof HttpModule;

export const KubeConfig = configModule.KubeConfig;
export type KubeConfig = ConfigModule.KubeConfig;
export const Watch = watchModule.Watch;
export const HttpMethod = httpModule.HttpMethod;
export type HttpMethod = HttpModule.HttpMethod;
export const RequestContext = httpModule.RequestContext;
