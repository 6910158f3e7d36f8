/**
 * `@internal` means internal (DESIGN.md): not in the published types and
 * not reachable at run time. The run-time half looks at real instances made
 * through the fake kernel: no name the device layer once exposed for its
 * collaborators (Device.adopt, setIrqs, Region.probe, ...) is on them, and
 * their constructors refuse whoever is not the library. The type half
 * compiles the declarations with tsconfig.build.json's options, in memory:
 * nothing tagged @internal survives, and the declarations still check on
 * their own (a stripped type that a public one names would break users).
 */
import { EventEmitter } from 'node:events';
import { dirname, join, resolve } from 'node:path';
import * as ts from 'typescript';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, DmaMapping, Interrupts, MmioWindow, Region, RegionMapping } from '../src';
import { EDU, kernel } from './helpers';

/** The names each class (or its constructor, for statics) exposed as @internal, or as TypeScript-only private. */
const formerlyInternal: Record<string, { instance: string[]; statics: string[] }> = {
  Device: { instance: ['setIrqs', 'soleRange', 'interruptsClosed', 'checkIrqIndex', 'ioctl'], statics: ['adopt'] },
  Region: {
    instance: ['unmapAll', 'checkSpan', 'checkAccess', 'transfer', 'checkedStart', 'scalarScratch', 'readScalar', 'writeScalar'],
    statics: ['probe'],
  },
  Interrupts: { instance: ['onReadable'], statics: ['enable'] },
  RegionMapping: { instance: [], statics: [] },
  MmioWindow: { instance: ['unmap'], statics: [] },
  DmaMapping: { instance: ['markUnmapped'], statics: [] },
};

/** Every string-named property reachable on `value`, own and inherited, up to a platform prototype. */
function reachableNames(value: object): Set<string> {
  const names = new Set<string>();
  for (let at: object | null = value; at && at !== Object.prototype && at !== Function.prototype && at !== EventEmitter.prototype && at !== EventEmitter; at = Object.getPrototypeOf(at)) {
    for (const name of Object.getOwnPropertyNames(at)) names.add(name);
  }
  return names;
}

/** One live instance of each public class of the device layer, and DmaMapping. */
function instances() {
  const k = kernel([{ address: EDU, group: 5, irqs: [{ index: b.VFIO_PCI_MSI_IRQ_INDEX, count: 1 }] }]);
  const container = Container.open(k.env);
  const device = Device.open(EDU, { ...k.env, container });
  const region = device.region(b.VFIO_PCI_BAR0_REGION_INDEX)!;
  const mapping = region.map();
  const irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX);
  const buffer = DmaBuffer.alloc(4096, k.env);
  const dma = container.map(buffer);
  const all = { Device: device, Region: region, Interrupts: irqs, RegionMapping: mapping, MmioWindow: mapping.windows[0]!, DmaMapping: dma };
  const close = () => {
    dma.unmap();
    buffer.close();
    device.close();
    container.close();
  };
  return { all, close };
}

describe('at run time', () => {
  test('no formerly internal name is reachable on an instance or its class', () => {
    const { all, close } = instances();
    const classes = { Device, Region, Interrupts, RegionMapping, MmioWindow, DmaMapping };
    const found: string[] = [];
    for (const [className, instance] of Object.entries(all)) {
      expect(instance).toBeInstanceOf(classes[className as keyof typeof classes]);
      const { instance: names, statics } = formerlyInternal[className]!;
      const onInstance = reachableNames(instance);
      const onClass = reachableNames(instance.constructor);
      for (const name of names) if (onInstance.has(name)) found.push(`${className}#${name}`);
      for (const name of statics) if (onClass.has(name)) found.push(`${className}.${name}`);
    }
    close();
    expect(found).toEqual([]);
  });

  test('the public names are still there', () => {
    const { all, close } = instances();
    for (const [instance, names] of [
      [all.Device, ['irqInfo', 'enableIrq', 'interrupts', 'regions', 'region', 'hotReset', 'close']],
      [all.Region, ['read', 'write', 'map', 'mappings', 'readUint32']],
      [all.Interrupts, ['trigger', 'mask', 'unmask', 'disable', 'events', 'next']],
      [all.RegionMapping, ['window', 'read32', 'unmap']],
      [all.MmioWindow, ['read32', 'write32', 'contains', 'mapped']],
      [all.DmaMapping, ['unmap', 'close', 'mapped']],
    ] as const) {
      const reachable = reachableNames(instance);
      for (const name of names) expect([name, reachable.has(name)]).toEqual([name, true]);
    }
    expect(typeof Device.open).toBe('function');
    expect(typeof Device.fromFd).toBe('function');
    close();
  });

  test('the constructors refuse callers outside the library', () => {
    const { all, close } = instances();
    const fd = all.Device.fd;
    for (const instance of Object.values(all)) {
      const Class = instance.constructor as new (...args: unknown[]) => unknown;
      for (const args of [[], [Symbol('key'), all.Device.context, fd, 'forged', all.Device.info, {}]]) {
        expect(() => new Class(...args)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR' }));
      }
      // A subclass reaches the same constructor.
      const Sub = class extends (Class as new (...args: unknown[]) => object) {};
      expect(() => new Sub(Symbol('key'))).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_CONSTRUCTOR' }));
    }
    // The refused Device took no charge of the real fd: the device still works and closes once.
    expect(all.Device.irqInfo(b.VFIO_PCI_MSI_IRQ_INDEX).count).toBe(1);
    close();
  });
});

describe('in the published declarations', () => {
  const packageRoot = resolve(__dirname, '..');
  // Not dist/: an old build there must not stand in for a file the compiler did not emit.
  const outDir = join(packageRoot, '.internal-surface-check');
  let emitted: Map<string, string>;

  beforeAll(() => {
    const configPath = join(packageRoot, 'tsconfig.build.json');
    const config = ts.readConfigFile(configPath, ts.sys.readFile);
    const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, packageRoot, undefined, configPath);
    const options = { ...parsed.options, outDir, declaration: true, emitDeclarationOnly: true, sourceMap: false, declarationMap: false };
    emitted = new Map();
    const program = ts.createProgram(parsed.fileNames, options);
    const result = program.emit(undefined, (path, text) => emitted.set(resolve(path), text));
    expect(ts.formatDiagnostics(result.diagnostics, formatHost)).toBe('');
  }, 120_000);

  test('tsconfig.build.json strips @internal declarations', () => {
    const config = ts.readConfigFile(join(packageRoot, 'tsconfig.build.json'), ts.sys.readFile);
    expect(config.config.compilerOptions.stripInternal).toBe(true);
  });

  test('no declaration file of the device layer or DmaMapping keeps an @internal member', () => {
    const files = ['device/device', 'device/region', 'device/region-mapping', 'device/interrupts', 'dma/mapping', 'abi/irq-info'];
    const members = new Map<string, string[]>();
    for (const file of files) {
      const text = emitted.get(join(outDir, `${file}.d.ts`));
      expect([file, text === undefined]).toEqual([file, false]);
      expect([file, text!.split('\n').filter((line) => line.includes('@internal'))]).toEqual([file, []]);
      const source = ts.createSourceFile(file, text!, ts.ScriptTarget.ES2022);
      for (const statement of source.statements) {
        if (ts.isClassDeclaration(statement) && statement.name) {
          members.set(statement.name.text, statement.members.flatMap((m) => (m.name && ts.isIdentifier(m.name) ? [m.name.text] : [])));
        }
      }
    }
    for (const [className, { instance, statics }] of Object.entries(formerlyInternal)) {
      const declared = members.get(className);
      expect([className, declared === undefined]).toEqual([className, false]);
      expect([className, declared!.filter((name) => instance.includes(name) || statics.includes(name))]).toEqual([className, []]);
    }
  });

  test('nothing tagged @internal anywhere in the package survives', () => {
    const kept = [...emitted].filter(([, text]) => text.includes('@internal')).map(([path]) => path.slice(outDir.length + 1));
    expect(kept).toEqual([]);
  });

  test('the declarations check on their own (nothing public names a stripped type)', () => {
    const roots = [join(outDir, 'index.d.ts'), join(outDir, 'testing/index.d.ts')];
    const options: ts.CompilerOptions = {
      noEmit: true,
      strict: true,
      skipLibCheck: false,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      types: ['node'],
    };
    const host = ts.createCompilerHost(options);
    const inMemory = (path: string) => emitted.get(resolve(path));
    host.fileExists = (path) => inMemory(path) !== undefined || ts.sys.fileExists(path);
    host.readFile = (path) => inMemory(path) ?? ts.sys.readFile(path);
    host.directoryExists = (path) => resolve(path).startsWith(outDir) || ts.sys.directoryExists(path);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (path, version, onError) => {
      const text = inMemory(path);
      return text !== undefined ? ts.createSourceFile(path, text, version) : getSourceFile(path, version, onError);
    };
    const program = ts.createProgram(roots, options, host);
    // Only our files: checking the platform's own declarations would take most of the time.
    const ours = program.getSourceFiles().filter((file) => file.fileName.startsWith(outDir));
    expect(ours.length).toBeGreaterThan(20);
    const diagnostics = ours.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]);
    expect(ts.formatDiagnostics(diagnostics, formatHost)).toBe('');
  });
});

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (path) => path,
  getCurrentDirectory: () => dirname(__dirname),
  getNewLine: () => '\n',
};
