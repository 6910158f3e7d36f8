import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { errnoCodes, VfioError, vfioErrorCodes, type VfioErrorCode } from '../src';
import { errnoName, errnoNumber } from '../src/core/errno';
import { kernelError } from '../src/testing/errno';

const root = join(__dirname, '..');
const readmePath = join(root, 'README.md');
const START = '<!-- error-codes:start';
const END = '<!-- error-codes:end -->';

/** The README table as codes.ts says it should read. */
function renderTable(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const rows = Object.entries(vfioErrorCodes).map(([code, info]) => `| \`${code}\` | ${info.error} | ${cell(info.when)} | ${cell(info.action)} |`);
  return ['| Code | Thrown as | When | What to do |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** The lines between the README's markers. */
function readmeTable(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} ... ${END} block`);
  return readme.slice(readme.indexOf('\n', start) + 1, end).trim();
}

function filesUnder(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && pattern.test(entry.name))
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}

/** Every quoted 'ERR_...' (or ABORT_ERR) in the TypeScript sources and the addon. */
function codesInSources(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const files = [...filesUnder(join(root, 'src'), /\.ts$/), ...filesUnder(join(root, 'native'), /\.(cc|h)$/)];
  for (const file of files) {
    if (file.endsWith(join('core', 'codes.ts'))) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(/['"`]((?:ERR_[A-Z0-9_]+[A-Z0-9])|ABORT_ERR)['"`]/g)) {
      const where = found.get(match[1]!) ?? [];
      where.push(file.slice(root.length + 1));
      found.set(match[1]!, where);
    }
  }
  return found;
}

const catalogue = new Set<string>(Object.keys(vfioErrorCodes));

describe('the error-code catalogue', () => {
  if (process.env.UPDATE_README) {
    const readme = readFileSync(readmePath, 'utf8');
    const start = readme.indexOf('\n', readme.indexOf(START)) + 1;
    writeFileSync(readmePath, `${readme.slice(0, start)}${renderTable()}\n${readme.slice(readme.indexOf(END))}`);
  }

  test('README.md lists every code of codes.ts, and no other, with the same texts', () => {
    const table = readmeTable(readFileSync(readmePath, 'utf8'));
    const listed = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
    expect(listed.filter((code) => !catalogue.has(code))).toEqual([]); // in the README only
    expect([...catalogue].filter((code) => !listed.includes(code))).toEqual([]); // in codes.ts only
    // Same texts too; UPDATE_README=1 pnpm exec jest test/error-codes.test.ts rewrites the table.
    expect(table).toBe(renderTable());
  });

  test('every ERR_ code README.md mentions anywhere is in the catalogue', () => {
    const mentioned = new Set([...readFileSync(readmePath, 'utf8').matchAll(/\bERR_[A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]));
    expect([...mentioned].filter((code) => !catalogue.has(code))).toEqual([]);
  });

  test('src/ and native/ throw no code outside the catalogue', () => {
    const unknown = [...codesInSources()].filter(([code]) => !catalogue.has(code));
    expect(Object.fromEntries(unknown)).toEqual({});
  });

  test('every code of the catalogue is thrown somewhere ', () => {
    const used = new Set<string>();
    for (const code of codesInSources().keys()) used.add(code);
    expect([...catalogue].filter((code) => !used.has(code))).toEqual([]);
  });

  test('every entry says when and what to do', () => {
    for (const info of Object.values(vfioErrorCodes)) {
      expect(info.when.length).toBeGreaterThan(10);
      expect(info.action.length).toBeGreaterThan(5);
    }
  });

  test('a misspelt code is a compile error', () => {
    // @ts-expect-error not a code of the catalogue
    expect(new VfioError('ERR_VFIO_CLOSD', 'x').code).toBe('ERR_VFIO_CLOSD');
    // @ts-expect-error an alias Node never reports
    const alias: VfioErrorCode = 'EWOULDBLOCK';
    const numbered: VfioErrorCode = 'E77';
    expect([alias, numbered]).toHaveLength(2);
  });
});

describe('errno names', () => {
  test('errnoCodes are Linux errno names, each once, without the aliases libuv never reports', () => {
    const errno = osConstants.errno as Record<string, number>;
    const libuv = new Set([...getSystemErrorMap().values()].map(([name]) => name));
    expect(new Set(errnoCodes).size).toBe(errnoCodes.length);
    expect(errnoCodes.filter((code) => errno[code] === undefined && !libuv.has(code))).toEqual([]);
    // Each names an errno errnoNumber knows, and no two the same one.
    const numbers = errnoCodes.map((code) => errnoNumber(code));
    expect(numbers.filter((n) => n === undefined)).toEqual([]);
    expect(new Set(numbers).size).toBe(numbers.length);
    for (const alias of ['EWOULDBLOCK', 'EOPNOTSUPP', 'EDEADLOCK']) expect(errnoCodes).not.toContain(alias);
  });

  test('errnoName gives the name libuv gives, or E<n>, and always a code of the union', () => {
    for (let n = 1; n < 200; n++) {
      const name = errnoName(n);
      expect(errnoName(-n)).toBe(name);
      const libuv = getSystemErrorName(-n);
      expect(name).toBe(libuv.startsWith('E') ? libuv : `E${n}`);
      if (!/^E\d+$/.test(name)) expect(errnoCodes).toContain(name);
    }
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(95)).toBe('ENOTSUP');
    expect(errnoName(77)).toBe('E77');
  });

  test('errnoNumber reads names and E<n>, and nothing else', () => {
    expect(errnoNumber('EBUSY')).toBe(16);
    expect(errnoNumber('E77')).toBe(77);
    expect(errnoNumber('EUNATCH')).toBe(49); // a libuv name os.constants lacks
    expect(errnoNumber('EAI_AGAIN')).toBeUndefined(); // a libuv code, not an errno
    expect(errnoNumber('ERR_VFIO_CLOSED')).toBeUndefined();
    expect(errnoNumber('E0')).toBeUndefined();
    expect(errnoNumber('toString')).toBeUndefined();
  });

  test('the fake kernel names errnos as the library does', () => {
    expect(kernelError('EBADFD', 'ioctl')).toMatchObject({ code: 'E77', errno: -77 });
    expect(kernelError('EWOULDBLOCK', 'read')).toMatchObject({ code: 'EAGAIN', errno: -11 });
  });
});
