// Builders for the declarations in contract/settings.ts and
// contract/assignment.ts. TypeBox schemas are plain JSON Schema: fastify's
// ajv validates them and @fastify/swagger publishes them as they are, and
// Static<> gives their TypeScript types. The builders keep the JSON exactly
// in the shape ajv's messages and the OpenAPI document expect (an enum is
// {"type": "string", "enum": [...]}, a nullable value {"type": [..., "null"]}).
import {
  Type,
  type Static,
  type StringOptions,
  type TObject,
  type TOptional,
  type TProperties,
  type TSchema,
  type TUnsafe,
} from '@sinclair/typebox';

/**
 * No control characters: C0 (NUL, newline, tab, ESC...), DEL, C1, the
 * Unicode line and paragraph separators and the byte order mark. Every
 * string an operator gives reaches a host file, a unit or the audit log,
 * where one of these would start a new line or hide what follows.
 */
const CONTROL_CHARACTERS = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\ufeff';
export const NO_CONTROL_PATTERN = `^[^${CONTROL_CHARACTERS}]*$`;
/** Finds a control character (as NO_CONTROL_PATTERN refuses them) in a string. */
export const CONTROL_CHARACTER = new RegExp(`[${CONTROL_CHARACTERS}]`);
export const NO_CONTROL_MESSAGE = 'must not contain control characters (newline, tab, NUL, ESC, ...)';

/**
 * A string field. Without a pattern of its own it refuses control
 * characters; a field with a pattern must allow only printable characters
 * (test/rest-control-characters walks every string field to check).
 */
export const Text = (options: StringOptions = {}) => Type.String({ pattern: NO_CONTROL_PATTERN, ...options });

/** One of `values`, as {"type": "string", "enum": [...]} (ajv says "must be equal to one of the allowed values"). */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/**
 * An object of string values under free keys (labels, selectors), as
 * {"type": "object", "additionalProperties": {...}}.
 */
export function StringMap(
  values: TSchema,
  options: { description?: string; minProperties?: number; maxProperties: number; propertyNames: object },
) {
  return Type.Unsafe<Record<string, string>>({ type: 'object', ...options, additionalProperties: values });
}

/** `schema` or null, written as JSON Schema's type list ({"type": ["string", "null"]}); null removes an optional setting. */
export function Nullable<T extends TSchema>(schema: T): TUnsafe<Static<T> | null> {
  // Symbol keys (TypeBox's Kind) are left behind: the result is its own kind.
  const { type, enum: values, default: _default, ...rest } = Object.fromEntries(Object.entries(schema)) as Record<string, unknown>;
  return Type.Unsafe<Static<T> | null>({
    ...rest,
    type: [type, 'null'],
    ...(Array.isArray(values) ? { enum: [...(values as unknown[]), null] } : {}),
  });
}

/**
 * A piece of teleport.yaml as JSON: free keys, checked by the renderer
 * (contract/render/fragments.ts), which knows which keys teleboot manages.
 */
export const ConfigFragment = (description: string) =>
  Type.Unsafe<Record<string, unknown>>({
    type: 'object',
    maxProperties: 32,
    description,
    propertyNames: { minLength: 1, maxLength: 128, pattern: NO_CONTROL_PATTERN },
    additionalProperties: { description: 'a section of teleport.yaml, a list or a value', examples: [{ enabled: true }] },
  });

/** Every property optional. */
export function AllOptional<P extends TProperties>(properties: P): { [K in keyof P]: TOptional<P[K]> } {
  return Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, Type.Optional(v)])) as { [K in keyof P]: TOptional<P[K]> };
}

/** A copy without `default`: ajv runs with useDefaults, and a PATCH must not reset what it does not name. */
export function withoutDefault<T extends TSchema>(schema: T): T {
  const copy = { ...schema };
  delete copy.default;
  return copy;
}

/**
 * The value every property with a `default` in `schema` takes. Throws at
 * load time when a required property has none, so the result is a whole
 * value of the schema's type.
 */
export function defaultsOf<T extends TObject>(schema: T): Static<T> {
  const value: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(schema.properties)) {
    if ('default' in property) value[key] = structuredClone(property.default);
  }
  const missing = (schema.required ?? []).filter((key) => !(key in value));
  if (missing.length > 0) throw new Error(`schema ${schema.$id ?? ''} declares no default for ${missing.join(', ')}`);
  return value;
}
