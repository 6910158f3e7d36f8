'use strict';
// Issue 12's JavaScript-listener latency without TCG or a device: what the
// delivery path costs on this machine's CPU. An eventfd is given 1 and the
// count is taken back: in C by read(2) (c/eventfd_wake.c); in JavaScript by
// the poller Interrupts uses (the addon's watchEventfds: the native poll
// callback drains the count and calls JavaScript once, here resolving the
// awaited promise) and, as the floor, by the addon's synchronous read. The
// listener is compared twice: with C's read, and with C's own event loop
// (epoll_wait, then read), the same syscalls as libuv's.
const cprog = require('../c-programs');
const { measureAsync, measureSync } = require('../timing');
const { alternate } = require('../alternate');

async function benchEventfdDelivery(backend, { rounds, samples, warmup, batch }) {
  const fd = backend.eventfd(0, 0);
  let wake = null;
  let counted = 0n;
  const poller = backend.watchEventfds([fd], (error, positions, counts) => {
    if (error) throw error;
    for (const count of counts) counted += BigInt(count);
    const w = wake;
    wake = null;
    if (w) w();
  });
  poller.start();
  const toListener = () => {
    const woken = new Promise((resolve) => (wake = resolve));
    backend.eventfdWrite(fd, 1n);
    return woken;
  };
  const readBack = () => {
    backend.eventfdWrite(fd, 1n);
    if (backend.eventfdRead(fd) !== 1n) throw new Error('the eventfd did not count the write');
  };
  try {
    await toListener();
    if (counted !== 1n) throw new Error(`the poller counted ${counted} for one write`);
    return await alternate(
      rounds,
      () => {
        const c = cprog.run('eventfd_wake', [batch, samples, warmup]);
        return { 'eventfd-listener': c['eventfd-wake'], 'eventfd-listener-vs-epoll': c['eventfd-wake-epoll'], 'addon-eventfd-read': c['eventfd-wake'] };
      },
      async () => {
        const listener = { batch, samples: await measureAsync(toListener, { batch, samples, warmup }) };
        return { 'eventfd-listener': listener, 'eventfd-listener-vs-epoll': listener, 'addon-eventfd-read': { batch, samples: measureSync(readBack, { batch, samples, warmup }) } };
      },
    );
  } finally {
    poller.close();
    backend.close(fd);
  }
}

module.exports = { benchEventfdDelivery };
