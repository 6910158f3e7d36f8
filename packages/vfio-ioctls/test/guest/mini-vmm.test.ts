// @guest-needs iommu kvm
// @guest-backends container iommufd
/**
 * examples/mini-vmm end to end on the real kernel: edu passed through to a
 * nested KVM guest (RAM DMA-mapped at IOVA = guest physical, BAR0 as a
 * memory slot, MSI into the guest by irqfd, the device's VFIO file in the
 * KVM VFIO device). The VMM runs as a child process, so a guest that hangs
 * in KVM_RUN fails the test by the timeout instead of hanging the suite;
 * its JSON report is checked against edu's known answers here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { device, GUEST_IOMMU } from './helpers';

interface Report {
  iommu: string;
  kvmVfioFile: string;
  answers: { name: string; got: number; want: number; ok: boolean }[];
  dmaMatches: boolean;
  irqfdConsumed: boolean;
  ok: boolean;
}

test('the mini VMM runs the nested guest and every answer edu gives it is right', () => {
  const edu = device('edu');
  const script = join(__dirname, '../../examples/mini-vmm/mini-vmm.js');
  const run = spawnSync(process.execPath, [script, edu.address, '--iommu', GUEST_IOMMU, '--json'], { encoding: 'utf8', timeout: 180_000 });
  // Its progress (stderr) says how far a run that did not finish got.
  assert.equal(run.error, undefined, `mini-vmm did not finish: ${String(run.error)}\n${run.stderr}`);
  const lines = run.stdout.trim().split('\n');
  const report = JSON.parse(lines[lines.length - 1]) as Report;
  const got = Object.fromEntries(report.answers.map((a) => [a.name, a.got]));
  assert.deepEqual(got, {
    identification: 0x010000ed,
    liveness: 0xedcba987, // ~0x12345678
    factorial: 3628800, // 10!
    'interrupts handled': 1,
    'DMA round trip (first dword)': 0x1811_0a03, // the VMM's pattern (i * 7 + 3) & 0xff, bytes 0..3
    'interrupt status seen by the handler': 0x2a,
  });
  assert.equal(report.dmaMatches, true, 'the 256 bytes edu carried back differ from those it read');
  assert.equal(report.irqfdConsumed, true, 'the eventfd was not drained by KVM');
  // The legacy path hands KVM the group, iommufd the device's cdev fd.
  if (GUEST_IOMMU === 'container') assert.equal(report.iommu, 'container');
  assert.equal(report.kvmVfioFile, report.iommu === 'container' ? 'group' : 'device');
  assert.equal(report.ok, true);
  assert.equal(run.status, 0, run.stderr);
});
