import { constants as fsConstants } from 'node:fs';
import { bindings as b } from '../../abi/structs';
import { decodeAnswer, withUserMemory } from '../../abi/iommufd-args';
import { encodeArg, uuidBytes } from '../../abi/structs';
import type { Backend } from '../../core/backend';
import { kernelCall } from '../../core/context';
import type { Ioas } from './ioas';

/** A device cdev fd bound to an iommufd and attached to an IOAS. */
export interface BoundCdev {
  fd: number;
  /** The device's id in the iommufd (out_devid). */
  devId: number;
}

/**
 * Opens a device cdev and makes it usable: VFIO_DEVICE_BIND_IOMMUFD (with
 * the VF token when given), then VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS.
 * An unbound cdev refuses every other ioctl. On failure the fd is closed.
 */
export function openBoundCdev(ioas: Ioas, path: string, device: string, vfToken?: string): BoundCdev {
  const { backend } = ioas.iommufd.context;
  const fd = kernelCall({ syscall: 'open', path, device }, () => backend.open(path, fsConstants.O_RDWR));
  try {
    return { fd, devId: bindAndAttach(ioas, fd, device, vfToken) };
  } catch (error) {
    try {
      backend.close(fd);
    } catch {
      // The bind failure is the one worth reporting.
    }
    throw error;
  }
}

/** Binds an open, unbound cdev fd to the IOAS's iommufd and attaches it; returns the dev id. */
export function bindAndAttach(ioas: Ioas, fd: number, device: string, vfToken?: string): number {
  const { backend } = ioas.iommufd.context;
  const bind = (tokenAddress: bigint) => {
    const arg = encodeArg(b.vfio_device_bind_iommufd, {
      flags: vfToken === undefined ? 0 : b.VFIO_DEVICE_BIND_FLAG_TOKEN,
      iommufd: ioas.iommufd.fd,
      out_devid: 0,
      token_uuid_ptr: tokenAddress,
    });
    kernelCall({ syscall: 'ioctl', operation: 'VFIO_DEVICE_BIND_IOMMUFD', device }, () => backend.ioctl(fd, b.VFIO_DEVICE_BIND_IOMMUFD, arg));
    return decodeAnswer(b.vfio_device_bind_iommufd, arg, 'VFIO_DEVICE_BIND_IOMMUFD').out_devid;
  };
  const devId = vfToken === undefined
    ? bind(0n)
    : withUserMemory(backend, 16, (bytes, address) => {
      bytes.set(uuidBytes(vfToken));
      return bind(address);
    });
  attachCdev(backend, fd, ioas.id, device);
  return devId;
}

/**
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT: attaches a bound cdev to `ptId`, an IOAS
 * (through an automatic HWPT) or a HWPT. An attached device is moved: the
 * kernel replaces its page table, and frees an automatic HWPT left unused.
 */
export function attachCdev(backend: Backend, fd: number, ptId: number, device: string): void {
  const attach = encodeArg(b.vfio_device_attach_iommufd_pt, { flags: 0, pt_id: ptId, pasid: 0 });
  kernelCall({ syscall: 'ioctl', operation: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', device }, () => backend.ioctl(fd, b.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach));
}
