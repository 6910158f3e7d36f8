'use strict';
// Issue 6 item 6: vfio-bindings' codecs against hand-written DataView code,
// on the two shapes where a generic codec could lose the most: a large
// flexible array (2048 eventfds for MSI-X) and a capability chain.
const bindings = require('vfio-bindings');
const hand = require('./dataview-codecs');
const { measureSync } = require('../timing');
const { alternate } = require('../alternate');

const VECTORS = 2048;
const MSIX = bindings.VFIO_PCI_MSIX_IRQ_INDEX;
const TRIGGER = bindings.VFIO_IRQ_SET_ACTION_TRIGGER;
const EVENTFD = bindings.VFIO_IRQ_SET_DATA_EVENTFD;
const eventfds = Array.from({ length: VECTORS }, (_, i) => 100 + i);
const regionBytes = hand.regionInfoFixture();
const plainRegionBytes = hand.plainRegionInfoFixture();

// Each side returns its result to a sink so the JIT cannot drop the work.
let sink;
const sides = {
  'codec-irq-set-encode': {
    library: () => {
      sink = bindings.encodeIrqSet({ flags: EVENTFD | TRIGGER, index: MSIX, start: 0, count: VECTORS, eventfds });
    },
    baseline: () => {
      sink = hand.encodeIrqSet(EVENTFD | TRIGGER, MSIX, 0, eventfds);
    },
    batch: 200,
  },
  'codec-region-info-decode': {
    library: () => {
      const info = bindings.vfio_region_info.decode(regionBytes);
      sink = { info, caps: bindings.walkCapabilities(regionBytes, 'region', info.cap_offset, info.argsz) };
    },
    baseline: () => {
      sink = hand.decodeRegionInfo(regionBytes);
    },
    batch: 20000,
  },
  // The same decode where a region has no capabilities: the struct alone.
  'codec-region-info-plain-decode': {
    library: () => {
      sink = bindings.vfio_region_info.decode(plainRegionBytes);
    },
    baseline: () => {
      sink = hand.decodeRegionInfo(plainRegionBytes);
    },
    batch: 20000,
  },
};

/** Both sides must produce the same bytes and the same values, or the race means nothing. */
function checkAgreement() {
  const a = bindings.encodeIrqSet({ flags: EVENTFD | TRIGGER, index: MSIX, start: 0, count: VECTORS, eventfds });
  const b = hand.encodeIrqSet(EVENTFD | TRIGGER, MSIX, 0, eventfds);
  if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) throw new Error('encodeIrqSet: bindings and DataView bytes differ');
  const info = bindings.vfio_region_info.decode(regionBytes);
  const caps = bindings.walkCapabilities(regionBytes, 'region', info.cap_offset, info.argsz);
  const mine = hand.decodeRegionInfo(regionBytes);
  const sparse = caps[0].value;
  if (caps.length !== 2 || info.size !== mine.size || sparse.areas.length !== 4 || sparse.areas[3].offset !== mine.caps[0].areas[3].offset || caps[1].value.type !== mine.caps[1].type) {
    throw new Error('region info: bindings and DataView decode differ');
  }
  const plain = bindings.vfio_region_info.decode(plainRegionBytes);
  const plainMine = hand.decodeRegionInfo(plainRegionBytes);
  if (plain.size !== plainMine.size || plain.flags !== plainMine.flags || plain.cap_offset !== 0 || plainMine.caps.length !== 0) {
    throw new Error('plain region info: bindings and DataView decode differ');
  }
}

async function benchCodecs({ rounds, samples, warmup }) {
  checkAgreement();
  const runSide = (side) => () => {
    const out = {};
    for (const [id, s] of Object.entries(sides)) out[id] = { batch: s.batch, samples: measureSync(s[side], { batch: s.batch, samples, warmup }) };
    return out;
  };
  const pooled = await alternate(rounds, runSide('baseline'), runSide('library'));
  void sink;
  return pooled;
}

module.exports = { benchCodecs };
