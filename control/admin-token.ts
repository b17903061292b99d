// The first admin token: on a first start with no API token at all, one is
// generated into <data_dir>/admin-token (0600). Its path is logged, never the
// token. Create the others with `teleboot-control tokens create` or
// POST /v1/api-tokens, and revoke this one once they exist.
import { join } from 'node:path';
import { writeFileAtomic } from '../contract/files';
import type { Logger } from '../contract/log';
import type { ControlService } from './service';

export const ADMIN_TOKEN_FILE = 'admin-token';

export async function ensureAdminToken(service: ControlService, dataDir: string, log: Logger): Promise<void> {
  if ((await service.store.countApiTokens()) > 0) return;
  const { token, record } = await service.trust.createApiToken('admin', 'admin', 'teleboot-control');
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  await writeFileAtomic(path, token + '\n', { mode: 0o600 });
  log.info(
    { path, tokenId: record.id, scope: record.scope },
    'generated the first admin API token; send it as "Authorization: Bearer <token>"',
  );
}
