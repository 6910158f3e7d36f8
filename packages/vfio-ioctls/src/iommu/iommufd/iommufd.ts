import { constants as fsConstants } from 'node:fs';
import { bindings as b } from '../../abi/structs';
import { decodeAnswer, encodeSized, withUserMemory } from '../../abi/iommufd-args';
import { kernelCall, VfioContext, type VfioOptions } from '../../core/context';
import { FdHandle, runAll } from '../../core/handle';
import { typeError } from '../../core/validate';
import { Ioas, ioasPort } from './ioas';

/**
 * An open /dev/iommu: the iommufd that owns IO address spaces (IOAS) and
 * that device cdevs bind to. close() closes, in the kernel's order, the
 * devices attached to its IOASes, then the IOASes, then the fd.
 */
export class Iommufd extends FdHandle {
  /** Where it was opened. */
  readonly context: VfioContext;
  /** The node it was opened from ('/dev/iommu'). */
  readonly path: string;
  readonly #ioases = new Set<Ioas>();

  private constructor(context: VfioContext, fd: number) {
    super(context.backend, fd, `iommufd ${context.iommufdPath}`);
    this.context = context;
    this.path = context.iommufdPath;
  }

  /**
   * Opens /dev/iommu (options.iommufdPath).
   * @throws VfioError from open(2): ENOENT when the kernel has no iommufd (CONFIG_IOMMUFD), EACCES.
   */
  static open(options?: VfioOptions): Iommufd {
    const context = VfioContext.from(options);
    const path = context.iommufdPath;
    const fd = kernelCall({ syscall: 'open', path }, () => context.backend.open(path, fsConstants.O_RDWR));
    return new Iommufd(context, fd);
  }

  protected errorContext(): { path: string } {
    return { path: this.path };
  }

  /** Allocates a new, empty IO address space (IOMMU_IOAS_ALLOC). */
  allocIoas(): Ioas {
    const fd = this.fd;
    const arg = encodeSized(b.iommu_ioas_alloc, { flags: 0, out_ioas_id: 0 });
    this.ioctl('IOMMU_IOAS_ALLOC', () => this.backend.ioctl(fd, b.IOMMU_IOAS_ALLOC, arg));
    const id = decodeAnswer(b.iommu_ioas_alloc, arg, 'IOMMU_IOAS_ALLOC').out_ioas_id;
    const port: IommufdPort = {
      ioctl: (operation, request, bytes) => {
        const current = this.fd;
        return this.ioctl(operation, () => this.backend.ioctl(current, request, bytes));
      },
      destroy: (objectId) => this.destroy(objectId),
      closed: (ioas) => this.#ioases.delete(ioas),
    };
    let ioas: Ioas;
    try {
      ioas = new Ioas(this, id, port);
    } catch (error) {
      this.destroy(id);
      throw error;
    }
    this.#ioases.add(ioas);
    return ioas;
  }

  /**
   * Which RLIMIT_MEMLOCK the memory its mappings pin is charged against
   * (IOMMU_OPTION RLIMIT_MODE): 'user' (the kernel's default: the user's,
   * across processes) or 'process' (this process's, as the legacy container
   * does). Either way the pages show in the process's VmPin. Setting it
   * needs CAP_IPC_LOCK and no mapping yet.
   */
  setPinAccounting(mode: 'user' | 'process'): void {
    if (mode !== 'user' && mode !== 'process') throw typeError('mode', "'user' or 'process'", mode);
    const fd = this.fd;
    const arg = encodeSized(b.iommu_option, {
      option_id: b.IOMMU_OPTION_RLIMIT_MODE, op: b.IOMMU_OPTION_OP_SET, __reserved: 0, object_id: 0, val64: mode === 'process' ? 1n : 0n,
    });
    this.ioctl('IOMMU_OPTION', () => this.backend.ioctl(fd, b.IOMMU_OPTION, arg));
  }

  /**
   * What the IOMMU behind an attached device is (IOMMU_GET_HW_INFO): its
   * kind, capabilities and, for Intel VT-d, the capability registers.
   * @param device - a device attached to one of this iommufd's IOASes.
   */
  hwInfo(device: object): IommuHwInfo {
    let devId: number | undefined;
    for (const ioas of this.#ioases) devId ??= ioasPort(ioas).devIdOf(device);
    if (devId === undefined) throw typeError('device', `a Device attached to an IOAS of ${this.path}`, device);
    const fd = this.fd;
    const id = devId;
    return withUserMemory(this.backend, HW_INFO_DATA_BYTES, (bytes, address) => {
      const arg = encodeSized(b.iommu_hw_info, {
        flags: 0, dev_id: id, data_len: HW_INFO_DATA_BYTES, data_uptr: address, in_data_type: 0, out_data_type: 0,
        out_max_pasid_log2: 0, __reserved: [0, 0, 0], out_capabilities: 0n,
      });
      this.ioctl('IOMMU_GET_HW_INFO', () => this.backend.ioctl(fd, b.IOMMU_GET_HW_INFO, arg));
      const answer = decodeAnswer(b.iommu_hw_info, arg, 'IOMMU_GET_HW_INFO');
      const data = bytes.slice(0, Math.min(answer.data_len, HW_INFO_DATA_BYTES));
      const info: IommuHwInfo = {
        type: HW_INFO_TYPES[answer.out_data_type] ?? `type ${answer.out_data_type}`,
        capabilities: answer.out_capabilities,
        dirtyTracking: (answer.out_capabilities & BigInt(b.IOMMU_HW_CAP_DIRTY_TRACKING)) !== 0n,
        maxPasidLog2: answer.out_max_pasid_log2,
        data,
      };
      if (answer.out_data_type === b.IOMMU_HW_INFO_TYPE_INTEL_VTD && data.length >= b.iommu_hw_info_vtd.size) {
        const vtd = b.iommu_hw_info_vtd.decode(data, 0);
        info.vtd = { flags: vtd.flags, capReg: vtd.cap_reg, ecapReg: vtd.ecap_reg };
      }
      return info;
    });
  }

  /** The IOASes allocated and not yet closed. */
  ioases(): readonly Ioas[] {
    return [...this.#ioases];
  }

  private destroy(id: number): void {
    const fd = this.fd;
    const arg = encodeSized(b.iommu_destroy, { id });
    this.ioctl('IOMMU_DESTROY', () => this.backend.ioctl(fd, b.IOMMU_DESTROY, arg));
  }

  protected override releaseDependents(): void {
    runAll(this.ioases().map((ioas) => () => ioas.close()));
  }

  protected override afterClose(): void {
    // Closing the fd destroyed whatever the kernel still held.
    for (const ioas of this.#ioases) ioasPort(ioas).released();
    this.#ioases.clear();
  }

  private ioctl<T>(operation: string, call: () => T): T {
    return kernelCall({ syscall: 'ioctl', operation, path: this.path }, call);
  }
}

/** Room for the driver-specific answer of IOMMU_GET_HW_INFO (VT-d's is 24 bytes, SMMUv3's 80). */
const HW_INFO_DATA_BYTES = 256;

const HW_INFO_TYPES: Record<number, string> = {
  [b.IOMMU_HW_INFO_TYPE_NONE]: 'none',
  [b.IOMMU_HW_INFO_TYPE_INTEL_VTD]: 'intel-vtd',
  [b.IOMMU_HW_INFO_TYPE_ARM_SMMUV3]: 'arm-smmuv3',
  [b.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV]: 'tegra241-cmdqv',
  [b.IOMMU_HW_INFO_TYPE_AMD]: 'amd',
};

/** What IOMMU_GET_HW_INFO reports about the IOMMU behind a device. */
export interface IommuHwInfo {
  /** 'intel-vtd', 'arm-smmuv3', 'amd', 'none', ... ('type N' for one this library does not name). */
  type: string;
  /** IOMMU_HW_CAP_* bits. */
  capabilities: bigint;
  /** The IOMMU can track dirty pages (IOMMU_HW_CAP_DIRTY_TRACKING). */
  dirtyTracking: boolean;
  /** log2 of the PASIDs the device supports (0: none). */
  maxPasidLog2: number;
  /** The driver-specific answer, as the kernel wrote it. */
  data: Uint8Array;
  /** For Intel VT-d: its capability and extended capability registers. */
  vtd?: { flags: number; capReg: bigint; ecapReg: bigint };
}

/** What an Ioas may do through its iommufd (and nothing else). */
export interface IommufdPort {
  ioctl(operation: string, request: number, bytes: Uint8Array): number;
  destroy(id: number): void;
  closed(ioas: Ioas): void;
}

