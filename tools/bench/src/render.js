#!/usr/bin/env node
'use strict';
// Re-renders the README results section and the console table from
// results/latest.json without measuring again (after a wording change).
const fs = require('node:fs');
const { RESULTS_JSON } = require('./paths');
const { consoleTable } = require('./report');
const { renderReadmeSection } = require('./readme-section');
const { updateReadme } = require('./readme');

const results = JSON.parse(fs.readFileSync(RESULTS_JSON, 'utf8'));
updateReadme(renderReadmeSection(results));
console.log(consoleTable(results));
