/**
 * The migration state machine's path finding (device/migration-path.ts),
 * held to two independent references: the combination transitions that
 * vfio_main.c documents for a device with every optional state, and the
 * fake kernel's next-step table (the kernel's vfio_mig_get_next_state
 * table, with unsupported states skipped) for every flag combination.
 */
import * as b from 'vfio-bindings';
import { migrationArcs, migrationPath, supportedStates, type MigrationState } from '../src/device/migration-path';
import type { MigrationFlags } from '../src/device/features';
import { FakeMigration } from '../src/testing/fake-migration';

function flags(p2p: boolean, preCopy: boolean): MigrationFlags {
  const bits = b.VFIO_MIGRATION_STOP_COPY | (p2p ? b.VFIO_MIGRATION_P2P : 0) | (preCopy ? b.VFIO_MIGRATION_PRE_COPY : 0);
  return { stopCopy: true, p2p, preCopy, bits: BigInt(bits) };
}

const ALL = flags(true, true);

/** vfio_main.c's list of the combination transitions with every optional state. */
const DOCUMENTED = `
  PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
  PRE_COPY -> RUNNING -> RUNNING_P2P
  PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP
  PRE_COPY -> RUNNING -> RUNNING_P2P -> STOP -> RESUMING
  PRE_COPY_P2P -> RUNNING_P2P -> RUNNING
  PRE_COPY_P2P -> RUNNING_P2P -> STOP
  PRE_COPY_P2P -> RUNNING_P2P -> STOP -> RESUMING
  RESUMING -> STOP -> RUNNING_P2P
  RESUMING -> STOP -> RUNNING_P2P -> PRE_COPY_P2P
  RESUMING -> STOP -> RUNNING_P2P -> RUNNING
  RESUMING -> STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
  RESUMING -> STOP -> STOP_COPY
  RUNNING -> RUNNING_P2P -> PRE_COPY_P2P
  RUNNING -> RUNNING_P2P -> STOP
  RUNNING -> RUNNING_P2P -> STOP -> RESUMING
  RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY
  RUNNING_P2P -> RUNNING -> PRE_COPY
  RUNNING_P2P -> STOP -> RESUMING
  RUNNING_P2P -> STOP -> STOP_COPY
  STOP -> RUNNING_P2P -> PRE_COPY_P2P
  STOP -> RUNNING_P2P -> RUNNING
  STOP -> RUNNING_P2P -> RUNNING -> PRE_COPY
  STOP_COPY -> STOP -> RESUMING
  STOP_COPY -> STOP -> RUNNING_P2P
  STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING
`.trim().split('\n').map((line) => line.trim().split(' -> ') as MigrationState[]);

test('every combination transition vfio_main.c documents is the path found', () => {
  expect(DOCUMENTED).toHaveLength(25);
  for (const path of DOCUMENTED) {
    expect(migrationPath(ALL, path[0], path[path.length - 1])).toEqual(path);
  }
});

test('the arcs vfio_main.c says a driver implements, per flag combination', () => {
  const arcs = (f: MigrationFlags) => migrationArcs(f).map(([from, to]) => `${from}>${to}`).sort();
  expect(arcs(flags(false, false))).toEqual(['RESUMING>STOP', 'RUNNING>STOP', 'STOP>RESUMING', 'STOP>RUNNING', 'STOP>STOP_COPY', 'STOP_COPY>STOP']);
  expect(arcs(flags(true, false))).toEqual([
    'RESUMING>STOP', 'RUNNING>RUNNING_P2P', 'RUNNING_P2P>RUNNING', 'RUNNING_P2P>STOP', 'STOP>RESUMING', 'STOP>RUNNING_P2P',
    'STOP>STOP_COPY', 'STOP_COPY>STOP',
  ]);
  expect(arcs(flags(false, true))).toEqual([
    'PRE_COPY>RUNNING', 'PRE_COPY>STOP_COPY', 'RESUMING>STOP', 'RUNNING>PRE_COPY', 'RUNNING>STOP', 'STOP>RESUMING',
    'STOP>RUNNING', 'STOP>STOP_COPY', 'STOP_COPY>STOP',
  ]);
  expect(arcs(ALL)).toHaveLength(15);
});

test('unreachable pairs: STOP_COPY to the pre-copy states, anything to or from ERROR', () => {
  expect(migrationPath(ALL, 'STOP_COPY', 'PRE_COPY')).toBeUndefined();
  expect(migrationPath(ALL, 'STOP_COPY', 'PRE_COPY_P2P')).toBeUndefined();
  expect(migrationPath(ALL, 'ERROR', 'RUNNING')).toBeUndefined();
  expect(migrationPath(ALL, 'RUNNING', 'ERROR')).toBeUndefined();
  expect(migrationPath(ALL, 'STOP', 'STOP')).toEqual(['STOP']);
});

/** What a fake device with these flags saves in STOP_COPY. */
function savedStream(f: MigrationFlags, device: { region(): Uint8Array }): Uint8Array {
  const source = new FakeMigration({ flags: Number(f.bits) }, device);
  const file = source.setState(b.VFIO_DEVICE_STATE_STOP_COPY)!;
  const buffer = new Uint8Array(4096);
  return buffer.subarray(0, file.read(buffer));
}

describe.each([
  ['STOP_COPY', flags(false, false)],
  ['STOP_COPY | P2P', flags(true, false)],
  ['STOP_COPY | PRE_COPY', flags(false, true)],
  ['STOP_COPY | P2P | PRE_COPY', ALL],
])('flags %s', (_, f) => {
  const states = supportedStates(f).filter((s) => s !== 'ERROR');

  test('every pair of states: the path is the arcs the kernel steps through', () => {
    const stub = { region: () => new Uint8Array(16) };
    const mismatches: string[] = [];
    for (const from of states) {
      for (const to of states) {
        const kernel = new FakeMigration({ flags: Number(f.bits) }, stub);
        const file = kernel.setState(b[`VFIO_DEVICE_STATE_${from}`]);
        // Leaving RESUMING loads the state: give it a whole stream.
        if (from === 'RESUMING') file!.write(savedStream(f, stub));
        kernel.arcs.length = 0;
        let stepped: string[] | undefined;
        try {
          kernel.setState(b[`VFIO_DEVICE_STATE_${to}`]);
          stepped = [from, ...kernel.arcs.map((arc) => arc.split('>')[1])];
        } catch {
          stepped = undefined;
        }
        const found = migrationPath(f, from, to);
        if (JSON.stringify(found) !== JSON.stringify(stepped)) mismatches.push(`${from} -> ${to}: found ${found?.join(',')}, kernel ${stepped?.join(',')}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});
