import { mkdirSync, symlinkSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { hostUses, openers } from '../../src/cli/host-use';
import type { FakeKernel } from '../../src/testing';
import { addClassMember, deviceDir, put, tempFolder, testMachine } from './helpers';

let kernel: FakeKernel;
let proc: string;
let up: NodeJS.Dict<NetworkInterfaceInfo[]>;
beforeEach(() => {
  ({ kernel } = testMachine());
  proc = tempFolder('vfio-command-proc-');
  up = {};
});
afterEach(() => kernel.dispose());

const uses = (address: string) => hostUses(address, { sysfsRoot: kernel.sysfsRoot, procRoot: proc, networkInterfaces: () => up });

function mountinfo(...lines: string[]): void {
  put(`${proc}/self/mountinfo`, `${lines.join('\n')}\n`);
}

/** A disk below 0000:01:00.0 with partitions 1 and 2 (an AHCI-like layout: host0/target0:0:0/0:0:0:0/block/sda). */
function disk(): void {
  const below = 'ata1/host0/target0:0:0/0:0:0:0/block';
  put(`${addClassMember(kernel, '0000:01:00.0', 'block', below, 'sda')}/dev`, '8:0\n');
  put(`${addClassMember(kernel, '0000:01:00.0', 'block', `${below}/sda`, 'sda1')}/dev`, '8:1\n');
  put(`${addClassMember(kernel, '0000:01:00.0', 'block', `${below}/sda`, 'sda2')}/dev`, '8:2\n');
}

test('a device with nothing below it is free', () => {
  mountinfo('22 1 8:1 / / rw - ext4 /dev/sda1 rw');
  expect(uses('0000:00:03.0')).toEqual([]);
});

describe('block devices', () => {
  test('a mounted partition, matched by its device number (the source may be another name, /dev/root)', () => {
    disk();
    mountinfo('22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw', '23 22 0:5 / /proc rw - proc proc rw');
    expect(uses('0000:01:00.0')).toEqual(['/dev/sda1 is mounted on /']);
  });

  test('matched by its source too, with an escaped mount point; every mount is listed', () => {
    disk();
    mountinfo('22 1 0:40 / /mnt/my\\040disk rw - btrfs /dev/sda2 rw', '23 1 0:40 /sub /srv rw - btrfs /dev/sda2 rw');
    expect(uses('0000:01:00.0')).toEqual(['/dev/sda2 is mounted on /mnt/my disk', '/dev/sda2 is mounted on /srv']);
  });

  test('a swap partition and a holder (device-mapper)', () => {
    disk();
    put(`${proc}/swaps`, 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2                               partition\t1048572\t\t0\t\t-2\n');
    put(`${kernel.sysfsRoot}/class/block/sda1/holders/dm-0`, '');
    expect(uses('0000:01:00.0')).toEqual(['/dev/sda1 is held by dm-0 (device-mapper or RAID)', '/dev/sda2 is in use as swap']);
  });

  test('a disk of another device does not count', () => {
    disk();
    mountinfo('22 1 8:1 / / rw - ext4 /dev/sda1 rw');
    expect(uses('0000:00:03.0')).toEqual([]);
  });
});

test('a mounted 9p share of a virtio device below it (a QEMU guest\'s host folder)', () => {
  const virtio = `${deviceDir(kernel, '0000:00:03.0')}/virtio0`;
  // The kernel's mount_tag ends in a NUL.
  put(`${virtio}/mount_tag`, 'hostroot\0');
  mountinfo('20 1 0:21 / / ro - 9p hostroot ro,trans=virtio', '21 20 0:22 / /run rw - 9p vmrun rw');
  expect(uses('0000:00:03.0')).toEqual(["9p share 'hostroot' is mounted on /"]);
});

describe('network interfaces', () => {
  const address = (text: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo => (
    family === 'IPv4'
      ? { address: text, family, netmask: '255.255.255.0', mac: '52:54:00:12:34:56', internal: false, cidr: `${text}/24` }
      : { address: text, family, netmask: 'ffff:ffff:ffff:ffff::', mac: '52:54:00:12:34:56', internal: false, cidr: `${text}/64`, scopeid: 0 });

  beforeEach(() => {
    addClassMember(kernel, '0000:00:03.0', 'net', 'net', 'enp0s3');
    put(`${kernel.sysfsRoot}/class/net/enp0s3/operstate`, 'up\n');
  });

  test('up with an IPv4 or a global IPv6 address', () => {
    up = { enp0s3: [address('10.0.2.15', 'IPv4'), address('fe80::5054:ff:fe12:3456', 'IPv6'), address('2001:db8::1', 'IPv6')] };
    expect(uses('0000:00:03.0')).toEqual(['network interface enp0s3 is up with address 10.0.2.15, 2001:db8::1']);
  });

  test('up with only a link-local address, or no address, is free', () => {
    up = { enp0s3: [address('fe80::5054:ff:fe12:3456', 'IPv6')] };
    expect(uses('0000:00:03.0')).toEqual([]);
    up = {};
    expect(uses('0000:00:03.0')).toEqual([]);
  });

  test('down is free whatever addresses it keeps', () => {
    put(`${kernel.sysfsRoot}/class/net/enp0s3/operstate`, 'down\n');
    up = { enp0s3: [address('10.0.2.15', 'IPv4')] };
    expect(uses('0000:00:03.0')).toEqual([]);
  });
});

describe('displays', () => {
  test('a framebuffer, an enabled connector, the boot VGA device', () => {
    addClassMember(kernel, '0000:00:03.0', 'graphics', 'graphics', 'fb0');
    const card = addClassMember(kernel, '0000:00:03.0', 'drm', 'drm', 'card0');
    const on = addClassMember(kernel, '0000:00:03.0', 'drm', 'drm/card0', 'card0-HDMI-A-1');
    const off = addClassMember(kernel, '0000:00:03.0', 'drm', 'drm/card0', 'card0-DP-1');
    put(`${on}/enabled`, 'enabled\n');
    put(`${off}/enabled`, 'disabled\n');
    put(`${card}/dev`, '226:0\n');
    put(`${deviceDir(kernel, '0000:00:03.0')}/boot_vga`, '1\n');
    expect(uses('0000:00:03.0')).toEqual([
      'framebuffer /dev/fb0 is on it (the console may be)',
      'display card0-HDMI-A-1 is enabled',
      'it is the boot VGA device (the firmware console draws on it)',
    ]);
  });

  test('a GPU that is not the boot VGA device and drives no display is free', () => {
    addClassMember(kernel, '0000:00:03.0', 'drm', 'drm', 'card1');
    put(`${deviceDir(kernel, '0000:00:03.0')}/boot_vga`, '0\n');
    expect(uses('0000:00:03.0')).toEqual([]);
  });
});

test('openers: the processes holding a node open, by pid and name', () => {
  // /proc/PID/fd links hold absolute paths.
  const fd = (pid: number, n: number, target: string) => {
    mkdirSync(`${proc}/${pid}/fd`, { recursive: true });
    symlinkSync(target, `${proc}/${pid}/fd/${n}`);
  };
  put(`${proc}/412/comm`, 'qemu-system-x86\n');
  fd(412, 3, '/dev/vfio/vfio');
  fd(412, 8, '/dev/vfio/devices/vfio2');
  fd(412, 7, '/dev/vfio/9');
  put(`${proc}/500/comm`, 'bash\n');
  fd(500, 0, '/dev/pts/0');
  put(`${proc}/self/comm`, 'node\n');
  expect(openers(['/dev/vfio/9', '/dev/vfio/devices/vfio2'], proc)).toEqual(['process 412 (qemu-system-x86) has /dev/vfio/9, /dev/vfio/devices/vfio2 open']);
  expect(openers(['/dev/vfio/1'], proc)).toEqual([]);
});
