// @guest-needs iommu mtty suite
// @guest-backends container iommufd
/**
 * Migration v2 on the mtty sample driver (samples/vfio-mdev/mtty.c): two
 * dual-port mtty devices created through sysfs; the first put into a known
 * state through its I/O BARs (16550 registers, bytes in the loopback FIFO),
 * saved in STOP_COPY (and through PRE_COPY), restored into the second
 * (RESUMING -> RUNNING), which then reads back the same registers and bytes.
 * Also the kernel's feature answers for an mdev, DMA logging (mtty logs
 * nothing), and the failure paths: a save aborted, a resume cut short or
 * refused by the driver, each undone with nothing left open. mtty never
 * enters ERROR, so that state is covered by the host tests only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { Device, VfioError, type MigrationSession } from 'vfio-ioctls';
import { GUEST_CAPS, GUEST_IOMMU, openDevice, throwsVfio, trackResources } from './helpers';

const { keep, assertNoLeaks } = trackResources();
const PARENT = '/sys/class/mdev_bus/mtty';
const TYPE = `${PARENT}/mdev_supported_types/mtty-2`;

// mtty.c's facts: its stream is struct mtty_data (magic, version 1.0, the
// port count, flags) followed by a struct serial_port per port, 36 bytes each.
const MTTY_MAGIC = 0x7e9d09898c3e2c4en;
const HEADER_BYTES = 24;
const PORT_BYTES = 36;
const STREAM_BYTES = HEADER_BYTES + 2 * PORT_BYTES;

// 16550 registers (include/uapi/linux/serial_reg.h), one per byte of each I/O BAR.
const UART = { TX: 0, RX: 0, IER: 1, FCR: 2, LCR: 3, MCR: 4, LSR: 5, SCR: 7 } as const;
const LSR_DATA_READY = 0x01;

const created: string[] = [];

/** A dual-port mtty device, created through sysfs and removed after the file. */
function createMtty(): string {
  const uuid = randomUUID();
  writeFileSync(`${TYPE}/create`, uuid);
  created.push(uuid);
  return `/sys/bus/mdev/devices/${uuid}`;
}

let sourcePath: string;
let targetPath: string;

before(() => {
  assert.ok(existsSync(TYPE), `${TYPE} exists (the mtty sample is built in)`);
  sourcePath = createMtty();
  targetPath = createMtty();
});

after(() => {
  for (const uuid of created.splice(0)) writeFileSync(`/sys/bus/mdev/devices/${uuid}/remove`, '1');
});

const open = (path: string) => keep(openDevice(path));
const reg = (dev: Device, port: 0 | 1, offset: number) => dev.region(port)!.readUint8(offset);
const setReg = (dev: Device, port: 0 | 1, offset: number, value: number) => dev.region(port)!.writeUint8(offset, value);

/** The known state: line settings, scratch registers and bytes waiting in each port's loopback FIFO. */
const STATE = [
  { lcr: 0x03, mcr: 0x0b, ier: 0x01, scr: 0x5a, bytes: 'hi!' },
  { lcr: 0x1b, mcr: 0x00, ier: 0x00, scr: 0xa5, bytes: 'xyz42' },
] as const;

/** What readState() finds after putKnownState() (IER reads back its low 4 bits only). */
const EXPECTED = STATE.map((port) => ({ ...port, ier: port.ier & 0x0f }));

function putKnownState(dev: Device): void {
  for (const port of [0, 1] as const) {
    const want = STATE[port];
    setReg(dev, port, UART.FCR, 0xc7); // FIFO on and cleared
    setReg(dev, port, UART.LCR, want.lcr);
    setReg(dev, port, UART.MCR, want.mcr);
    setReg(dev, port, UART.IER, want.ier);
    setReg(dev, port, UART.SCR, want.scr);
    for (const byte of Buffer.from(want.bytes)) setReg(dev, port, UART.TX, byte);
  }
}

/** Reads the state back; reading RX drains the FIFO, so this is done once per device. */
function readState(dev: Device): { lcr: number; mcr: number; ier: number; scr: number; bytes: string }[] {
  return ([0, 1] as const).map((port) => {
    const regs = { lcr: reg(dev, port, UART.LCR), mcr: reg(dev, port, UART.MCR), ier: reg(dev, port, UART.IER), scr: reg(dev, port, UART.SCR) };
    let bytes = '';
    for (let i = 0; i < 16 && reg(dev, port, UART.LSR) & LSR_DATA_READY; i++) bytes += String.fromCharCode(reg(dev, port, UART.RX));
    return { ...regs, bytes };
  });
}

async function collect(session: MigrationSession): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of session) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test('mtty by its sysfs path: through its own cdev where the kernel has iommufd (an mdev\'s vfio-dev/ is under /sys/bus/mdev)', () => {
  const dev = open(sourcePath);
  const cdevs = GUEST_CAPS.includes('cdev') && GUEST_CAPS.includes('iommufd');
  assert.equal(dev.iommu!.kind, GUEST_IOMMU === 'container' || !cdevs ? 'container' : 'iommufd');
  dev.close();
});

test('mtty by its sysfs path: its features as the kernel answers them for an mdev', () => {
  const dev = open(sourcePath);
  assert.ok(dev.info.pci);
  assert.equal(dev.info.numRegions, 9);
  const features = dev.features();
  // The vfio core's migration and DMA logging features; an mdev has no driver feature op (no low power, no VF token).
  assert.deepEqual(features.supported.map((f) => `${f.name}:${f.get ? 'G' : ''}${f.set ? 'S' : ''}`), [
    'MIGRATION:G', 'MIG_DEVICE_STATE:GS', 'DMA_LOGGING_START:S', 'DMA_LOGGING_STOP:S', 'DMA_LOGGING_REPORT:G',
    'MIG_DATA_SIZE:G', 'MIG_PRECOPY_INFOv2:S',
  ]);
  assert.deepEqual(features.migration, { stopCopy: true, p2p: true, preCopy: true, bits: 7n });
  assert.equal(features.dmaLogging, true);
  assert.equal(features.lowPower, false);
  const error = throwsVfio(() => dev.enterLowPower(), { code: 'ENOTTY', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(error.message, /SET LOW_POWER_ENTRY refused/);
  dev.close();
});

test('the state machine: arcs walked one at a time, MIG_DATA_SIZE, STOP_COPY -> PRE_COPY refused', () => {
  const dev = open(sourcePath);
  const { migration } = dev;
  assert.equal(migration.state, 'RUNNING');
  assert.deepEqual([...migration.states], ['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING', 'RUNNING_P2P', 'PRE_COPY', 'PRE_COPY_P2P']);
  assert.deepEqual(migration.path('STOP'), ['RUNNING', 'RUNNING_P2P', 'STOP']);
  assert.equal(migration.setState('STOP'), undefined);
  assert.equal(migration.state, 'STOP');
  assert.equal(migration.dataSize(), BigInt(STREAM_BYTES));
  const save = migration.setState('STOP_COPY');
  assert.ok(save);
  assert.equal(save.kind, 'saving');
  throwsVfio(() => migration.setState('PRE_COPY'), { code: 'ERR_VFIO_UNSUPPORTED' });
  assert.equal(migration.state, 'STOP_COPY');
  // The kernel's own answer to a data fd ioctl outside PRE_COPY.
  throwsVfio(() => save.precopyInfo(), { code: 'EINVAL', operation: 'VFIO_MIG_GET_PRECOPY_INFO' });
  migration.setState('RUNNING');
  assert.equal(save.closed, true);
  assert.equal(migration.state, 'RUNNING');
  dev.close();
});

test('save in STOP_COPY, restore into the other mtty: it reads back the same registers and FIFO bytes', async () => {
  const source = open(sourcePath);
  const target = open(targetPath);
  putKnownState(source);
  assert.equal(reg(target, 0, UART.SCR), 0, 'the target starts fresh');
  assert.equal(reg(target, 0, UART.LSR) & LSR_DATA_READY, 0);

  const save = source.migration.setState('STOP_COPY')!;
  const stream = await collect(save);
  assert.equal(stream.length, STREAM_BYTES);
  assert.equal(save.complete, true);
  assert.equal(stream.readBigUInt64LE(0), MTTY_MAGIC);
  assert.deepEqual([stream.readUInt32LE(8), stream.readUInt32LE(12), stream.readUInt32LE(16)], [1, 0, 2]);
  source.migration.setState('RUNNING');

  const resume = target.migration.setState('RESUMING')!;
  assert.equal(resume.kind, 'resuming');
  // Segments of 10 bytes: the stream is opaque, only its byte order counts.
  await pipeline(Readable.from(Array.from({ length: Math.ceil(stream.length / 10) }, (_, i) => stream.subarray(i * 10, i * 10 + 10))), resume.createWriteStream());
  assert.equal(resume.transferred, STREAM_BYTES);
  target.migration.setState('RUNNING');
  assert.equal(target.migration.state, 'RUNNING');
  assert.deepEqual(readState(target), EXPECTED);
  // Saving does not change the source: it reads back the same.
  assert.deepEqual(readState(source), EXPECTED);
  source.close();
  target.close();
});

test('PRE_COPY: the header first, a temporary end (mtty answers 0), the ports in STOP_COPY on the same fd', async () => {
  const source = open(sourcePath);
  const target = open(targetPath);
  putKnownState(source);
  const save = source.migration.setState('PRE_COPY')!;
  assert.deepEqual(save.precopyInfo(), { initialBytes: BigInt(HEADER_BYTES), dirtyBytes: 0n });
  const chunks: Uint8Array[] = [];
  const readable = save.createReadStream();
  readable.on('data', (chunk: Uint8Array) => chunks.push(chunk));
  const ended = once(readable, 'end');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(save.transferred, HEADER_BYTES);
  assert.equal(readable.readableEnded, false, 'the stream waits at the temporary end');
  assert.deepEqual(save.precopyInfo(), { initialBytes: 0n, dirtyBytes: 0n });
  assert.deepEqual(source.migration.path('STOP_COPY'), ['PRE_COPY', 'PRE_COPY_P2P', 'STOP_COPY']);
  assert.equal(source.migration.setState('STOP_COPY'), undefined, 'no new fd: the session goes on');
  await ended;
  assert.equal(save.transferred, STREAM_BYTES);
  source.migration.setState('RUNNING');

  const resume = target.migration.setState('RESUMING')!;
  resume.write(Buffer.concat(chunks));
  target.migration.setState('RUNNING');
  assert.deepEqual(readState(target), EXPECTED);
  readState(source); // drain the source's FIFO for the tests after
  source.close();
  target.close();
});

test('a save aborted: leaving STOP_COPY before the end fails the stream and closes the data fd', async () => {
  const source = open(sourcePath);
  const save = source.migration.setState('STOP_COPY')!;
  const first = new Uint8Array(10);
  assert.equal(save.read(first), 10);
  const readable = save.createReadStream({ highWaterMark: 16 });
  readable.pause();
  const failed = once(readable, 'error');
  source.migration.setState('STOP');
  const [error] = (await failed) as [VfioError];
  assert.equal(error.code, 'ERR_VFIO_CLOSED');
  assert.match(error.message, /the device moved from STOP_COPY to STOP/);
  assert.equal(save.closed, true);
  source.migration.setState('RUNNING');
  source.close();
});

test('a resume cut short: the data fd closed early, RESUMING -> STOP refused (EINVAL), reset() back to RUNNING', async () => {
  const source = open(sourcePath);
  const target = open(targetPath);
  const stream = await collect(source.migration.setState('STOP_COPY')!);
  source.migration.setState('RUNNING');
  const resume = target.migration.setState('RESUMING')!;
  resume.write(stream.subarray(0, HEADER_BYTES + 10));
  resume.close();
  const error = throwsVfio(() => target.migration.setState('RUNNING'), { code: 'EINVAL', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(error.message, /the migration arc RESUMING -> STOP was refused .*the device is now in RESUMING/);
  assert.equal(target.migration.state, 'RESUMING');
  target.migration.reset();
  assert.equal(target.migration.state, 'RUNNING');
  source.close();
  target.close();
});

test('a stream the driver refuses: mtty checks the header (EFAULT from write), the writable fails, reset() undoes it', async () => {
  const target = open(targetPath);
  const resume = target.migration.setState('RESUMING')!;
  const writable = resume.createWriteStream();
  const failed = once(writable, 'error');
  writable.write(Buffer.alloc(HEADER_BYTES, 0x42));
  const [error] = (await failed) as [VfioError];
  assert.equal(error.code, 'EFAULT');
  assert.equal(error.syscall, 'write');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(resume.closed, true);
  target.migration.reset();
  assert.equal(target.migration.state, 'RUNNING');
  target.close();
});

test('DMA logging: started over ranges, mtty reports no dirty page, stopped; the kernel checks a report\'s page size', () => {
  const dev = open(sourcePath);
  const log = dev.startDmaLogging({ ranges: [{ iova: 0x10_0000, size: 0x10_0000 }, { iova: 0x400_0000, size: 0x1000 }] });
  assert.equal(log.pageSize, 4096n);
  assert.deepEqual(log.report(), []);
  assert.deepEqual(log.report({ iova: 0x10_0000, size: 0x8000 }, { pageSize: 0x2000 }), []);
  // A report of page size 0 never reaches the driver: the vfio core refuses it.
  const refused = throwsVfio(() => dev.getFeature('DMA_LOGGING_REPORT', 32), { code: 'EINVAL' });
  assert.match(refused.message, /GET DMA_LOGGING_REPORT refused/);
  log.stop();
  assert.equal(log.active, false);
  dev.close();
});

test('no fd is left open', () => assertNoLeaks());
