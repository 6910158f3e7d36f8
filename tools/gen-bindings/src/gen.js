#!/usr/bin/env node
'use strict';
// Generates packages/vfio-bindings/src/generated/*.ts from linux/vfio.h and
// linux/iommufd.h. Usage:
//   node src/gen.js                      fetch the pinned headers if needed, generate
//   node src/gen.js --headers DIR --package LABEL --out DIR
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseHeader } = require('./parse-header');
const { probe } = require('./probe');
const { emitHeaderModule, emitIndex } = require('./emit');
const { flexCounts, pointerArrays } = require('./flex-table');

const HEADERS = ['vfio.h', 'iommufd.h'];

function scalarKind(name, m) {
  const kind = `${m.signed ? 's' : 'u'}${m.elemSize * 8}`;
  if (![1, 2, 4, 8].includes(m.elemSize)) throw new Error(`${name}: no scalar of ${m.elemSize} bytes`);
  return kind;
}

// Joins what the parser named with what the compiler measured.
function buildModel(parsed, facts) {
  const constants = [];
  for (const m of parsed.macros) {
    if (!m.body) continue;
    const v = facts.values.get(m.name);
    const ioctl = /\b_IO(R|W|WR)?\s*\(/.test(m.body);
    constants.push({ name: m.name, kind: v.kind === 'string' ? 'string' : ioctl ? 'ioctl' : 'int', value: v.value });
  }
  for (const e of parsed.enums) {
    for (const n of e.members) constants.push({ name: n, kind: 'int', value: facts.values.get(n).value, enumName: e.name });
  }
  const records = parsed.records.map((r) => {
    const rf = facts.records.get(r.name);
    const fields = r.members.map((m) => {
      const mf = rf.members.get(m.name);
      const where = `${r.name}.${m.name}`;
      const nested = /^(struct|union) /.test(m.ctype) && !m.pointer;
      const type = nested ? m.ctype.split(' ')[1] : scalarKind(where, mf);
      if (nested) {
        const inner = facts.records.get(type);
        if (!inner || inner.size !== mf.elemSize) throw new Error(`${where}: size of ${m.ctype} disagrees`);
      }
      let count = 0;
      if (m.flex) count = -1;
      else if (m.array) {
        count = mf.size / mf.elemSize;
        if (!Number.isInteger(count)) throw new Error(`${where}: array size ${mf.size} is not a multiple of ${mf.elemSize}`);
      } else if (mf.size !== mf.elemSize) throw new Error(`${where}: sizeof disagrees with its element`);
      const field = { name: m.name, offset: mf.offset, type, ctype: m.ctype, count, union: m.union };
      if (m.flex) {
        if (!(where in flexCounts)) throw new Error(`${where}: flexible array missing from flex-table.js`);
        field.countField = flexCounts[where];
        if (m.countedBy && m.countedBy !== field.countField) {
          throw new Error(`${where}: the header says __counted_by(${m.countedBy}), flex-table.js says ${JSON.stringify(field.countField)}`);
        }
      }
      return field;
    });
    return { kind: r.kind, name: r.name, size: rf.size, align: rf.align, fields };
  });
  return { constants, records };
}

function checkTables(models) {
  const records = new Map(models.flatMap((m) => m.records.map((r) => [r.name, r])));
  for (const [where, count] of Object.entries(flexCounts)) {
    const [rec, field] = where.split('.');
    const r = records.get(rec);
    if (!r) continue; // an older header without this struct
    const f = r.fields.find((x) => x.name === field);
    if (!f || f.count !== -1) throw new Error(`flex-table.js: ${where} is not a flexible array member`);
    if (count !== null && !r.fields.some((x) => x.name === count && x.count === 0 && /^u/.test(x.type))) {
      throw new Error(`flex-table.js: ${rec}.${count} is not an unsigned scalar`);
    }
  }
  for (const [where, { countField, element }] of Object.entries(pointerArrays)) {
    const [rec, field] = where.split('.');
    const r = records.get(rec);
    if (!r) continue;
    if (!r.fields.some((x) => x.name === field && x.type === 'u64')) throw new Error(`flex-table.js: ${where} is not a __u64`);
    if (!r.fields.some((x) => x.name === countField)) throw new Error(`flex-table.js: ${rec}.${countField} missing`);
    if (!records.has(element)) throw new Error(`flex-table.js: ${element} is not a record`);
    r.pointerArrays = [...(r.pointerArrays || []), { field, countField, element }];
  }
}

function generate({ includeDir, packageLabel, outDir }) {
  const texts = HEADERS.map((h) => fs.readFileSync(path.join(includeDir, 'linux', h), 'utf8'));
  const parsed = texts.map(parseHeader);
  const versionParsed = parseHeader(fs.readFileSync(path.join(includeDir, 'linux', 'version.h'), 'utf8'));
  const facts = probe([...HEADERS, 'version.h'], [...parsed, versionParsed], includeDir);
  const ver = (n) => facts.values.get(n).value;
  const kernel = `${ver('LINUX_VERSION_MAJOR')}.${ver('LINUX_VERSION_PATCHLEVEL')}.${ver('LINUX_VERSION_SUBLEVEL')}`;
  const models = parsed.map((p) => buildModel(p, facts));
  checkTables(models);

  const source = HEADERS.map((h, i) => ({
    header: `linux/${h}`,
    sha256: crypto.createHash('sha256').update(texts[i]).digest('hex'),
  }));
  const files = new Map();
  HEADERS.forEach((h, i) => {
    files.set(`${path.basename(h, '.h')}.ts`, emitHeaderModule({ ...source[i], kernel, packageLabel, model: models[i] }));
  });
  files.set('index.ts', emitIndex({ kernel, packageLabel, sources: source, modules: HEADERS.map((h) => path.basename(h, '.h')) }));

  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, text] of files) fs.writeFileSync(path.join(outDir, name), text);
  return [...files.keys()].map((n) => path.join(outDir, n));
}

module.exports = { generate, HEADERS };

if (require.main === module) {
  const { fetchHeaders } = require('./fetch-headers');
  const { pinned, outDir } = require('./paths');
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const pin = pinned();
  const includeDir = arg('--headers') || fetchHeaders(pin.version);
  const packageLabel = arg('--package') || `${pin.package} ${pin.version}`;
  for (const f of generate({ includeDir, packageLabel, outDir: arg('--out') || outDir })) {
    process.stdout.write(`wrote ${path.relative(process.cwd(), f)}\n`);
  }
}
