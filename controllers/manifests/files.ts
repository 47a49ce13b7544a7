// Which files a --manifests path stands for, and a cheap fingerprint of them for the polling fallback.
import { readdirSync, statSync, type Stats } from 'node:fs';
import { extname, join } from 'node:path';
import { ManifestError } from '../../src/errors.ts';

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** A manifest file inside a folder (hidden files and editor leftovers such as .swp or ~ backups are skipped). */
export function isManifestFileName(name: string): boolean {
  return !name.startsWith('.') && EXTENSIONS.has(extname(name).toLowerCase());
}

export interface ManifestPath {
  readonly root: string;
  readonly isDirectory: boolean;
}

export function inspectManifestPath(path: string): ManifestPath {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ManifestError('KP_ERR_MANIFEST_UNREADABLE', path, `cannot read manifests ${path}: ${code}`, { cause: err });
  }
  return { root: path, isDirectory: stats.isDirectory() };
}

/** The manifest files, sorted (a folder is read one level deep, in name order, so later files win). */
export function listManifestFiles(target: ManifestPath): string[] {
  if (!target.isDirectory) return [target.root];
  return readdirSync(target.root, { withFileTypes: true })
    .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && isManifestFileName(entry.name))
    .map((entry) => join(target.root, entry.name))
    .sort();
}

/** Changes when any file is added, removed, replaced or rewritten (size, mtime, inode). */
export function fingerprint(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        const s = statSync(file);
        return `${file}:${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return `${file}:gone`;
      }
    })
    .join('|');
}
