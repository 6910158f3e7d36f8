'use strict';
// Issue 6 item 7: what one call through the addon costs, with no VFIO in
// the way. FIONREAD on a pipe is about the cheapest ioctl the kernel has,
// so the difference to C is the addon's own overhead (N-API transition,
// argument checks, buffer access, errno handling).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const cprog = require('../c-programs');
const { measureSync } = require('../timing');
const { alternate } = require('../alternate');

const FIONREAD = 0x541b; // asm-generic/ioctls.h

/** A pipe with one byte queued; a FIFO, because Node has no pipe(2) call. */
function openPipe() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-fifo-'));
  const fifo = path.join(dir, 'p');
  execFileSync('mkfifo', [fifo]);
  // O_RDWR on a FIFO does not block waiting for a peer (Linux).
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  fs.writeSync(fd, Buffer.from('x'));
  return { fd, close: () => { fs.closeSync(fd); fs.rmSync(dir, { recursive: true }); } };
}

async function benchFionread(backend, { rounds, samples, warmup, batch }) {
  const pipe = openPipe();
  const arg = new Uint8Array(4);
  const call = () => backend.ioctl(pipe.fd, FIONREAD, arg);
  call();
  if (new DataView(arg.buffer).getInt32(0, true) !== 1) throw new Error('FIONREAD through the addon did not see the queued byte');
  try {
    return await alternate(
      rounds,
      () => cprog.run('fionread', [batch, samples, warmup]),
      () => ({ fionread: { batch, samples: measureSync(call, { batch, samples, warmup }) } }),
    );
  } finally {
    pipe.close();
  }
}

module.exports = { benchFionread };
