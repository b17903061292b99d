// The rollout repositories: statements on the rollout tables
// (rollout-tables.ts), in the SQL both databases speak. The rules are in
// record-store.ts (saveChange) and control/rollout.
import type { Assignment, ClusterSettings } from '../../contract/model';
import type { Rollout } from '../rollout/model';
import { ConflictError, InputError } from '../errors';
import type { Sql } from './engine';
import type { InstanceConfig, RolloutQuery, StoredRollout } from './rollouts';
import { inChunks, marks, rowToInstance, type InstanceRow } from './rows';
import type { InstanceRecord, Page } from './store';

interface RolloutRow {
  body: string;
  revision: number | string;
  created_at?: number | string;
}

interface ConfigRow {
  instance_id: string;
  generation: number | string;
  assignment: string | null;
  settings: string;
}

const UNDER_WAY = "('running', 'paused', 'halted')";

const toStored = (row: RolloutRow): StoredRollout => ({ rollout: JSON.parse(row.body) as Rollout, revision: Number(row.revision) });
const toConfig = (row: ConfigRow): InstanceConfig => ({
  instanceId: row.instance_id,
  generation: Number(row.generation),
  assignment: row.assignment === null ? null : (JSON.parse(row.assignment) as Assignment),
  settings: JSON.parse(row.settings) as ClusterSettings,
});

export class RolloutRecords {
  constructor(private readonly sql: Sql) {}

  async rollout(id: string): Promise<StoredRollout | undefined> {
    const row = await this.sql.get<RolloutRow>('SELECT body, revision FROM rollouts WHERE id = ?', [id]);
    return row && toStored(row);
  }

  async activeRollout(): Promise<StoredRollout | undefined> {
    const row = await this.sql.get<RolloutRow>(
      `SELECT body, revision FROM rollouts WHERE state IN ${UNDER_WAY} ORDER BY created_at DESC, id DESC LIMIT 1`,
    );
    return row && toStored(row);
  }

  async rollouts(query: RolloutQuery): Promise<Page<Rollout>> {
    const params: unknown[] = [];
    let where = '';
    if (query.before) {
      const [at, id] = decodeCursor(query.before);
      where = 'WHERE created_at < ? OR (created_at = ? AND id < ?)';
      params.push(at, at, id);
    }
    params.push(query.limit + 1);
    const rows = await this.sql.all<RolloutRow & { id: string }>(
      `SELECT id, body, revision, created_at FROM rollouts ${where} ORDER BY created_at DESC, id DESC LIMIT ?`,
      params,
    );
    const items = rows.slice(0, query.limit).map((r) => toStored(r).rollout);
    const last = items[items.length - 1];
    return { items, next: rows.length > query.limit ? `${last.createdAt}.${last.id}` : undefined };
  }

  /** Inserts (revision null) or updates a rollout whose stored revision is still `revision`; ConflictError otherwise. */
  async saveRollout(rollout: Rollout, revision: number | null): Promise<void> {
    const body = JSON.stringify(rollout);
    const changed =
      revision === null
        ? await this.sql.run(
            'INSERT INTO rollouts (id, state, created_at, updated_at, revision, body) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (id) DO NOTHING',
            [rollout.id, rollout.state, rollout.createdAt, rollout.updatedAt, body],
          )
        : await this.sql.run(
            'UPDATE rollouts SET state = ?, updated_at = ?, revision = revision + 1, body = ? WHERE id = ? AND revision = ?',
            [rollout.state, rollout.updatedAt, body, rollout.id, revision],
          );
    if (changed === 0) throw new ConflictError(`rollout ${rollout.id} was changed meanwhile; read it again`);
  }

  /** Raises an instance's generation; ConflictError when another change raised it meanwhile. */
  async raiseGeneration(instanceId: string, generation: number, now: number): Promise<void> {
    const changed = await this.sql.run('UPDATE instances SET generation = ?, updated_at = ? WHERE instance_id = ? AND generation < ?', [
      generation,
      now,
      instanceId,
      generation,
    ]);
    if (changed === 0) throw new ConflictError(`instance ${instanceId} was changed meanwhile; try again`);
  }

  async saveConfig(config: InstanceConfig, now: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO instance_configs (instance_id, generation, assignment, settings, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (instance_id, generation) DO UPDATE SET assignment = excluded.assignment, settings = excluded.settings`,
      [
        config.instanceId,
        config.generation,
        config.assignment === null ? null : JSON.stringify(config.assignment),
        JSON.stringify(config.settings),
        now,
      ],
    );
  }

  async release(instanceId: string, generation: number | null, now: number): Promise<void> {
    // Beside the instance's other generations too, for its health (health.ts).
    await this.sql.run('UPDATE instances SET released_generation = ? WHERE instance_id = ?', [generation, instanceId]);
    if (generation === null) await this.sql.run('DELETE FROM instance_releases WHERE instance_id = ?', [instanceId]);
    else
      await this.sql.run(
        `INSERT INTO instance_releases (instance_id, generation, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (instance_id) DO UPDATE SET generation = excluded.generation, updated_at = excluded.updated_at`,
        [instanceId, generation, now],
      );
  }

  /** The released configs: of the instances named (one statement per ID_CHUNK of them), or of every pinned instance. */
  async releasedConfigs(instanceIds?: readonly string[]): Promise<InstanceConfig[]> {
    const select = `SELECT c.instance_id, c.generation, c.assignment, c.settings FROM instance_releases r
       JOIN instance_configs c ON c.instance_id = r.instance_id AND c.generation = r.generation`;
    if (instanceIds === undefined) return (await this.sql.all<ConfigRow>(select)).map(toConfig);
    const rows = await inChunks(instanceIds, (ids) => this.sql.all<ConfigRow>(`${select} WHERE r.instance_id IN (${marks(ids)})`, ids));
    return rows.map(toConfig);
  }

  async assignedInstances(): Promise<InstanceRecord[]> {
    const rows = await this.sql.all<InstanceRow>('SELECT * FROM instances WHERE assignment IS NOT NULL ORDER BY instance_id');
    return rows.map(rowToInstance);
  }

  /** The generations whose config is kept for an instance, oldest first. */
  async configGenerations(instanceId: string): Promise<number[]> {
    const rows = await this.sql.all<{ generation: number | string }>(
      'SELECT generation FROM instance_configs WHERE instance_id = ? ORDER BY generation',
      [instanceId],
    );
    return rows.map((r) => Number(r.generation));
  }

  /**
   * Deletes the per-generation configs nothing can serve any more: all but
   * each instance's newest, the one released to it, the one it applied, and
   * those of rollouts under way (their hosts' old and new generations: a
   * pending host keeps its old one, an abort rolls back to it). The number
   * deleted.
   */
  async pruneConfigs(): Promise<number> {
    const held = new Set<string>();
    const underWay = await this.sql.all<RolloutRow>(`SELECT body, revision FROM rollouts WHERE state IN ${UNDER_WAY}`);
    for (const row of underWay)
      for (const h of toStored(row).rollout.hosts) {
        held.add(`${h.instanceId}\n${h.fromGeneration}`);
        held.add(`${h.instanceId}\n${h.toGeneration}`);
      }
    const candidates = await this.sql.all<{ instance_id: string; generation: number | string }>(
      `SELECT c.instance_id, c.generation FROM instance_configs c
       WHERE c.generation < (SELECT MAX(n.generation) FROM instance_configs n WHERE n.instance_id = c.instance_id)
         AND NOT EXISTS (SELECT 1 FROM instance_releases r WHERE r.instance_id = c.instance_id AND r.generation = c.generation)
         AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = c.instance_id AND i.applied_generation = c.generation)`,
    );
    let deleted = 0;
    for (const c of candidates) {
      if (held.has(`${c.instance_id}\n${Number(c.generation)}`)) continue;
      deleted += await this.sql.run('DELETE FROM instance_configs WHERE instance_id = ? AND generation = ?', [c.instance_id, c.generation]);
    }
    return deleted;
  }

  /** Forgets an instance's configs and release (it was deleted). */
  async forget(instanceId: string): Promise<void> {
    await this.sql.run('DELETE FROM instance_releases WHERE instance_id = ?', [instanceId]);
    await this.sql.run('DELETE FROM instance_configs WHERE instance_id = ?', [instanceId]);
  }
}

function decodeCursor(cursor: string): [number, string] {
  const dot = cursor.indexOf('.');
  const at = Number(cursor.slice(0, dot));
  if (dot < 1 || !Number.isSafeInteger(at))
    throw new InputError('before', `"${cursor}" is not a cursor; give the "next" of the previous page`);
  return [at, cursor.slice(dot + 1)];
}
