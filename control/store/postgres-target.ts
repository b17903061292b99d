// Where the PostgreSQL store is and how its connection is secured: read by
// the configuration without loading the database driver.

/** How the connection to PostgreSQL is secured: libpq's sslmode values the store accepts. */
export const PG_TLS_MODES = ['disable', 'require', 'verify-full'] as const;
export type PgTlsMode = (typeof PG_TLS_MODES)[number];

/**
 * Where to connect, from postgres://user@host:port/database. Parsed here,
 * not by pg: its parser would put an empty password over the one given.
 */
export function pgTarget(url: string): { host: string; port: number; user: string; database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL: give postgres://user@host:port/database`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')
    throw new Error(`"${u.protocol}" is not a PostgreSQL URL scheme: give postgres://user@host:port/database`);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!u.hostname || !u.username || !database)
    throw new Error('a PostgreSQL URL names the user, the host and the database: postgres://user@host:port/database');
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 5432), user: decodeURIComponent(u.username), database };
}
