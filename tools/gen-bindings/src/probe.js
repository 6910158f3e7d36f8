'use strict';
// Builds a C program that prints, for every name the parser found, what the
// compiler knows: macro and enumerator values with their signedness, sizeof
// and _Alignof of each record, and offsetof/sizeof/signedness of each member.
// The generator trusts only these numbers.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const isString = (body) => /^"/.test(body);
const isIoctl = (body) => /\b_IO(R|W|WR)?\s*\(/.test(body);

function probeSource(headers, parsed) {
  const out = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    ...headers.map((h) => `#include <linux/${h}>`),
    // 1 when an integer expression (or a member's type) is signed.
    '#define NEG(x) ((x) < 0)',
    '#define SIGNED_T(lv) ((__typeof__(lv))-1 < 0)',
    '#define MEM(S, m) (((S *)0)->m)',
    'int main(void) {',
  ];
  for (const p of parsed) {
    for (const m of p.macros) {
      if (!m.body) continue; // include guard
      if (isString(m.body)) out.push(`  printf("string %s %s\\n", "${m.name}", ${m.name});`);
      else out.push(`  printf("int %s %d %lld %llu\\n", "${m.name}", NEG(${m.name}), (long long)(${m.name}), (unsigned long long)(${m.name}));`);
    }
    for (const e of p.enums) {
      for (const n of e.members) {
        out.push(`  printf("int %s %d %lld %llu\\n", "${n}", NEG(${n}), (long long)(${n}), (unsigned long long)(${n}));`);
      }
    }
    for (const r of p.records) {
      const S = `${r.kind} ${r.name}`;
      out.push(`  printf("record %s %zu %zu\\n", "${r.name}", sizeof(${S}), _Alignof(${S}));`);
      for (const m of r.members) {
        const elem = m.array ? `MEM(${S}, ${m.name})[0]` : `MEM(${S}, ${m.name})`;
        // A flexible array member has no sizeof; its element does.
        const size = m.flex ? '(size_t)0' : `sizeof(MEM(${S}, ${m.name}))`;
        const signed = m.pointer || m.ctype.startsWith('struct ') || m.ctype.startsWith('union ') ? '0' : `SIGNED_T(${elem})`;
        out.push(
          `  printf("member %s %s %zu %zu %zu %zu %d\\n", "${r.name}", "${m.name}", offsetof(${S}, ${m.name}), ${size}, sizeof(${elem}), _Alignof(__typeof__(${elem})), ${signed});`,
        );
      }
    }
  }
  out.push('  return 0;', '}', '');
  return out.join('\n');
}

// Include path for a header tree: Debian's multiarch asm/ lives under
// <dir>/x86_64-linux-gnu (or the machine's own triplet).
function includeArgs(includeDir) {
  const args = ['-I', includeDir];
  let triplet = 'x86_64-linux-gnu';
  try {
    triplet = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
  } catch {}
  const multiarch = path.join(includeDir, triplet);
  if (fs.existsSync(multiarch)) args.push('-I', multiarch);
  return args;
}

function compileAndRun(source, includeDir, tag = 'probe') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vfio-${tag}-`));
  try {
    const src = path.join(dir, 'probe.c');
    const exe = path.join(dir, 'probe');
    fs.writeFileSync(src, source);
    // -fwrapv: (1 << 31) in a header then evaluates the way gcc does anyway,
    // without the probe depending on undefined behaviour.
    execFileSync('gcc', ['-std=gnu11', '-O0', '-w', '-fwrapv', ...includeArgs(includeDir), '-o', exe, src], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return execFileSync(exe, { encoding: 'utf8' });
  } catch (e) {
    const stderr = e.stderr ? e.stderr.toString() : '';
    throw new Error(`C probe failed: ${e.message}\n${stderr.slice(0, 4000)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function parseProbeOutput(text) {
  const values = new Map();
  const records = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [kind, ...f] = line.split(' ');
    if (kind === 'int') {
      const [name, neg, signedVal, unsignedVal] = f;
      values.set(name, { kind: 'int', value: BigInt(neg === '1' ? signedVal : unsignedVal) });
    } else if (kind === 'string') {
      values.set(f[0], { kind: 'string', value: f.slice(1).join(' ') });
    } else if (kind === 'record') {
      records.set(f[0], { size: Number(f[1]), align: Number(f[2]), members: new Map() });
    } else if (kind === 'member') {
      const [rec, name, offset, size, elemSize, elemAlign, signed] = f;
      records.get(rec).members.set(name, {
        offset: Number(offset),
        size: Number(size),
        elemSize: Number(elemSize),
        elemAlign: Number(elemAlign),
        signed: signed === '1',
      });
    } else {
      throw new Error(`unexpected probe output: ${line}`);
    }
  }
  return { values, records };
}

function probe(headers, parsed, includeDir) {
  return parseProbeOutput(compileAndRun(probeSource(headers, parsed), includeDir));
}

module.exports = { probe, probeSource, compileAndRun, includeArgs, isString, isIoctl };
