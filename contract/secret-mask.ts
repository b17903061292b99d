// Masking secrets out of text an agent sends to the control server (Teleport's
// log lines, diffs of hand-edited files): the control server stores and
// shows it, and operators paste it into tickets. Masked: the values the agent
// knows to be secret (its join token) literally, PEM blocks, the values of
// token/password/secret keys, AWS access key ids and proxy passwords in URLs.

export const MASK = '***';

/** Keys whose value is a secret: auth_token, token, token_name, password, aws_secret_access_key, ... */
const SECRET_KEY_VALUE = /\b([A-Za-z_-]*(?:token|password|passwd|secret)[A-Za-z_-]*)("?\s*[:=]\s*"?)([^\s"',}]+)/gi;
const AWS_ACCESS_KEY_ID = /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g;
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:@/]+):[^\s@/]+@/gi;
const PEM_IN_LINE = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?(?:-----END \1-----|$)/g;
const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/;
const PEM_END = /-----END ([A-Z0-9 ]+)-----/;

/** Literal secrets shorter than this are not masked: they would mask ordinary words. */
const MIN_LITERAL = 6;

/** One line with every secret replaced by "***"; `literals` are values known to be secret. */
export function maskLine(line: string, literals: readonly string[] = []): string {
  let out = line;
  for (const literal of literals) if (literal.length >= MIN_LITERAL) out = out.split(literal).join(MASK);
  return out
    .replace(PEM_IN_LINE, (_m, type: string) => `-----BEGIN ${type}----- ${MASK} -----END ${type}-----`)
    .replace(SECRET_KEY_VALUE, (_m, key: string, sep: string) => `${key}${sep}${MASK}`)
    .replace(AWS_ACCESS_KEY_ID, MASK)
    .replace(URL_PASSWORD, `$1:${MASK}@`);
}

/**
 * Lines with secrets masked; a PEM block spread over several lines becomes
 * its BEGIN line, one "***" line and its END line (an unterminated block is
 * masked to the end).
 */
export function maskLines(lines: readonly string[], literals: readonly string[] = []): string[] {
  const out: string[] = [];
  let inPem = false;
  for (const line of lines) {
    if (inPem) {
      if (PEM_END.test(line)) {
        inPem = false;
        out.push(line.replace(/^.*?(-----END )/, '$1'));
      }
      continue;
    }
    const begin = PEM_BEGIN.exec(line);
    if (begin && !PEM_END.test(line.slice(begin.index))) {
      inPem = true;
      out.push(maskLine(line.slice(0, begin.index), literals) + begin[0], MASK);
      continue;
    }
    out.push(maskLine(line, literals));
  }
  return out;
}

/**
 * Control characters (terminal escapes, NUL, carriage returns) written as
 * \xNN, so that a line shown in a terminal or a web page is only text.
 */
export function escapeControlCharacters(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** True when the text holds a control character other than tab. */
export function hasControlCharacters(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(text);
}
