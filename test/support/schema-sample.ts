// Values and string fields read from the JSON schemas declared in contract/,
// so tests cover a setting the day it is declared, without a list by hand.
import { NO_CONTROL_PATTERN } from '../../contract/schema';

/** The JSON Schema keywords the declarations use. */
export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  examples?: unknown[];
  pattern?: string;
  minimum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
}

const typeOf = (schema: JsonSchema): string | undefined =>
  Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;

/** A string for `schema`: its example, or a distinct text when it takes any printable text. */
function sampleText(schema: JsonSchema, path: string): string {
  if (schema.examples?.length) return String(schema.examples[0]);
  if (schema.pattern !== undefined && schema.pattern !== NO_CONTROL_PATTERN)
    throw new Error(`${path}: a string with its own pattern needs "examples" in its declaration`);
  return `${path.replace(/\W+/g, '-')}-x`;
}

/**
 * A value the schema accepts. `full`: every optional property too, each
 * non-empty and not its proto3 default (so it survives the wire); otherwise
 * only the required ones.
 */
export function sampleOf(schema: JsonSchema, full: boolean, path = 'value'): unknown {
  if (schema.examples?.length) return schema.examples[0];
  if (schema.enum) return schema.enum.filter((v) => v !== null).at(-1);
  switch (typeOf(schema)) {
    case 'string':
      return sampleText(schema, path);
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 0, 7);
    case 'boolean':
      return true;
    case 'array':
      return [sampleOf(schema.items ?? {}, full, `${path}[0]`)];
    case 'object': {
      if (schema.properties) {
        const required = new Set(schema.required ?? []);
        return Object.fromEntries(
          Object.entries(schema.properties)
            .filter(([key]) => full || required.has(key))
            .map(([key, property]) => [key, sampleOf(property, full, `${path}.${key}`)]),
        );
      }
      const values = schema.additionalProperties;
      return typeof values === 'object' ? { env: sampleOf(values, full, `${path}.env`) } : {};
    }
    default:
      throw new Error(`${path}: no sample for ${JSON.stringify(schema)}`);
  }
}

/** Where a free string sits in a value: a property (or list item) value, or a map's key. */
export interface StringField {
  /** Property names and list indexes from the top, e.g. ["apps", 0, "labels", "env"]. */
  path: Array<string | number>;
  /** The string is the key of a map entry (the last element of `path`) rather than a value. */
  key: boolean;
}

/** Every string an operator types in (not enum choices), with the path to it in sampleOf(schema, false) extended as needed. */
export function stringFields(schema: JsonSchema, path: Array<string | number> = []): StringField[] {
  if (schema.enum) return [];
  switch (typeOf(schema)) {
    case 'string':
      return [{ path, key: false }];
    case 'array':
      return stringFields(schema.items ?? {}, [...path, 0]);
    case 'object': {
      if (schema.properties) return Object.entries(schema.properties).flatMap(([key, p]) => stringFields(p, [...path, key]));
      const values = schema.additionalProperties;
      const fields: StringField[] = [{ path: [...path, 'env'], key: true }];
      return typeof values === 'object' ? [...fields, ...stringFields(values, [...path, 'env'])] : fields;
    }
    default:
      return [];
  }
}

/** The schema's own path of a field (JSON pointer-like, for messages): ["apps", 0, "name"] -> "apps.0.name". */
export const dotted = (path: Array<string | number>): string => path.join('.');
