/** The JSON Schema (draft 2020-12) of `vfio doctor --json`. */
import { DOCTOR_CHECK_IDS } from './run';

const detailValue = { $comment: 'any JSON value' };

export const doctorSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'vfio doctor --json',
  type: 'object',
  required: ['address', 'ok', 'counts', 'findings'],
  additionalProperties: false,
  properties: {
    address: { description: 'the device checked, or null for the machine alone', type: ['string', 'null'], pattern: '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$' },
    ok: { description: 'no finding failed (exit status 0)', type: 'boolean' },
    counts: {
      type: 'object',
      required: ['pass', 'warn', 'fail'],
      additionalProperties: false,
      properties: {
        pass: { type: 'integer', minimum: 0 },
        warn: { type: 'integer', minimum: 0 },
        fail: { type: 'integer', minimum: 0 },
      },
    },
    findings: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'status', 'summary'],
        additionalProperties: false,
        properties: {
          id: { description: 'the check, a stable name', enum: [...DOCTOR_CHECK_IDS] },
          status: { enum: ['pass', 'warn', 'fail'] },
          summary: { description: 'what was found, one line', type: 'string', minLength: 1 },
          fix: { description: 'what to do, one line (warn and fail)', type: 'string', minLength: 1 },
          details: { description: 'the facts behind the verdict', type: 'object', additionalProperties: detailValue },
        },
      },
    },
  },
} as const;
