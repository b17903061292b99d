// Opens the store the configuration names: the SQLite file (the default) or
// PostgreSQL. The PostgreSQL password comes from store.password_file or the
// PGPASSWORD environment variable; it is never logged.
import { readFileSync, statSync } from 'node:fs';
import type { PostgresConfig } from '../config';
import { PgStore } from './postgres';
import type { RecordStore } from './record-store';
import { SqliteStore } from './sqlite';

/** The password in a file of its own (mode 0600 or stricter), without its trailing newline. */
export function readPasswordFile(path: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`store.password_file ${path} cannot be read: ${(err as Error).message}`);
  }
  if (mode & 0o077) throw new Error(`store.password_file ${path} is readable by others (mode 0${mode.toString(8)}): run chmod 600 ${path}`);
  const password = text.replace(/\r?\n$/, '');
  if (!password) throw new Error(`store.password_file ${path} is empty: write the database password into it`);
  return password;
}

/** `log` hears of lost database connections (each is reconnected by itself). */
export async function openStore(
  config: { storePath: string; postgres?: PostgresConfig },
  log?: { warn(details: object, message: string): void },
): Promise<RecordStore> {
  if (!config.postgres) return new SqliteStore(config.storePath);
  const { url, passwordFile, tls } = config.postgres;
  try {
    return await PgStore.open({
      url,
      password: passwordFile ? readPasswordFile(passwordFile) : undefined,
      tls,
      onConnectionError: (err, what) => log?.warn({ store: url, reason: err.message }, what),
    });
  } catch (err) {
    throw new Error(`the PostgreSQL store ${url} cannot be opened: ${(err as Error).message}`);
  }
}
