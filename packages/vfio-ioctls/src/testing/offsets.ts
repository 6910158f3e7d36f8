/**
 * vfio-pci places region N at file offset N << 40 (VFIO_PCI_OFFSET_SHIFT in
 * the kernel's vfio_pci_core.h, which is not uapi: userspace must use the
 * offset GET_REGION_INFO reports, and the fake reports this one).
 */
export const VFIO_PCI_OFFSET_SHIFT = 40n;
export const VFIO_PCI_OFFSET_MASK = (1n << VFIO_PCI_OFFSET_SHIFT) - 1n;
