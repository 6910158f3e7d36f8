import fc from 'fast-check';
import * as B from '../src';

const TRIGGER = B.VFIO_IRQ_SET_ACTION_TRIGGER;

test('eventfds: argsz covers the data, DATA_EVENTFD is set, fds are s32 after the header', () => {
  const bytes = B.encodeIrqSet({ flags: TRIGGER, index: B.VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: 3, eventfds: [10, 11, -1] });
  const head = B.vfio_irq_set.decode(bytes);
  expect(head).toEqual({ argsz: B.vfio_irq_set.size + 12, flags: TRIGGER | B.VFIO_IRQ_SET_DATA_EVENTFD, index: B.VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: 3 });
  expect(bytes.length).toBe(head.argsz);
  expect(B.vfio_irq_set.decode(bytes, 0, { flexCount: 12 }).data!.slice(8)).toEqual([255, 255, 255, 255]);
  expect(B.decodeIrqSet(bytes).eventfds).toEqual([10, 11, -1]);
});

test('bools use one byte each; no data means DATA_NONE and argsz = sizeof', () => {
  const bools = B.encodeIrqSet({ flags: B.VFIO_IRQ_SET_ACTION_MASK, index: 0, start: 0, count: 2, bools: [true, false] });
  expect(B.decodeIrqSet(bools)).toMatchObject({ argsz: B.vfio_irq_set.size + 2, flags: B.VFIO_IRQ_SET_ACTION_MASK | B.VFIO_IRQ_SET_DATA_BOOL, bools: [true, false] });
  const none = B.encodeIrqSet({ flags: TRIGGER, index: 1, start: 0, count: 0 });
  expect(B.decodeIrqSet(none)).toEqual({ argsz: B.vfio_irq_set.size, flags: TRIGGER | B.VFIO_IRQ_SET_DATA_NONE, index: 1, start: 0, count: 0 });
});

test.each([
  ['DATA flag disagrees with the data', { flags: TRIGGER | B.VFIO_IRQ_SET_DATA_BOOL, index: 0, start: 0, count: 1, eventfds: [3] }, 'flags'],
  ['both kinds of data', { flags: TRIGGER, index: 0, start: 0, count: 1, eventfds: [3], bools: [true] }, 'data'],
  ['length differs from count', { flags: TRIGGER, index: 0, start: 0, count: 2, eventfds: [3] }, 'data'],
  ['no action', { flags: 0, index: 0, start: 0, count: 0 }, 'flags'],
  ['two actions', { flags: TRIGGER | B.VFIO_IRQ_SET_ACTION_MASK, index: 0, start: 0, count: 0 }, 'flags'],
  ['fd below -1', { flags: TRIGGER, index: 0, start: 0, count: 1, eventfds: [-2] }, 'data[0]'],
  ['fd not a number', { flags: TRIGGER, index: 0, start: 0, count: 1, eventfds: ['3'] }, 'data[0]'],
  ['bool not a boolean', { flags: TRIGGER, index: 0, start: 0, count: 1, bools: [1] }, 'data[0]'],
  ['negative start', { flags: TRIGGER, index: 0, start: -1, count: 0 }, 'start'],
])('rejects %s', (_what, args, field) => {
  expect(() => B.encodeIrqSet(args as never)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS', struct: 'vfio_irq_set', field }));
});

test('round trip over random eventfd and bool sets (property)', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 4 }),
      fc.nat({ max: 2 ** 32 - 1 }),
      fc.oneof(fc.array(fc.integer({ min: -1, max: 2 ** 31 - 1 }), { maxLength: 16 }).map((eventfds) => ({ eventfds })), fc.array(fc.boolean(), { maxLength: 16 }).map((bools) => ({ bools }))),
      (index, start, data) => {
        const count = ('eventfds' in data ? data.eventfds : data.bools).length;
        const bytes = B.encodeIrqSet({ flags: TRIGGER, index, start, count, ...data });
        expect(B.decodeIrqSet(bytes)).toMatchObject({ argsz: bytes.length, index, start, count, ...data });
      },
    ),
  );
});

test('decodeIrqSet on random or truncated bytes yields a result or the package error (fuzz)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        const d = B.decodeIrqSet(bytes);
        expect(d.count).toBe(B.vfio_irq_set.decode(bytes).count);
      } catch (e) {
        expect(B.isBindingsError(e)).toBe(true);
      }
    }),
    { numRuns: 500 },
  );
});
