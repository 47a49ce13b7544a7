// kproxy's own version (package.json), for --version and the kubernetes_build_info metric.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached !== undefined) return cached;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}

/** kube-proxy's kubernetes_build_info labels, filled with what describes this build of kproxy. */
export function buildInfoLabels(): Record<'major' | 'minor' | 'git_version' | 'git_commit' | 'git_tree_state' | 'build_date' | 'go_version' | 'compiler' | 'platform', string> {
  const version = packageVersion();
  const [major = '', minor = ''] = version.split('.');
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  return {
    major, minor, git_version: `v${version}`, git_commit: '', git_tree_state: '', build_date: '',
    // The runtime, in the label kube-proxy gives its Go version.
    go_version: `node${process.versions.node}`, compiler: 'node', platform: `${process.platform}/${arch}`,
  };
}
