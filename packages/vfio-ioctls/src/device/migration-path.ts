/**
 * The migration v2 state machine of vfio.h (enum vfio_device_mig_state):
 * its states, the arcs the uAPI defines between them, which of them a
 * device has (its VFIO_MIGRATION_* flags), and the path of single arcs from
 * one state to another that the uAPI's rules choose.
 */
import { bindings as b } from '../abi/structs';
import type { MigrationFlags } from './features';

/** The states, in the order of their uAPI values (VFIO_DEVICE_STATE_<name>). */
export const migrationStates = ['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING', 'RUNNING_P2P', 'PRE_COPY', 'PRE_COPY_P2P'] as const;

/** A migration state by its uAPI name. */
export type MigrationState = (typeof migrationStates)[number];

/** VFIO_DEVICE_STATE_<state>. */
export function stateValue(state: MigrationState): number {
  return (b as unknown as Record<string, number>)[`VFIO_DEVICE_STATE_${state}`];
}

/** The state of a uAPI value, or undefined for a value this library does not know. */
export function stateOfValue(value: number): MigrationState | undefined {
  return migrationStates.find((state) => stateValue(state) === value);
}

/**
 * The arcs vfio.h defines, for a device with every optional state; each is
 * one driver action (stop, start a data session, end one, load the state).
 */
const ARCS: readonly (readonly [MigrationState, MigrationState])[] = [
  ['RUNNING_P2P', 'STOP'], ['STOP_COPY', 'STOP'], ['RESUMING', 'STOP'],
  ['PRE_COPY', 'RUNNING'], ['RUNNING_P2P', 'RUNNING'],
  ['PRE_COPY_P2P', 'RUNNING_P2P'], ['RUNNING', 'RUNNING_P2P'], ['STOP', 'RUNNING_P2P'],
  ['RUNNING', 'PRE_COPY'], ['RUNNING_P2P', 'PRE_COPY_P2P'], ['STOP', 'STOP_COPY'],
  ['PRE_COPY', 'PRE_COPY_P2P'], ['PRE_COPY_P2P', 'PRE_COPY'], ['PRE_COPY_P2P', 'STOP_COPY'],
  ['STOP', 'RESUMING'],
];

/** PRE_COPY, PRE_COPY_P2P and STOP_COPY share one data session: the "saving group". */
export function isSaving(state: MigrationState): boolean {
  return state === 'PRE_COPY' || state === 'PRE_COPY_P2P' || state === 'STOP_COPY';
}

/** The states a device with these flags has (RUNNING and ERROR always; the rest by flag). */
export function supportedStates(flags: MigrationFlags): MigrationState[] {
  return migrationStates.filter((state) => {
    switch (state) {
      case 'RUNNING_P2P': return flags.p2p;
      case 'PRE_COPY': return flags.preCopy;
      case 'PRE_COPY_P2P': return flags.p2p && flags.preCopy;
      default: return true;
    }
  });
}

/**
 * The arcs of a device with these flags. An optional state the device lacks
 * behaves as the state it refines (RUNNING_P2P as RUNNING, PRE_COPY_P2P as
 * PRE_COPY), so its arcs become arcs of that state; without PRE_COPY, the
 * arcs touching PRE_COPY and PRE_COPY_P2P are gone.
 */
export function migrationArcs(flags: MigrationFlags): [MigrationState, MigrationState][] {
  const standIn = (state: MigrationState): MigrationState => {
    if (state === 'RUNNING_P2P' && !flags.p2p) return 'RUNNING';
    if (state === 'PRE_COPY_P2P' && !flags.p2p) return 'PRE_COPY';
    return state;
  };
  const arcs: [MigrationState, MigrationState][] = [];
  for (const [from, to] of ARCS) {
    const touchesPreCopy = [from, to].some((s) => s === 'PRE_COPY' || s === 'PRE_COPY_P2P');
    if (touchesPreCopy && !flags.preCopy) continue;
    const arc: [MigrationState, MigrationState] = [standIn(from), standIn(to)];
    if (arc[0] !== arc[1] && !arcs.some(([f, t]) => f === arc[0] && t === arc[1])) arcs.push(arc);
  }
  return arcs;
}

/**
 * The states from `from` to `to` (both included) through single arcs, as
 * vfio.h's rules pick them: the shortest path, with no state of the saving
 * group inside it unless the path stays in that group (the session goes on),
 * never RESUMING inside it, and never leaving the saving group to enter it
 * again (STOP_COPY -> PRE_COPY is refused). Undefined when there is none
 * (from ERROR, to ERROR, or such a refused pair). [from] when equal.
 */
export function migrationPath(flags: MigrationFlags, from: MigrationState, to: MigrationState): MigrationState[] | undefined {
  if (from === to) return [from];
  if (from === 'ERROR' || to === 'ERROR') return undefined;
  const arcs = migrationArcs(flags);
  const next = (state: MigrationState) => arcs.filter(([f]) => f === state).map(([, t]) => t);
  const valid = (path: MigrationState[]): boolean => {
    if (isSaving(path[0]) && isSaving(path[path.length - 1]) && !path.every(isSaving)) return false;
    for (let i = 1; i < path.length - 1; i++) {
      if (path[i] === 'RESUMING') return false;
      if (isSaving(path[i]) && !(isSaving(path[i - 1]) && isSaving(path[i + 1]))) return false;
    }
    return true;
  };
  // Breadth first over simple paths: the graph has 8 states, so this is tiny.
  let frontier: MigrationState[][] = [[from]];
  while (frontier.length > 0) {
    const longer: MigrationState[][] = [];
    for (const path of frontier) {
      for (const state of next(path[path.length - 1])) {
        if (path.includes(state)) continue;
        const candidate = [...path, state];
        if (state === to) {
          if (valid(candidate)) return candidate;
        } else {
          longer.push(candidate);
        }
      }
    }
    frontier = longer;
  }
  return undefined;
}
