'use strict';
// The host half of the bench: items 6 (codecs) and 7 (addon call overhead),
// and issue 12's eventfd-to-JavaScript delivery without TCG.
// Neither needs VFIO, so they run on the host at full speed, before the
// guest boots.
const { compare } = require('../compare');
const { benchCodecs } = require('./codecs');
const { benchFionread } = require('./fionread');
const { benchEventfdDelivery } = require('./eventfd-delivery');
const { nativeBackend } = require('../addon');

const LABELS = {
  'codec-irq-set-encode': 'encode vfio_irq_set + 2048 eventfds',
  'codec-region-info-decode': 'decode region info + cap chain',
  'codec-region-info-plain-decode': 'decode region info, no capabilities',
};

const EVENTFD_LABELS = {
  'eventfd-listener': 'eventfd +1 -> count in a JS callback (the poller Interrupts uses; C: write + read)',
  'eventfd-listener-vs-epoll': 'eventfd +1 -> count in a JS callback, against C\'s own event loop (C: write + epoll_wait + read)',
  'addon-eventfd-read': 'floor: eventfd +1 -> count read back by the addon, synchronously (C: write + read)',
};

async function runHost({ rounds, samples, warmup, log }) {
  const out = [];
  log('host: codecs (vfio-bindings vs hand-written DataView)');
  const codecs = await benchCodecs({ rounds, samples, warmup });
  for (const [id, p] of Object.entries(codecs)) {
    out.push(compare({ id, item: 6, label: LABELS[id], where: 'host', target: 'codec', baseline: 'DataView', c: p.baseline, js: p.library }));
  }
  log('host: FIONREAD on a pipe (addon vs C)');
  const backend = nativeBackend();
  if (backend) {
    const f = await benchFionread(backend, { rounds, samples, warmup, batch: 20000 });
    out.push(compare({ id: 'fionread', item: 7, label: 'ioctl(FIONREAD) on a pipe', where: 'host', c: f.fionread.baseline, js: f.fionread.library }));
    log('host: eventfd count to JavaScript (the interrupt delivery path, no device; addon vs C)');
    const e = await benchEventfdDelivery(backend, { rounds, samples, warmup, batch: 1000 });
    for (const [id, p] of Object.entries(e)) {
      out.push(compare({ id, item: 12, label: EVENTFD_LABELS[id], where: 'host', c: p.baseline, js: p.library }));
    }
  } else {
    log('host: the native addon is not built; FIONREAD skipped');
  }
  return out;
}

module.exports = { runHost };
