/** `vfio doctor [--memory SIZE] [--no-open] [<pci-address>]`: the command around runDoctor. */
import type { VfioContext } from '../../core/context';
import { parsePciAddress } from '../../core/validate';
import { usageError, type Command, type CommandEnv } from '../command';
import { json } from '../format';
import { doctorDocument, renderDoctorText } from './render';
import { runDoctor } from './run';
import { doctorSchema } from './schema';
import { parseSize } from './size';

/**
 * The VFIO context (backend and node paths) for the device's open attempt;
 * undefined when the addon cannot load, which the machine checks do not
 * need (device.open then says so).
 */
function contextOrNone(env: CommandEnv): VfioContext | undefined {
  try {
    return env.context();
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_VFIO_NO_ADDON') return undefined;
    throw error;
  }
}

function run(env: CommandEnv): number {
  if (env.args.length > 1) throw usageError(`doctor: unexpected argument '${env.args[1]}'`);
  const given = env.args[0];
  const address = given === undefined ? undefined : parsePciAddress(given);
  if (given !== undefined && !address) throw usageError(`doctor: '${given}' is not a PCI address (like 0000:01:00.0)`);
  let memory: bigint | undefined;
  if (typeof env.options.memory === 'string') {
    try {
      memory = parseSize(env.options.memory, '--memory');
    } catch (error) {
      throw usageError(`doctor: ${(error as Error).message}`);
    }
  }
  const tryOpen = env.options['no-open'] !== true;
  // The context carries the iommufd node's path too (a test's fake kernel has its own).
  const context = contextOrNone(env);
  const report = runDoctor({
    address,
    memory,
    sysfsRoot: env.sysfsRoot,
    procRoot: env.procRoot,
    devRoot: env.devRoot,
    ...(context ? { backend: context.backend, iommufdPath: context.iommufdPath } : {}),
    tryOpen,
  });
  env.stdout.write(env.json ? `${json(doctorDocument(report))}\n` : renderDoctorText(report, env.style));
  return report.exitCode;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'checks the machine (and a device) for passthrough: PASS, WARN or FAIL, each with its fix',
  usage: 'vfio doctor [--memory SIZE] [--no-open] [<pci-address>]',
  description: `Checks what passthrough needs: the IOMMU on (ACPI DMAR/IVRS, /sys/class/iommu),
interrupt remapping, the default domain type, the vfio modules, iommufd and
device cdevs, no-IOMMU mode (a loud warning), access to /dev/vfio and
/dev/iommu for the current user, RLIMIT_MEMLOCK against --memory, and
hugepages. With an address, also the device: its driver, its IOMMU group and
what blocks it, its nodes, reset methods, SR-IOV role (VF token), whether it
opens now (EBUSY: which process holds it) and which devices a bus reset
would touch. Opening resets a device that has a reset method; --no-open
leaves it alone. Exit status 1 when any check fails.`,
  options: {
    memory: { type: 'string', valueName: 'SIZE', description: 'bytes the program will map for DMA (4096, 512M, 2G): checked against RLIMIT_MEMLOCK and free hugepages' },
    'no-open': { type: 'boolean', description: 'do not open the device (the bus reset is then estimated from sysfs)' },
  },
  schema: doctorSchema,
  run,
};
