/**
 * The --json documents are a contract: each command's output, in the
 * states a machine can be in, conforms to the command's JSON Schema
 * (src/cli/schemas), and the schemas reject documents that break it.
 */
import { mkdirSync } from 'node:fs';
import type { VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { commands } from '../../src/cli/commands';
import { DRAFT, validate, type JsonSchema } from '../../src/cli/schemas/json-schema';
import { VfioContext as Context } from '../../src';
import type { CommandEnv } from '../../src/cli/command';
import { bindingModel, deviceDir, link, put, run, testMachine } from './helpers';
import { EDU, machine, type Machine } from './doctor-fixtures/machine';

describe('the validator', () => {
  const schema: JsonSchema = {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      name: { anyOf: [{ type: 'string', pattern: '^[a-z]+$' }, { type: 'null' }] },
      kind: { enum: ['pf', 'vf'] },
      count: { type: 'integer', minimum: 0 },
      label: { type: 'string', minLength: 1 },
      details: { type: 'object', additionalProperties: { type: 'string' } },
      items: { type: 'array', items: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'], additionalProperties: false } },
    },
    required: ['id', 'name'],
    additionalProperties: false,
  };

  test('a conforming document has no errors', () => {
    expect(validate(schema, { id: 3, name: 'abc', kind: 'vf', items: [{ n: 1.5 }, { n: 2 }] })).toEqual([]);
    expect(validate(schema, { id: 3, name: null })).toEqual([]);
  });

  test('each kind of fault is found, with its path', () => {
    expect(validate(schema, [])).toEqual(['$: expected object, got array']);
    expect(validate(schema, { id: 1.5, name: 'x' })).toEqual(['$.id: expected integer, got number']);
    expect(validate(schema, { name: 'x' })).toEqual(["$: missing required property 'id'"]);
    expect(validate(schema, { id: 1, name: 'x', extra: true })).toEqual(["$: unexpected property 'extra'"]);
    expect(validate(schema, { id: 1, name: 'x', kind: 'pci' })).toEqual(['$.kind: "pci" is not one of "pf", "vf"']);
    expect(validate(schema, { id: 1, name: 'X1' })).toEqual(['$.name: matches none of 2 alternatives ($.name: "X1" does not match ^[a-z]+$; $.name: expected null, got string)']);
    expect(validate(schema, { id: 1, name: 'x', items: [{ n: 1 }, { m: 2 }] })).toEqual(["$.items[1]: missing required property 'n'", "$.items[1]: unexpected property 'm'"]);
    expect(validate(schema, { id: 1, name: 'x', count: -1, label: '' })).toEqual(['$.count: -1 is below the minimum 0', '$.label: shorter than 1 characters']);
    expect(validate(schema, { id: 1, name: 'x', details: { a: 'ok', b: 2 } })).toEqual(['$.details.b: expected string, got integer']);
  });
});

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => kernel.dispose());

/** The documents of one command, in several states of the machine. */
const examples: Record<string, () => Promise<unknown[]>> = {
  list: async () => {
    kernel.bindDriver('0000:03:02.0', 'e1000e');
    const cdevs = testMachine({ deviceCdevs: true }).kernel;
    try {
      mkdirSync(`${cdevs.sysfsRoot}/class/misc/iommu`, { recursive: true });
      return [await json(['list']), await json(['list', '--sysfs-root', cdevs.sysfsRoot])];
    } finally {
      cdevs.dispose();
    }
  },
  info: async () => {
    const pf = deviceDir(kernel, '0000:00:03.0');
    put(`${pf}/sriov_totalvfs`, '7\n');
    put(`${pf}/sriov_numvfs`, '1\n');
    link(`${pf}/virtfn0`, deviceDir(kernel, '0000:01:00.0'));
    link(`${deviceDir(kernel, '0000:01:00.0')}/physfn`, pf);
    kernel.addDevice({ address: '0000:05:00.0', group: 12, migration: { flags: 0x7 }, dmaLogging: true });
    const cdevs = testMachine({ deviceCdevs: true });
    try {
      return [await json(['info', '00:03.0']), await json(['info', '01:00.0']), await json(['info', '05:00.0']), await json(['info', '01:00.0'], cdevs.context)];
    } finally {
      cdevs.kernel.dispose();
    }
  },
  bind: async () => {
    kernel.bindDriver('0000:03:01.0', 'e1000e');
    kernel.bindDriver('0000:03:02.0', 'igb');
    return [await json(['bind', '03:01.0']), await json(['bind', '--group', '9']), await json(['bind', '00:03.0'])];
  },
  doctor: async () => [
    doctorJson(machine(), [EDU]),
    doctorJson(machine(), [], { 'no-open': true }),
    doctorJson(machine({ memlock: '65536' }), [], { memory: '1G' }),
  ],
  unbind: async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    await json(['bind', '00:03.0']);
    return [await json(['unbind', '00:03.0']), await json(['unbind', '00:03.0']), await json(['unbind', '--group', '9'])];
  },
};

/**
 * `vfio doctor --json` on a built machine tree (the fake kernel's sysfs has
 * no IOMMU unit, so doctor would only ever fail there): exit status 0 or 1.
 */
function doctorJson(m: Machine, args: string[], options: CommandEnv['options'] = {}): unknown {
  let out = '';
  const { backend, iommufdPath } = m.options;
  const code = commands.doctor!.run({
    command: 'doctor', args, options, json: true,
    sysfsRoot: m.sys, devRoot: m.vfio, procRoot: m.proc, environment: {},
    context: () => Context.from({ backend, devRoot: m.vfio, sysfsRoot: m.sys, iommufdPath }),
    writeSysfs: () => { throw new Error('doctor writes nothing'); },
    networkInterfaces: () => ({}),
    stdout: { write: (text: string) => (out += text) },
    style: (_format, text) => text,
  });
  expect([0, 1]).toContain(code);
  return JSON.parse(out);
}

async function json(argv: string[], given = context): Promise<unknown> {
  const r = await run([...argv, '--json'], { context: given, writeSysfs: bindingModel(kernel).writeSysfs });
  expect({ argv, code: r.code, stderr: r.stderr }).toEqual({ argv, code: 0, stderr: '' });
  return JSON.parse(r.stdout);
}

test('every command has a schema and examples here', () => {
  expect(Object.keys(examples).sort()).toEqual(Object.keys(commands).sort());
  for (const command of Object.values(commands)) {
    expect({ name: command.name, $schema: command.schema.$schema, type: command.schema.type }).toEqual({ name: command.name, $schema: DRAFT, type: 'object' });
  }
});

describe.each(Object.keys(examples))('%s --json', (name) => {
  test('conforms to its schema in every state tried', async () => {
    const documents = await examples[name]!();
    expect(documents.length).toBeGreaterThan(0);
    for (const document of documents) expect(validate(commands[name]!.schema, document)).toEqual([]);
  });

  test('the schema rejects a document with a property missing, one too many, or of the wrong type', async () => {
    const [document] = (await examples[name]!()) as Record<string, unknown>[];
    const [first] = Object.keys(document!);
    const { [first!]: _dropped, ...missing } = document!;
    expect(validate(commands[name]!.schema, missing)).toEqual([`$: missing required property '${first}'`]);
    expect(validate(commands[name]!.schema, { ...document, surprise: 1 })).toEqual(["$: unexpected property 'surprise'"]);
    expect(validate(commands[name]!.schema, { ...document, [first!]: true })).not.toEqual([]);
  });
});

test('nested faults are found too: a device without its cdev, a region size as a number', async () => {
  const list = (await json(['list'])) as { groups: { devices: Record<string, unknown>[] }[] };
  delete list.groups[1]!.devices[0]!.cdev;
  expect(validate(commands.list!.schema, list)).toEqual(["$.groups[1].devices[0]: missing required property 'cdev'"]);
  const info = (await json(['info', '01:00.0'])) as { regions: Record<string, unknown>[] };
  info.regions[0]!.size = 16384;
  expect(validate(commands.info!.schema, info)).toEqual(['$.regions[0].size: expected string, got integer']);
});
