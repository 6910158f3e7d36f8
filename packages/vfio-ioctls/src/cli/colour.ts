/**
 * Colour on a terminal, with node:util styleText: off with --no-color, with
 * NO_COLOR set (no-color.org), with TERM=dumb, and when the output is not a
 * terminal (piped, redirected, a test's collector); FORCE_COLOR forces it on
 * (except '0' or 'false'), below --no-color and NO_COLOR.
 */
import * as util from 'node:util';

/** The styleText formats the CLI uses. */
export type StyleFormat = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan';

/** Styles `text` with one format, or returns it unchanged when colour is off. */
export type Style = (format: StyleFormat, text: string) => string;

export const plain: Style = (_format, text) => text;

type StyleText = (format: StyleFormat, text: string, options?: { validateStream?: boolean }) => string;

/** Whether output to a stream with `isTTY` is coloured, given the environment and --no-color. */
export function colourWanted(isTTY: boolean | undefined, environment: Readonly<Record<string, string | undefined>>, noColorFlag: boolean): boolean {
  if (noColorFlag) return false;
  if (environment.NO_COLOR) return false;
  const force = environment.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  if (environment.TERM === 'dumb') return false;
  return isTTY === true;
}

/**
 * The Style for a stream. Node before 20.12 has no styleText: no colour
 * there. validateStream: false because the decision is made here (Node 22
 * would otherwise look at process.stdout whatever the stream is).
 */
export function styleFor(isTTY: boolean | undefined, environment: Readonly<Record<string, string | undefined>>, noColorFlag: boolean): Style {
  const styleText = (util as { styleText?: StyleText }).styleText;
  if (typeof styleText !== 'function' || !colourWanted(isTTY, environment, noColorFlag)) return plain;
  return (format, text) => styleText(format, text, { validateStream: false });
}
