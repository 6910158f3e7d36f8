/** The real sysfs writer of bind and unbind. */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import type { SysfsWriter } from './command';

/**
 * Opened without O_CREAT or O_TRUNC: a missing attribute must fail with
 * ENOENT rather than create a file (which sysfs refuses with a less clear
 * error), and write-only attributes (bind, unbind) cannot be opened for reading.
 */
export const writeSysfsFile: SysfsWriter = (path, text) => {
  const fd = openSync(path, constants.O_WRONLY);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
};
