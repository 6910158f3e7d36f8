/**
 * The KVM ABI written out by hand (examples/mini-vmm/kvm-abi.ts and the
 * library's src/abi/kvm-device-attr.ts) against the C compiler: a program
 * generated from the TypeScript tables' keys prints each sizeof, offsetof
 * and constant from <linux/kvm.h> of the pinned linux-libc-dev (the headers
 * vfio-bindings is generated from), and every value must agree.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL, KVM_SET_DEVICE_ATTR, kvmDeviceAttrLayout } from '../src/abi/kvm-device-attr';
import { KVM_CONSTANTS, KVM_IRQFD_FLAG_DEASSIGN, KVM_LAYOUT } from '../examples/mini-vmm/kvm-abi';

const repo = resolve(__dirname, '../../..');

/** What the C side is asked for: the mini VMM's tables plus the library's kvm_device_attr. */
const expected: Record<string, number> = {
  ...KVM_LAYOUT,
  ...KVM_CONSTANTS,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_SET_DEVICE_ATTR,
  KVM_DEV_VFIO_FILE,
  KVM_DEV_VFIO_FILE_ADD,
  KVM_DEV_VFIO_FILE_DEL,
  'sizeof kvm_device_attr': kvmDeviceAttrLayout.size,
  'kvm_device_attr.flags': kvmDeviceAttrLayout.flags,
  'kvm_device_attr.group': kvmDeviceAttrLayout.group,
  'kvm_device_attr.attr': kvmDeviceAttrLayout.attr,
  'kvm_device_attr.addr': kvmDeviceAttrLayout.addr,
};

/** One printf per key: `sizeof S`, `S.field[.sub]` (offsetof) or a constant's name. */
function cExpression(key: string): string {
  const size = /^sizeof (\w+)$/.exec(key);
  if (size) return `sizeof(struct ${size[1]})`;
  const field = /^(\w+)\.([\w.]+)$/.exec(key);
  if (field) return `offsetof(struct ${field[1]}, ${field[2]})`;
  if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`not a layout key: ${key}`);
  return `(unsigned long)(${key})`;
}

function compiledValues(keys: string[]): Record<string, number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { fetchHeaders } = require(join(repo, 'tools/gen-bindings/src/fetch-headers')) as { fetchHeaders(): string };
  const include = fetchHeaders();
  const dir = mkdtempSync(join(tmpdir(), 'kvm-layout-'));
  try {
    const lines = keys.map((key) => `  printf("%s=%lu\\n", ${JSON.stringify(key)}, (unsigned long)${cExpression(key)});`);
    const source = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/kvm.h>', 'int main(void) {', ...lines, '  return 0;', '}', ''].join('\n');
    writeFileSync(join(dir, 'layout.c'), source);
    const binary = join(dir, 'layout');
    execFileSync('gcc', ['-Wall', '-Werror', '-isystem', include, '-isystem', join(include, 'x86_64-linux-gnu'), '-o', binary, join(dir, 'layout.c')]);
    const output = execFileSync(binary, { encoding: 'utf8' });
    return Object.fromEntries(output.trim().split('\n').map((line) => {
      const at = line.lastIndexOf('=');
      return [line.slice(0, at), Number(line.slice(at + 1))];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('every KVM size, offset, request number and constant written in TypeScript matches <linux/kvm.h>', () => {
  const keys = Object.keys(expected);
  expect(keys.length).toBeGreaterThan(50);
  expect(compiledValues(keys)).toEqual(expected);
});
