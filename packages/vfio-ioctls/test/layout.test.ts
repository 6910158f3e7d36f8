/**
 * The layering of src/ (see DESIGN.md): runtime imports point down
 * core <- abi <- dma <- iommu, device <- open.ts <- index.ts <- cli/, iommu and
 * device never import each other, unsafe/ (like testing/) stands apart on
 * core and dma, and nothing forms an import cycle at run
 * time. Type-only imports are erased by the compiler and do not count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const src = resolve(__dirname, '../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The src files a file imports at run time (`import type` and `import { type X }`-only lines excluded). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  const pattern = /^(?:import|export)\s+(type\s+)?([^;]*?)\s+from\s+'(\.[^']*)'/gms;
  for (const match of text.matchAll(pattern)) {
    const [, typeOnly, names, spec] = match;
    if (typeOnly) continue;
    const braces = /^\{([^}]*)\}$/.exec(names.trim());
    if (braces && braces[1].split(',').map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith('type '))) continue;
    found.push(resolveModule(dirname(file), spec));
  }
  for (const match of text.matchAll(/require\('(\.[^']*)'\)/g)) found.push(resolveModule(dirname(file), match[1]));
  return found;
}

function resolveModule(from: string, spec: string): string {
  const base = resolve(from, spec);
  try {
    readFileSync(`${base}.ts`);
    return `${base}.ts`;
  } catch {
    return join(base, 'index.ts');
  }
}

/** The layer of a src file: its top folder, or the file name at the top. */
function layerOf(file: string): string {
  const rel = relative(src, file);
  return rel.includes('/') ? rel.split('/')[0] : rel.replace(/\.ts$/, '');
}

/** What each layer may import at run time (besides itself). */
const allowed: Record<string, string[]> = {
  core: [],
  abi: ['core'],
  discovery: ['core'],
  dma: ['core', 'abi'],
  iommu: ['core', 'abi', 'dma', 'discovery'],
  device: ['core', 'abi', 'dma', 'discovery'],
  open: ['core', 'abi', 'dma', 'discovery', 'iommu', 'device'],
  index: ['core', 'abi', 'dma', 'discovery', 'iommu', 'device', 'open'],
  testing: ['core', 'abi'],
  // vfio-ioctls/unsafe: raw syscalls and DmaBuffer addresses, beside the safe API; the main entry does not import it.
  unsafe: ['core', 'dma'],
  // The `vfio` command sits on top of everything; nothing imports it.
  cli: ['core', 'abi', 'dma', 'discovery', 'iommu', 'device', 'open', 'index'],
};

const files = sourceFiles(src);
const graph = new Map(files.map((f) => [f, runtimeImports(f)]));

describe('src layout', () => {
  test('every file sits in a known layer', () => {
    const unknown = files.map(layerOf).filter((layer) => !(layer in allowed));
    expect(unknown).toEqual([]);
  });

  test('runtime imports point down the layers', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const from = layerOf(file);
      for (const target of imports) {
        const to = layerOf(target);
        if (to !== from && !allowed[from].includes(to)) wrong.push(`${relative(src, file)} -> ${relative(src, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('nothing outside unsafe/ imports it, not even for types: the main entry point never reaches it', () => {
    const importers = files.filter((file) => layerOf(file) !== 'unsafe'
      && /(?:from|require\()\s*'(?:\.{1,2}\/)+(?:[\w-]+\/)*unsafe(?:\/[\w-]*)?'/.test(readFileSync(file, 'utf8')));
    expect(importers.map((file) => relative(src, file))).toEqual([]);
  });

  test('no import cycle at run time', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (file: string, stack: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...stack.slice(stack.indexOf(file)), file].map((f) => relative(src, f)).join(' -> '));
        return;
      }
      state.set(file, 'visiting');
      for (const target of graph.get(file) ?? []) visit(target, [...stack, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});
