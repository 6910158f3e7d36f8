/**
 * What the mini VMM needs of vfio-ioctls/unsafe beyond part 5: the address
 * of a BAR mapped with unsafe mmap(), for a KVM memory slot over the
 * device's registers, and nothing once it is unmapped.
 */
import * as b from 'vfio-bindings';
import { Device } from '../src';
import * as unsafe from '../src/unsafe';
import { EDU, expectNothingLeft, kernel, thrown } from './helpers';

test('addressOf a BAR mapped by unsafe mmap() is the mapping\'s address; unmapped or foreign buffers are refused', () => {
  const { fake, env } = kernel();
  const device = Device.open(EDU, env);
  const options = { backend: fake };
  const bar = device.region(b.VFIO_PCI_BAR0_REGION_INDEX)!;
  const mapping = unsafe.mmap(device.fd, fake.pageSize(), unsafe.PROT_READ | unsafe.PROT_WRITE, bar.offset, options);
  const address = unsafe.addressOf(mapping, options);
  expect(address).toBe(fake.addressOf(mapping));
  expect(address % BigInt(fake.pageSize())).toBe(0n);
  const other = unsafe.mmap(device.fd, fake.pageSize(), unsafe.PROT_READ, bar.offset, options);
  expect(unsafe.addressOf(other, options)).not.toBe(address);
  unsafe.munmap(other, options);
  unsafe.munmap(mapping, options);
  expect(thrown(() => unsafe.addressOf(mapping, options))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/^buffer /) });
  expect(thrown(() => unsafe.addressOf(new ArrayBuffer(4096), options))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  device.close();
  expectNothingLeft(fake);
});
