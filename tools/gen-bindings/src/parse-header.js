'use strict';
// A small parser for the regular subset of C that uapi headers use: object-like
// #defines, enums, and struct/union definitions with scalar, array, pointer,
// nested struct and anonymous struct/union members, and flexible arrays
// annotated with __counted_by(member). It supplies only names and
// member lists; every value, size and offset comes from the compiled probe.
// Anything outside that subset throws, so a new header construct is noticed
// instead of silently skipped.

function stripComments(text) {
  let out = '';
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw new Error('unterminated comment');
      // Keep the newlines so line-based directive handling still works.
      out += text.slice(i, end + 2).replace(/[^\n]/g, ' ');
      i = end + 2;
    } else if (text.startsWith('//', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

// Splits the header into directives (#define ...) and the C code between them.
function splitDirectives(text) {
  const lines = stripComments(text).replace(/\\\r?\n/g, ' ').split('\n');
  const macros = [];
  const code = [];
  for (const line of lines) {
    const m = /^\s*#\s*(\w+)\s*(.*)$/.exec(line);
    if (!m) {
      code.push(line);
      continue;
    }
    if (m[1] !== 'define') continue; // #ifndef guards, #include, #endif
    const d = /^(\w+)(\()?\s*(.*?)\s*$/.exec(m[2]);
    if (!d) throw new Error(`cannot read #define: ${line}`);
    if (d[2]) continue; // function-like macros are helpers, not constants
    macros.push({ name: d[1], body: d[3] });
  }
  return { macros, code: code.join('\n') };
}

function tokenize(code) {
  const re = /\s*(?:([A-Za-z_]\w*)|(0[xX][0-9a-fA-F]+|\d+)[uUlL]*|('(?:[^'\\]|\\.)*')|(<<|>>|[{}()[\];,=*|&~+\-<>!?:]))/y;
  const tokens = [];
  let pos = 0;
  while (pos < code.length) {
    if (/^\s*$/.test(code.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(code);
    if (!m) throw new Error(`unexpected text in header: ${code.slice(pos, pos + 40).trim()}`);
    tokens.push(m[1] || m[2] || m[3] || m[4]);
    pos = re.lastIndex;
  }
  return tokens;
}

class Parser {
  constructor(tokens) {
    this.t = tokens;
    this.i = 0;
    this.unionIds = 0;
  }
  peek(k = 0) {
    return this.t[this.i + k];
  }
  next() {
    if (this.i >= this.t.length) throw new Error('unexpected end of header');
    return this.t[this.i++];
  }
  expect(tok) {
    const got = this.next();
    if (got !== tok) throw new Error(`expected '${tok}' but found '${got}' near token ${this.i}`);
  }
  // Tokens up to (not including) the closing bracket that matches an opener
  // already consumed.
  until(close) {
    const open = { ']': '[', ')': '(', '}': '{' }[close];
    const out = [];
    for (let depth = 0; ; ) {
      const tok = this.next();
      if (tok === open) depth++;
      if (tok === close && depth-- === 0) return out;
      out.push(tok);
    }
  }

  parseTopLevel() {
    const records = [];
    const enums = [];
    while (this.i < this.t.length) {
      const kw = this.next();
      if (kw === 'enum') {
        const name = this.peek() === '{' ? null : this.next();
        this.expect('{');
        enums.push({ name, members: this.enumBody(this.until('}')) });
      } else if (kw === 'struct' || kw === 'union') {
        const name = this.next();
        this.expect('{');
        const members = this.recordBody(kw === 'union');
        if (kw === 'union') this.tagUnion(members);
        records.push({ kind: kw, name, members });
      } else {
        throw new Error(`unsupported top-level declaration starting with '${kw}'`);
      }
      this.expect(';');
    }
    return { records, enums };
  }

  enumBody(tokens) {
    const names = [];
    let expectName = true;
    let depth = 0;
    for (const tok of tokens) {
      if (tok === '(') depth++;
      if (tok === ')') depth--;
      if (depth === 0 && tok === ',') expectName = true;
      else if (expectName) {
        if (!/^[A-Za-z_]\w*$/.test(tok)) throw new Error(`bad enumerator '${tok}'`);
        names.push(tok);
        expectName = false;
      }
    }
    return names;
  }

  // Members of a struct/union body, flattened the way C names them: members of
  // anonymous structs/unions become members of the enclosing record. Each
  // member's `union` lists [unionId, alternative] for every anonymous union it
  // sits in, so an encoder can tell members that share bytes.
  recordBody(isUnion) {
    const members = [];
    let alt = 0;
    const add = (list) => {
      if (isUnion) for (const m of list) m.alt = alt;
      alt++;
      members.push(...list);
    };
    while (this.peek() !== '}') {
      const kw = this.peek();
      if ((kw === 'struct' || kw === 'union') && this.peek(1) === '{') {
        this.next();
        this.next();
        const inner = this.recordBody(kw === 'union');
        if (kw === 'union') this.tagUnion(inner);
        if (this.peek() !== ';') throw new Error('named members of inline struct/union types are not supported');
        this.next();
        add(inner);
        continue;
      }
      let ctype;
      if (kw === 'struct' || kw === 'union') {
        this.next();
        ctype = `${kw} ${this.next()}`;
      } else {
        ctype = this.next();
        if (!/^[A-Za-z_]\w*$/.test(ctype)) throw new Error(`unexpected '${ctype}' in record body`);
        // "unsigned int" and friends: several type keywords in a row.
        while (/^(unsigned|signed|int|long|short|char)$/.test(this.peek()) && /^[a-z]/.test(this.peek(1) || '')) {
          ctype += ` ${this.next()}`;
        }
      }
      for (;;) {
        let pointer = false;
        while (this.peek() === '*') {
          this.next();
          pointer = true;
        }
        const name = this.next();
        if (!/^[A-Za-z_]\w*$/.test(name)) throw new Error(`bad member name '${name}'`);
        const dims = [];
        while (this.peek() === '[') {
          this.next();
          dims.push(this.until(']').join(' '));
        }
        if (dims.length > 1) throw new Error(`${name}: multi-dimensional arrays are not supported`);
        const member = { name, ctype: pointer ? `${ctype} *` : ctype, pointer, array: dims.length === 1, flex: dims[0] === '' };
        // `__counted_by(member)` (linux/stddef.h; empty for compilers without
        // the attribute) names the count of a flexible array. The generator
        // checks it against flex-table.js. Its _le/_be/_ptr variants, or any
        // other attribute, fall through to the error below.
        if (this.peek() === '__counted_by') {
          this.next();
          this.expect('(');
          const arg = this.until(')');
          if (arg.length !== 1 || !/^[A-Za-z_]\w*$/.test(arg[0])) throw new Error(`${name}: __counted_by(${arg.join(' ')}) does not name a member`);
          if (!member.flex) throw new Error(`${name}: __counted_by on a member that is not a flexible array`);
          member.countedBy = arg[0];
        }
        add([member]);
        const sep = this.next();
        if (sep === ';') break;
        if (sep !== ',') throw new Error(`expected ';' after member ${name}, found '${sep}'`);
      }
    }
    this.next();
    return members;
  }

  tagUnion(members) {
    const id = this.unionIds++;
    for (const m of members) {
      m.union = [[id, m.alt], ...(m.union || [])];
      delete m.alt;
    }
  }
}

// Returns { macros, enums, records } in header order.
function parseHeader(text) {
  const { macros, code } = splitDirectives(text);
  const { records, enums } = new Parser(tokenize(code)).parseTopLevel();
  return { macros, enums, records };
}

module.exports = { parseHeader, stripComments };
