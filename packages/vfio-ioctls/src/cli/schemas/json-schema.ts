/**
 * The part of JSON Schema (draft 2020-12) that the CLI's --json documents
 * are described in, and a validator for exactly that part: type, enum,
 * pattern, minLength, minimum, properties, required, additionalProperties
 * (false, or a schema for the other properties), items, anyOf.
 * The schemas are the contract of `--json` across releases; the tests hold
 * every command's output to its schema.
 */

export type JsonType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null';

export interface JsonSchema {
  $schema?: string;
  $id?: string;
  $comment?: string;
  title?: string;
  description?: string;
  type?: JsonType | readonly JsonType[];
  enum?: readonly (string | number | boolean | null)[];
  /** For strings: a regular expression the whole value must match (anchor it). */
  pattern?: string;
  minLength?: number;
  minimum?: number;
  properties?: Readonly<Record<string, JsonSchema>>;
  required?: readonly string[];
  /** false: no properties beyond `properties`; a schema: what the others must be. */
  additionalProperties?: false | JsonSchema;
  items?: JsonSchema;
  anyOf?: readonly JsonSchema[];
}

export const DRAFT = 'https://json-schema.org/draft/2020-12/schema';

function typeOf(value: unknown): JsonType | 'undefined' | 'other' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'object') return typeof value as JsonType;
  return value === undefined ? 'undefined' : 'other';
}

function typeMatches(value: unknown, type: JsonType): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

/**
 * The ways `value` breaks `schema`, each as 'PATH: what' ('$.groups[0].id:
 * expected integer, got string'); empty when it conforms.
 */
export function validate(schema: JsonSchema, value: unknown, path = '$'): string[] {
  if (schema.anyOf) {
    const each = schema.anyOf.map((alternative) => validate(alternative, value, path));
    if (!each.some((errors) => errors.length === 0)) {
      return [`${path}: matches none of ${each.length} alternatives (${each.map((errors) => errors[0]).join('; ')})`];
    }
  }
  if (schema.type !== undefined) {
    const types = typeof schema.type === 'string' ? [schema.type] : schema.type;
    if (!types.some((type) => typeMatches(value, type))) return [`${path}: expected ${types.join(' or ')}, got ${typeOf(value)}`];
  }
  if (schema.enum && !schema.enum.some((allowed) => allowed === value)) {
    return [`${path}: ${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`];
  }
  if (schema.pattern !== undefined && typeof value === 'string' && !new RegExp(schema.pattern, 'u').test(value)) {
    return [`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`];
  }
  if (schema.minLength !== undefined && typeof value === 'string' && [...value].length < schema.minLength) {
    return [`${path}: shorter than ${schema.minLength} characters`];
  }
  if (schema.minimum !== undefined && typeof value === 'number' && value < schema.minimum) {
    return [`${path}: ${value} is below the minimum ${schema.minimum}`];
  }
  const errors: string[] = [];
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in object)) errors.push(`${path}: missing required property '${key}'`);
    for (const [key, item] of Object.entries(object)) {
      const sub = schema.properties?.[key];
      if (sub) errors.push(...validate(sub, item, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected property '${key}'`);
      else if (schema.additionalProperties) errors.push(...validate(schema.additionalProperties, item, `${path}.${key}`));
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => errors.push(...validate(schema.items!, item, `${path}[${i}]`)));
  }
  return errors;
}

/** A closed object: every listed property required, no other allowed. */
export function record(properties: Record<string, JsonSchema>, description?: string): JsonSchema {
  return { type: 'object', ...(description ? { description } : {}), properties, required: Object.keys(properties), additionalProperties: false };
}

/** `schema`, or null. */
export function nullable(schema: JsonSchema): JsonSchema {
  return { anyOf: [schema, { type: 'null' }] };
}

export const integer: JsonSchema = { type: 'integer' };
export const string: JsonSchema = { type: 'string' };
export const boolean: JsonSchema = { type: 'boolean' };
/** A 64-bit value as a 0x string (JSON numbers are exact only up to 2^53). */
export const hex64: JsonSchema = { type: 'string', pattern: '^0x[0-9a-f]+$' };
export const pciAddress: JsonSchema = { type: 'string', pattern: '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]$' };
export const arrayOf = (items: JsonSchema): JsonSchema => ({ type: 'array', items });
