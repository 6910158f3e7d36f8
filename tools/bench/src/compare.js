'use strict';
// Turns the raw samples of both sides into one comparison record: min and
// median per call for each, the library/C ratio of the medians (and of the
// minima, the figure least disturbed by the TCG guest's noise), the target.
const { stats } = require('./timing');
const { TARGETS, verdict } = require('./targets');

function compare({ id, item, label, where, target, c, js, baseline = 'C' }) {
  const cs = stats(c.samples);
  const js_ = stats(js.samples);
  const ratio = { median: js_.median / cs.median, min: js_.min / cs.min };
  return {
    id,
    item,
    label,
    where,
    baseline,
    unit: 'ns/op',
    c: { batch: c.batch, ...cs, samples: c.samples },
    js: { batch: js.batch, ...js_, samples: js.samples },
    ratio,
    target: target ? TARGETS[target].text : null,
    verdict: target ? verdict(target, ratio.median) : '',
  };
}

module.exports = { compare };
