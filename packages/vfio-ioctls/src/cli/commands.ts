/**
 * The commands of `vfio`, in the order `vfio --help` lists them. A new
 * command is one file exporting a Command (see command.ts) and one line here.
 */
import { bindCommand, unbindCommand } from './bind';
import type { Command } from './command';
import { doctorCommand } from './doctor';
import { infoCommand } from './info';
import { listCommand } from './list';

export const commands: Readonly<Record<string, Command>> = {
  list: listCommand,
  info: infoCommand,
  bind: bindCommand,
  unbind: unbindCommand,
  doctor: doctorCommand,
};
