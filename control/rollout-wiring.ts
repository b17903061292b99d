// The rollout engine (control/rollout) wired to the store and the agents:
// a change is planned over the hosts whose files it alters, saved with its
// rollout in one transaction, and released per the engine; the engine is
// advanced with the agents' reports (read from the store) after each report
// of a host it waits for and on a timer. An agent is served the generation
// released to it (servedState), never the newest before its turn.
// docs/ROLLOUTS.md describes the behaviour.
import { randomUUID } from 'node:crypto';
import type { Assignment, ClusterSettings, InstanceIdentity } from '../contract/model';
import { CONTROL_ONLY_SETTINGS, type RolloutStrategy } from '../contract/settings';
import type { Logger } from '../contract/log';
import { batched, coalesced } from './coalesce';
import { ConflictError, NotFoundError, StoreUnavailableError, VersionConflictError } from './errors';
import { validateClusterSettings } from './validation';
import {
  abort,
  admitBooted,
  advance,
  isFinished,
  pause,
  planRollout,
  progressOf,
  renderRolloutFiles,
  resume,
  RolloutStateError,
  supersede,
  type HostReport,
  type PlanHost,
  type Release,
  type Rollout,
  type RolloutEvent,
  type RolloutFile,
  type RolloutHost,
  type RolloutUndo,
  type Step,
  type Timeouts,
} from './rollout';
import type { ChangeWrite, InstanceConfig, StoredRollout } from './store/rollouts';
import type { InstanceRecord, Store } from './store/store';

export interface RolloutWiringOptions {
  store: Store;
  now: () => number;
  /** Tells the agent of `instanceId` that its assignment state changed. */
  notify: (instanceId: string) => void;
  timeouts: Timeouts;
  /** A host not heard from for this long is offline: it is not waited for; it gets the newest when it is back. */
  offlineAfterMs: number;
  log?: Logger;
}

/** What an operator's change is, for the rollout's "why" and the audit log. */
export interface ChangeRequest {
  actor: string;
  reason: string;
  strategy?: RolloutStrategy;
}

/** What an agent is served: a generation and the assignment and settings of it. */
export interface Served {
  generation: number;
  assignment: Assignment | null;
  settings: ClusterSettings;
}

/** Events worth an audit record (a host's release is logged only: a 1,000-host rollout would flood the audit log). */
const AUDITED: ReadonlySet<RolloutEvent['kind']> = new Set(['failed', 'skipped', 'recovered', 'halted', 'completed']);
const CONFLICT_RETRIES = 5;
/** Advances after reports are this far apart at least (a wave waits at most this much longer). */
const ADVANCE_SPACING_MS = 100;

/** A host's files, or one pseudo file with the renderer's complaint (the host is then in the rollout and its agent reports why). */
function filesOf(assignment: Assignment | null, settings: ClusterSettings, identity: InstanceIdentity): RolloutFile[] {
  if (!assignment) return [];
  try {
    return renderRolloutFiles(assignment, settings, identity);
  } catch (err) {
    return [{ path: '(cannot be rendered)', content: (err as Error).message, secret: false }];
  }
}

/** The agent's last status as the engine reads it, for a host of the rollout. */
function reportOf(record: InstanceRecord, host: RolloutHost): HostReport | undefined {
  const s = record.status;
  if (!s || (host.releasedAt !== undefined && s.reportedAt < host.releasedAt)) return undefined;
  const onNew = record.appliedGeneration === host.toGeneration;
  const state = !onNew
    ? 'applying'
    : s.teleportReady && s.state === 'ready'
      ? 'ready'
      : s.state === 'failed' || s.state === 'degraded'
        ? 'failed'
        : 'applying';
  const message = s.logTail?.length ? `${s.message}\n${s.logTail.join('\n')}` : s.message;
  return { instanceId: record.instanceId, generation: record.appliedGeneration, state, ...(message ? { message } : {}), at: s.reportedAt };
}

export class RolloutWiring {
  /** Every step of a rollout runs one at a time here; replicas are kept apart by the rollouts' revisions. */
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Hosts the active rollout waits for (applying or failed), as of the last step: a report from one advances it. */
  private awaited = new Set<string>();
  /** When a step last found the store unreachable: agents' reports were refused until then, so their silence does not count. */
  private storeLostAt: number | undefined;
  /**
   * Reports that come while an advance runs share the next one: a thousand
   * hosts reporting at once (an all-at-once rollout) make a few advances,
   * each reading every host it waits for, not a thousand; and at most one
   * every ADVANCE_SPACING_MS, so that they leave the replica to the reports.
   */
  private readonly advanceAfterReports = coalesced(async () => {
    await this.advanceActive();
    await new Promise((spaced) => setTimeout(spaced, ADVANCE_SPACING_MS));
  });
  /** The released configs asked for together (a change reaching a thousand watchers, their reports) are read together. */
  private readonly releasedConfig = batched(
    async (ids: string[]) => new Map((await this.opts.store.releasedConfigs(ids)).map((c) => [c.instanceId, c])),
  );

  constructor(private readonly opts: RolloutWiringOptions) {}

  /** Advances the active rollout every `intervalMs` (its agents' silence and time limits need a clock). */
  start(intervalMs: number): void {
    this.timer ??= setInterval(
      () =>
        void this.advanceActive().catch((err: unknown) => {
          if (err instanceof StoreUnavailableError) this.storeLostAt = this.opts.now();
          this.opts.log?.warn({ err }, 'rollout step failed');
        }),
      intervalMs,
    );
    this.timer.unref();
  }

  private get timeouts(): Timeouts {
    return this.storeLostAt === undefined ? this.opts.timeouts : { ...this.opts.timeouts, silentSince: this.storeLostAt };
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** fn again when a concurrent writer (another replica) changed what it read. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.serial(fn);
      } catch (err) {
        // A version conflict (If-Match) is the caller's to judge: the same write would conflict again.
        if (!(err instanceof ConflictError) || err instanceof VersionConflictError || attempt >= CONFLICT_RETRIES) throw err;
      }
    }
  }

  // What agents are served

  /** The generation and config `record`'s agent may apply: the released one, or the newest when none is pinned or it has applied nothing yet (booting). */
  async served(record: InstanceRecord, newestSettings: ClusterSettings): Promise<Served> {
    const newest = { generation: record.generation, assignment: record.assignment, settings: newestSettings };
    if (record.status === null) return newest;
    const pinned = await this.releasedConfig(record.instanceId);
    return pinned ? { generation: pinned.generation, assignment: pinned.assignment, settings: pinned.settings } : newest;
  }

  /** An instance enrolled with nothing applied: when the active rollout has it pending, it is released at once (docs: booting). */
  admitBooted(record: InstanceRecord): Promise<void> {
    if (record.status !== null) return Promise.resolve();
    return this.retrying(async () => {
      const active = await this.opts.store.activeRollout();
      if (!active) return;
      const step = admitBooted(active.rollout, record.instanceId, this.opts.now());
      if (step.released.length > 0) await this.saveStep(active, step, 'control');
    });
  }

  // Changes

  /**
   * A change saved with its rollout: `changed` are the hosts whose config
   * the change gives a new generation (all assigned hosts for a settings
   * change, those whose assignment it sets otherwise). Every enrolled host
   * whose served files differ from its newest ones is planned (so the
   * active rollout's hosts are taken over: supersede); hosts whose files do
   * not change are not touched. The rollout keeps what the change replaced
   * (`undo`), for an abort. Returns the new rollout, if any.
   */
  applyChange(
    change: {
      settings?: ClusterSettings;
      settingsBasedOn?: number;
      assignments?: Array<{ instanceId: string; assignment: Assignment | null }>;
    },
    request: ChangeRequest,
    audit: NonNullable<ChangeWrite['audit']>,
  ): Promise<{ rollout: Rollout | undefined; settingsVersion?: number }> {
    return this.retrying(async () => {
      const { store, now: clock } = this.opts;
      const now = clock();
      const [currentSettings, records, pins, active] = await Promise.all([
        store.getSettings(),
        store.assignedInstances(),
        store.releasedConfigs(),
        store.activeRollout(),
      ]);
      const settings = change.settings ?? currentSettings;
      const pinned = new Map(pins.map((p) => [p.instanceId, p]));
      const inActive = new Set(active?.rollout.hosts.map((h) => h.instanceId) ?? []);
      // Sorted: replicas lock the instances in one order.
      const targets = new Map(
        [...(change.assignments ?? [])].sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1)).map((a) => [a.instanceId, a.assignment]),
      );
      const byAssignment = targets.size > 0;
      const listed = new Set(records.map((r) => r.instanceId));
      for (const id of targets.keys()) {
        if (listed.has(id)) continue;
        const record = await store.getInstance(id);
        if (record) records.push(record);
      }
      const write: ChangeWrite = { generations: [], configs: [], rollouts: [], releases: [], audit: [...audit] };
      if (change.settings) write.settings = change.settings;
      if (change.settingsBasedOn !== undefined) write.settingsBasedOn = change.settingsBasedOn;
      if (byAssignment) write.assignments = [...targets].map(([instanceId, assignment]) => ({ instanceId, assignment }));
      const planHosts: PlanHost[] = [];
      const bumped: string[] = [];
      /** Hosts the change takes out of any rollout (unassigned, offline): the active one must not release them later. */
      const leaving = new Set<string>();
      for (const record of records) {
        const changedByThis = byAssignment ? targets.has(record.instanceId) : record.assignment !== null;
        const assignment = targets.has(record.instanceId) ? targets.get(record.instanceId)! : record.assignment;
        // The assignment write bumps its instance's generation itself.
        const nextGeneration = changedByThis ? record.generation + 1 : record.generation;
        if (!record.identity || record.status === null || !assignment || this.isOffline(record, now)) {
          // Nothing running to break (never enrolled, booting, offline: a terminated instance
          // must not halt every rollout) or nothing to run: the newest at once.
          if (changedByThis) {
            if (!byAssignment) write.generations!.push({ instanceId: record.instanceId, generation: nextGeneration });
            write.releases!.push({ instanceId: record.instanceId, generation: null });
            bumped.push(record.instanceId);
            if (inActive.has(record.instanceId)) leaving.add(record.instanceId);
          }
          continue;
        }
        if (!changedByThis && !inActive.has(record.instanceId)) continue;
        const pin = pinned.get(record.instanceId);
        const current: InstanceConfig = pin ?? {
          instanceId: record.instanceId,
          generation: record.generation,
          assignment: record.assignment,
          settings: currentSettings,
        };
        const next: InstanceConfig = { instanceId: record.instanceId, generation: nextGeneration, assignment, settings };
        const identity = record.identity;
        const before = filesOf(current.assignment, current.settings, identity);
        const after = filesOf(next.assignment, next.settings, identity);
        if (JSON.stringify(before) === JSON.stringify(after)) {
          // Same files: no rollout, no restart. A setting the agent reads itself (driftRepair...) still reaches it.
          if (changedByThis && agentSettingsDiffer(current.settings, next.settings)) {
            if (!byAssignment) write.generations!.push({ instanceId: record.instanceId, generation: nextGeneration });
            write.configs!.push(next);
            if (pin || inActive.has(record.instanceId)) write.releases!.push({ instanceId: record.instanceId, generation: nextGeneration });
            bumped.push(record.instanceId);
          }
          continue;
        }
        planHosts.push({
          host: { instanceId: record.instanceId, hostname: identity.hostname, privateIp: identity.privateIp },
          services: assignment.roles,
          current: { generation: current.generation, files: before },
          next: { generation: next.generation, files: after },
        });
        if (changedByThis) {
          if (!byAssignment) write.generations!.push({ instanceId: record.instanceId, generation: nextGeneration });
          write.configs!.push(next);
        }
        // Until the rollout reaches it, the host keeps what it has: pinned to it.
        if (!pin) {
          write.configs!.push(current);
          write.releases!.push({ instanceId: record.instanceId, generation: current.generation });
        }
      }
      const planned = planRollout({
        id: randomUUID(),
        startedBy: request.actor,
        reason: request.reason,
        now,
        strategy: request.strategy,
        policy: settings.rolloutPace,
        hosts: planHosts,
      });
      const released: Release[] = [];
      let rollout: Rollout | undefined;
      const current = active && leaving.size > 0 ? withoutHosts(active.rollout, leaving, now) : active?.rollout;
      if (active && current && current !== active.rollout && !planned)
        write.rollouts!.push({ rollout: current, revision: active.revision });
      if (planned) {
        let next: Rollout = { ...planned, undo: undoOf(currentSettings, change.settings, records, targets, bumped) };
        if (active && current) {
          const taken = supersede(current, next, now);
          write.rollouts!.push({ rollout: taken.superseded, revision: active.revision });
          write.audit!.push({ action: 'rollout.supersede', target: `rollout:${active.rollout.id}`, details: { by: planned.id } });
          released.push(...taken.released);
          next = taken.next;
        }
        const step = await this.advanceOnline(next, [], now, new Map(records.map((r) => [r.instanceId, r])));
        released.push(...step.released);
        rollout = step.rollout;
        write.rollouts!.push({ rollout, revision: null });
        write.audit!.push({
          action: 'rollout.start',
          target: `rollout:${rollout.id}`,
          details: { reason: rollout.reason, strategy: rollout.strategy, hosts: rollout.hosts.length, pace: rollout.pace },
        });
        if (rollout.strategy === 'all-at-once')
          write.audit!.push({
            action: 'rollout.all-at-once',
            target: `rollout:${rollout.id}`,
            details: { reason: rollout.reason, hosts: rollout.hosts.length },
          });
        for (const r of released) write.releases!.push({ instanceId: r.instanceId, generation: r.generation });
        this.awaitFrom(rollout);
      }
      const saved = await store.saveChange(write, request.actor, now);
      for (const id of new Set([...bumped, ...released.map((r) => r.instanceId)])) this.opts.notify(id);
      return { rollout, ...saved };
    });
  }

  /** Not heard from for three heartbeats (as the fleet health counts it), or its agent said it stopped or is leaving. */
  private isOffline(record: InstanceRecord, now: number): boolean {
    const state = record.status?.state as string | undefined;
    return record.lastSeenAt === null || record.lastSeenAt < now - this.opts.offlineAfterMs || state === 'stopped' || state === 'leaving';
  }

  /**
   * advance, with the hosts it would release read from the store (or from
   * `known`, records just read): those offline are skipped (advanced again
   * without them) instead of awaited.
   */
  private async advanceOnline(
    rollout: Rollout,
    reports: readonly HostReport[],
    now: number,
    known?: ReadonlyMap<string, InstanceRecord>,
  ): Promise<Step> {
    const offline = new Set<string>();
    for (;;) {
      const step = advance(rollout, reports, now, this.timeouts, offline);
      let more = false;
      for (const r of step.released) {
        if (offline.has(r.instanceId)) continue;
        const h = rollout.hosts.find((x) => x.instanceId === r.instanceId);
        if (h?.state !== 'pending') continue;
        const record = known?.get(r.instanceId) ?? (await this.opts.store.getInstance(r.instanceId));
        if (!record || this.isOffline(record, now)) {
          offline.add(r.instanceId);
          more = true;
        }
      }
      if (!more) return step;
    }
  }

  /** A deleted instance leaves the active rollout (it would be awaited, or released, for nothing). */
  forget(instanceId: string): Promise<void> {
    return this.retrying(async () => {
      const active = await this.opts.store.activeRollout();
      if (!active?.rollout.hosts.some((h) => h.instanceId === instanceId)) return;
      const trimmed = withoutHosts(active.rollout, new Set([instanceId]), this.opts.now());
      await this.opts.store.saveChange({ rollouts: [{ rollout: trimmed, revision: active.revision }] }, 'control', this.opts.now());
    });
  }

  // Steps

  /** Advances the active rollout with its hosts' last reports; saves and tells the released agents. */
  advanceActive(): Promise<void> {
    return this.retrying(async () => {
      const active = await this.opts.store.activeRollout();
      if (!active) return void this.awaited.clear();
      // The hosts it waits for, in one read.
      const waitedFor = active.rollout.hosts.filter((h) => h.state === 'applying' || h.state === 'failed');
      const records = new Map((await this.opts.store.getInstances(waitedFor.map((h) => h.instanceId))).map((r) => [r.instanceId, r]));
      const reports: HostReport[] = [];
      for (const h of waitedFor) {
        const record = records.get(h.instanceId);
        const report = record && reportOf(record, h);
        if (report) reports.push(report);
      }
      const step = await this.advanceOnline(active.rollout, reports, this.opts.now());
      this.awaitFrom(step.rollout);
      if (step.events.length > 0) await this.saveStep(active, step, 'control');
    });
  }

  /** After a status report: a host the active rollout waits for advances it at once. */
  reported(instanceId: string): void {
    if (this.awaited.has(instanceId))
      void this.advanceAfterReports().catch((err: unknown) => this.opts.log?.warn({ err }, 'rollout step failed'));
  }

  private awaitFrom(rollout: Rollout): void {
    this.awaited = isFinished(rollout)
      ? new Set()
      : new Set(rollout.hosts.filter((h) => h.state === 'applying' || h.state === 'failed').map((h) => h.instanceId));
  }

  private async saveStep(before: StoredRollout, step: Step, actor: string, extra: ChangeWrite = {}): Promise<void> {
    const audit = step.events
      .filter((e) => AUDITED.has(e.kind))
      .map((e) => ({
        action: `rollout.${e.kind}`,
        target: `rollout:${e.rolloutId}`,
        details: { ...(e.instanceId ? { instanceId: e.instanceId } : {}), message: e.message },
      }));
    for (const e of step.events) this.opts.log?.info({ rollout: e.rolloutId, instanceId: e.instanceId, event: e.kind }, e.message);
    await this.opts.store.saveChange(
      {
        ...extra,
        rollouts: [{ rollout: step.rollout, revision: before.revision }, ...(extra.rollouts ?? [])],
        releases: [...(extra.releases ?? []), ...step.released.map((r) => ({ instanceId: r.instanceId, generation: r.generation }))],
        audit: [...audit, ...(extra.audit ?? [])],
      },
      actor,
      this.opts.now(),
    );
    const told = [...step.released.map((r) => r.instanceId), ...(extra.releases ?? []).map((r) => r.instanceId)];
    for (const id of new Set(told)) this.opts.notify(id);
  }

  /**
   * What an abort writes to put the change back, in its transaction: the
   * settings fields it changed (unless changed again since, the value
   * before), each assignment it set (unless set again since), and a new
   * generation, served unpinned, for each host it changed outside the
   * rollout (they then get the restored config; the hosts it reached go
   * back to their generation before it through the rollback).
   */
  private async restoreOf(rollout: Rollout): Promise<ChangeWrite> {
    const { store } = this.opts;
    const undo = rollout.undo;
    const write: Required<Pick<ChangeWrite, 'assignments' | 'generations' | 'releases' | 'audit'>> & ChangeWrite = {
      assignments: [],
      generations: [],
      releases: [],
      audit: [],
    };
    if (!undo) return write;
    if (undo.settings && undo.settings.keys.length > 0) {
      const current = await store.getSettings();
      const restored = { ...current } as Record<string, unknown>;
      for (const k of undo.settings.keys) {
        if (k in undo.settings.before) restored[k] = undo.settings.before[k];
        else delete restored[k];
      }
      if (JSON.stringify(restored) !== JSON.stringify(current)) {
        try {
          validateClusterSettings(restored as unknown as ClusterSettings);
        } catch (err) {
          throw new ConflictError(
            `the settings before rollout ${rollout.id} no longer fit the settings saved since (${(err as Error).message}); change the settings instead`,
          );
        }
        write.settings = restored as unknown as ClusterSettings;
        write.audit.push({
          action: 'settings.restore',
          target: 'settings',
          details: { before: current, after: restored, abortOf: rollout.id },
        });
      }
    }
    const restoredIds = new Set<string>();
    for (const a of undo.assignments ?? []) {
      const record = await store.getInstance(a.instanceId);
      if (!record || JSON.stringify(record.assignment) !== JSON.stringify(a.after)) continue;
      write.assignments.push({ instanceId: a.instanceId, assignment: a.before });
      write.audit.push({
        action: 'assignment.restore',
        target: a.instanceId,
        details: { before: a.after, after: a.before, abortOf: rollout.id },
      });
      restoredIds.add(a.instanceId);
    }
    // A host of the rollout itself goes back through the rollback (or keeps its pin while pending).
    const inRollout = new Set(rollout.hosts.map((h) => h.instanceId));
    for (const id of undo.outside ?? []) {
      if (restoredIds.has(id) || inRollout.has(id)) continue;
      const record = await store.getInstance(id);
      if (!record?.assignment) continue;
      write.generations.push({ instanceId: id, generation: record.generation + 1 });
      write.releases.push({ instanceId: id, generation: null });
    }
    // A host whose assignment is put back is served the newest (the write raises its generation)
    // unless a rollout holds it: the rollback, or the pin it kept while pending.
    write.assignments.sort((x, y) => (x.instanceId < y.instanceId ? -1 : 1));
    return write;
  }

  // The operator's operations

  private async stored(id: string): Promise<StoredRollout> {
    const found = await this.opts.store.getRollout(id);
    if (!found) throw new NotFoundError(`rollout ${id} not found; GET /v1/rollouts lists them`);
    return found;
  }

  /** 409 with what to do when the rollout's state does not allow the operation. */
  private operate(id: string, actor: string, fn: (r: StoredRollout) => Promise<void>): Promise<Rollout> {
    return this.retrying(async () => {
      const found = await this.stored(id);
      try {
        await fn(found);
      } catch (err) {
        if (!(err instanceof RolloutStateError)) throw err;
        throw new ConflictError(`${err.message}; ${hint(err.state)}`);
      }
      this.opts.log?.info({ rollout: id, actor }, 'rollout operation');
      return (await this.stored(id)).rollout;
    }).then(async (r) => {
      await this.advanceActive();
      return r;
    });
  }

  pause(id: string, actor: string): Promise<Rollout> {
    return this.operate(id, actor, (found) =>
      this.saveStep(found, pause(found.rollout, actor, this.opts.now()), actor, {
        audit: [{ action: 'rollout.pause', target: `rollout:${id}`, details: {} }],
      }),
    );
  }

  resume(id: string, actor: string): Promise<Rollout> {
    return this.operate(id, actor, (found) =>
      this.saveStep(found, resume(found.rollout, actor, this.opts.now()), actor, {
        audit: [{ action: 'rollout.resume', target: `rollout:${id}`, details: {} }],
      }),
    );
  }

  /**
   * Aborts; its rollback (a rollout of its own) is returned in `rollback`
   * when the rollout reached hosts. What the change stored is put back in
   * the same transaction (restoreOf).
   */
  abort(id: string, actor: string, strategy?: RolloutStrategy): Promise<Rollout> {
    return this.operate(id, actor, async (found) => {
      const now = this.opts.now();
      const out = abort(found.rollout, { by: actor, now, rollbackId: randomUUID(), ...(strategy ? { strategy } : {}) });
      const restore = await this.restoreOf(found.rollout);
      const audit = [{ action: 'rollout.abort', target: `rollout:${id}`, details: { rollback: out.rollback?.id ?? null } }];
      await this.saveStep(found, { rollout: out.aborted, released: out.released, events: out.events }, actor, {
        ...restore,
        rollouts: out.rollback ? [{ rollout: out.rollback, revision: null }] : [],
        audit: [...audit, ...(restore.audit ?? [])],
      });
      for (const a of restore.assignments ?? []) this.opts.notify(a.instanceId);
    });
  }

  async get(id: string): Promise<ReturnType<typeof progressOf>> {
    return progressOf((await this.stored(id)).rollout);
  }
}

/** Whether the settings an agent is given (all but the control-only ones) differ. */
function agentSettingsDiffer(a: ClusterSettings, b: ClusterSettings): boolean {
  const agentPart = (s: ClusterSettings) =>
    JSON.stringify(
      Object.entries(s)
        .filter(([k]) => !(CONTROL_ONLY_SETTINGS as readonly string[]).includes(k))
        .sort(([x], [y]) => (x < y ? -1 : 1)),
    );
  return agentPart(a) !== agentPart(b);
}

/**
 * What a change replaced, for an abort: the settings fields it changed with
 * their values before, the assignments it set, and the hosts it gave a new
 * generation outside the rollout.
 */
function undoOf(
  before: ClusterSettings,
  after: ClusterSettings | undefined,
  records: readonly InstanceRecord[],
  targets: ReadonlyMap<string, Assignment | null>,
  bumped: readonly string[],
): RolloutUndo {
  const undo: RolloutUndo = {};
  if (after) {
    const old = before as unknown as Record<string, unknown>;
    const now = after as unknown as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(old), ...Object.keys(now)])].filter((k) => JSON.stringify(old[k]) !== JSON.stringify(now[k]));
    undo.settings = { keys, before: Object.fromEntries(keys.filter((k) => k in old).map((k) => [k, old[k]])) };
  }
  if (targets.size > 0)
    undo.assignments = records
      .filter((r) => targets.has(r.instanceId))
      .map((r) => ({ instanceId: r.instanceId, before: r.assignment, after: targets.get(r.instanceId)! }));
  const outside = bumped.filter((id) => !targets.has(id));
  if (outside.length > 0) undo.outside = outside;
  return undo;
}

/** `rollout` without `ids`: hosts that left it (unassigned, offline, deleted); the engine completes it when none is left. */
function withoutHosts(rollout: Rollout, ids: ReadonlySet<string>, now: number): Rollout {
  return { ...rollout, hosts: rollout.hosts.filter((h) => !ids.has(h.instanceId)), updatedAt: now };
}

function hint(state: Rollout['state']): string {
  switch (state) {
    case 'running':
      return 'pause or abort it';
    case 'paused':
      return 'resume or abort it';
    case 'halted':
      return 'resume it (its failed hosts are tried again) or abort it (the hosts it reached are rolled back)';
    default:
      return 'it is finished; a new change starts a new rollout';
  }
}
