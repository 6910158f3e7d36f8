/*
 * Self-check of /dev/kvm in the guest: create a VM with one memory slot and
 * one vCPU, run six bytes of real-mode code that writes 'K' to port 0x3f8
 * and halts, and expect KVM_EXIT_IO with that byte, then KVM_EXIT_HLT. Also
 * creates the KVM VFIO device (what a VMM attaches VFIO groups or device fds
 * to). Prints one line per step; exit status 0 only when every step held.
 * The test bed compiles it on the host and the guest suite runs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUEST_MEM 0x10000
#define CODE_AT 0x1000

static int fail(const char *what) {
  printf("FAIL %s: %s\n", what, strerror(errno));
  return 1;
}

int main(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return fail("open /dev/kvm");
  int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (api != KVM_API_VERSION) {
    printf("FAIL KVM_GET_API_VERSION: %d, expected %d\n", api, KVM_API_VERSION);
    return 1;
  }
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) return fail("KVM_CREATE_VM");
  printf("ok KVM_CREATE_VM (api %d)\n", api);

  uint8_t *mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail("mmap guest memory");
  /* mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt */
  const uint8_t code[] = {0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xf4};
  memcpy(mem + CODE_AT, code, sizeof code);
  struct kvm_userspace_memory_region slot = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) return fail("KVM_SET_USER_MEMORY_REGION");

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) return fail("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) return fail("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) return fail("mmap kvm_run");

  /* Real mode, CS base 0, so the code runs at physical CODE_AT. */
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) return fail("KVM_GET_SREGS");
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) return fail("KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = CODE_AT, .rflags = 0x2};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) return fail("KVM_SET_REGS");

  int saw_io = 0;
  for (int i = 0; i < 10; i++) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) return fail("KVM_RUN");
    if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8) {
      char byte = *((char *)run + run->io.data_offset);
      if (byte != 'K') {
        printf("FAIL the vCPU wrote 0x%02x, expected 'K'\n", (unsigned char)byte);
        return 1;
      }
      printf("ok KVM_EXIT_IO: the vCPU wrote 'K' to port 0x3f8\n");
      saw_io = 1;
      continue;
    }
    if (run->exit_reason == KVM_EXIT_HLT) {
      if (!saw_io) {
        printf("FAIL KVM_EXIT_HLT before the port write\n");
        return 1;
      }
      printf("ok KVM_EXIT_HLT\n");
      break;
    }
    printf("FAIL unexpected exit reason %u\n", run->exit_reason);
    return 1;
  }
  if (run->exit_reason != KVM_EXIT_HLT) {
    printf("FAIL the vCPU did not halt\n");
    return 1;
  }

  struct kvm_create_device vfio = {.type = KVM_DEV_TYPE_VFIO};
  if (ioctl(vm, KVM_CREATE_DEVICE, &vfio) < 0) return fail("KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO)");
  printf("ok KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO) fd %u\n", vfio.fd);
  printf("kvm: a VM ran to HLT\n");
  return 0;
}
