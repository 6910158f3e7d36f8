// Which header trees the tests can use: the machine's own /usr/include always,
// plus every newer tree `pnpm --filter gen-bindings fetch-headers` unpacked.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');
export const cacheRoot = path.join(repoRoot, '.cache', 'linux-headers');
export const generatedDir = path.resolve(__dirname, '..', '..', 'src', 'generated');

export interface HeaderTree {
  label: string;
  dir: string;
  headers: string[];
}

export function headerTrees(): HeaderTree[] {
  const trees: HeaderTree[] = [];
  const present = (dir: string) => ['linux/vfio.h', 'linux/iommufd.h'].filter((h) => fs.existsSync(path.join(dir, h)));
  trees.push({ label: 'system /usr/include', dir: '/usr/include', headers: present('/usr/include') });
  if (fs.existsSync(cacheRoot)) {
    for (const v of fs.readdirSync(cacheRoot).sort()) {
      const dir = path.join(cacheRoot, v, 'include');
      if (fs.existsSync(path.join(dir, 'linux', 'vfio.h'))) trees.push({ label: `cached ${v}`, dir, headers: present(dir) });
    }
  }
  return trees;
}

/** The version the committed generated files name, as the cache directory the fetcher would use. */
export function pinnedTree(): HeaderTree | undefined {
  const pin = JSON.parse(fs.readFileSync(path.join(repoRoot, 'tools', 'gen-bindings', 'headers.json'), 'utf8')) as { version: string };
  return headerTrees().find((t) => t.dir === path.join(cacheRoot, pin.version.replace(/[^A-Za-z0-9.+~-]/g, '_'), 'include'));
}
