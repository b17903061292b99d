// Request bodies are JSON and nothing else, read strictly. JSON.parse keeps
// the last of two equal keys ({"role":"node","role":"auth"} means auth) and
// makes "__proto__" an own key that a later spread or merge turns into a
// prototype; numbers above 2^53 silently become another number. A scan of
// the text after JSON.parse accepted it refuses all three, naming the field.
// (No maintained npm package checks duplicate keys, and the scan also gives
// the other two answers with the field's path.)
import { InputError } from '../errors';

/** Keys that could reach an object's prototype once the body is merged or spread. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor']);

type Frame = { kind: 'object'; keys: Set<string>; key?: string } | { kind: 'array'; index: number };

const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function pathOf(stack: Frame[]): string {
  let path = 'body';
  for (const f of stack) path += f.kind === 'object' ? (f.key === undefined ? '' : `.${f.key}`) : `.${f.index}`;
  return path;
}

/** The index of the closing quote of the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i;
}

/** Throws InputError for a repeated key, a prototype key or an integer JSON cannot carry exactly. */
export function checkJsonText(text: string): void {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      const end = stringEnd(text, i);
      let j = end + 1;
      while (/\s/.test(text[j] ?? '')) j++;
      if (top?.kind === 'object' && text[j] === ':') {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        top.key = undefined;
        const field = `${pathOf(stack)}.${key}`;
        if (FORBIDDEN_KEYS.has(key))
          throw new InputError(field, `the key "${key}" is not allowed (it could reach the prototype of objects built from the body)`);
        if (top.keys.has(key))
          throw new InputError(field, 'appears twice; a JSON object may name a key only once (parsers differ on which one counts)');
        top.keys.add(key);
        top.key = key;
        i = j + 1;
      } else i = end + 1;
      continue;
    }
    if (c === '{') stack.push({ kind: 'object', keys: new Set() });
    else if (c === '[') stack.push({ kind: 'array', index: 0 });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',' && top?.kind === 'array') top.index++;
    else if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(text)![0];
      if (Math.abs(Number(token)) > Number.MAX_SAFE_INTEGER)
        throw new InputError(
          pathOf(stack),
          `${token} is above 2^53 - 1 (${Number.MAX_SAFE_INTEGER}), the largest integer JSON carries exactly`,
        );
      i += token.length;
      continue;
    }
    i++;
  }
}

/** Parses a JSON request body strictly; InputError (400) names what is wrong. An empty body is no body. */
export function parseJsonBody(text: string): unknown {
  // No body at all (a DELETE from a client that always sends the header): the route's schema decides.
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // Only the position: the parser's own message quotes the body, which the log would then hold.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new InputError('body', `is not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
  }
  checkJsonText(text);
  return value;
}

/**
 * A query or path parameter declared integer or number whose digits exceed
 * 2^53 - 1 would be coerced to another number by validation: refused first.
 */
export function checkUnsafeIntegerParameters(
  values: unknown,
  schema: { properties?: Record<string, { type?: unknown }> } | undefined,
  where: 'querystring' | 'params',
): void {
  if (!values || typeof values !== 'object' || !schema?.properties) return;
  for (const [name, raw] of Object.entries(values as Record<string, unknown>)) {
    const type = schema.properties[name]?.type;
    if ((type !== 'integer' && type !== 'number') || typeof raw !== 'string' || !/^\s*-?\d+/.test(raw)) continue;
    if (Math.abs(Number.parseFloat(raw)) > Number.MAX_SAFE_INTEGER)
      throw new InputError(
        `${where}.${name}`,
        `${raw} is above 2^53 - 1 (${Number.MAX_SAFE_INTEGER}), the largest integer this API takes exactly`,
      );
  }
}
