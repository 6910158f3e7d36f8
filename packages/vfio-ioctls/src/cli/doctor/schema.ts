/** `vfio doctor --json`, in the CLI's JSON Schema subset (schemas/json-schema.ts). */
import { arrayOf, boolean, DRAFT, integer, nullable, pciAddress, record, type JsonSchema } from '../schemas/json-schema';
import { DOCTOR_CHECK_IDS } from './run';

const findingSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: { description: 'the check, a stable name', enum: DOCTOR_CHECK_IDS },
    status: { enum: ['pass', 'warn', 'fail'] },
    summary: { description: 'what was found, one line', type: 'string', minLength: 1 },
    fix: { description: 'what to do, one line (warn and fail only)', type: 'string', minLength: 1 },
    details: { description: 'the facts behind the verdict; their shape is per check', type: 'object', additionalProperties: {} },
  },
  required: ['id', 'status', 'summary'],
  additionalProperties: false,
};

const count: JsonSchema = { ...integer, minimum: 0 };

export const doctorSchema: JsonSchema = {
  $schema: DRAFT,
  $id: 'vfio-ioctls/cli/doctor.json',
  title: 'vfio doctor --json',
  ...record({
    address: nullable(pciAddress),
    ok: { ...boolean, description: 'no finding failed (exit status 0)' },
    counts: record({ pass: count, warn: count, fail: count }),
    findings: arrayOf(findingSchema),
  }),
};
