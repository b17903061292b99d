// Versions of the documents operators edit as a whole (the settings, the
// rules) over HTTP: GET answers an ETag; a change sent with If-Match is made
// only on that version (409 otherwise, with the current ETag), so that two
// operators never silently overwrite each other. If-Match is optional, as
// Consul's ?cas= is: without it a change is made on whatever is current.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InputError } from '../errors';

/** The ETag of a version: a quoted number, strong. */
export const etagOf = (version: number): string => `"${version}"`;

/** Sets the ETag header of a reply to the version's. */
export function withEtag(reply: FastifyReply, version: number): FastifyReply {
  return reply.header('etag', etagOf(version));
}

/** The version an If-Match header names; undefined when absent or "*" (any version). */
export function ifMatchVersion(request: FastifyRequest): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(',') : header).trim();
  if (value === '*') return undefined;
  const m = /^(?:W\/)?"(\d{1,15})"$/.exec(value);
  if (!m)
    throw new InputError(
      'If-Match',
      `"${value.slice(0, 40)}" is not an ETag this server gave: send the ETag header of the GET (a quoted number like "7"), or leave If-Match out`,
    );
  return Number(m[1]);
}
