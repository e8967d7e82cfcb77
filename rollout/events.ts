// What a rollout tells the outside: the audit log (through the store), the operator's hooks
// (webhooks and a command, each outcome audited), chat notifications (notifications.ts, each final
// outcome audited), and the Prometheus gauges.
import type { Color } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { fireHooks, type HookEventType, type HookOptions } from './hooks.js';
import type { Deployment } from './model.js';
import type { NoticeEvent, Notifier } from './notifications.js';
import type { RolloutGauges, RolloutStore } from './ports.js';

export class RolloutEvents {
  constructor(private readonly o: { store: RolloutStore; hooks: HookOptions; notifier?: Notifier | undefined; log: Logger; gauges: RolloutGauges | undefined; now: () => number }) {}

  async audit(type: string, d: Deployment, actor: string, details: Record<string, unknown>, success = true, error: string | null = null): Promise<void> {
    await this.o.store.audit({ eventType: type, deploymentId: d.id, actor, version: d.version, details, success, error });
  }

  /**
   * A moment of the deployment told outside: chat notifications of each, the hooks of deploy,
   * promote and rollback. Never throws (nothing outside changes what happened).
   */
  async announce(type: NoticeEvent, d: Deployment): Promise<void> {
    const hook = type === 'deploy' || type === 'promote' || type === 'rollback' ? this.hooks(type, d) : Promise.resolve();
    await Promise.all([hook, this.o.notifier?.send(type, d)]);
  }

  /** Fires the hooks and audits each outcome; never throws (a hook failing changes nothing). */
  private async hooks(type: HookEventType, d: Deployment): Promise<void> {
    const { hooks, log, store } = this.o;
    if (hooks.urls.length === 0 && !hooks.command) return;
    const outcomes = await fireHooks({ type, deploymentId: d.id, version: d.version, strategy: d.strategy, phase: d.status.phase, reason: d.status.reason, at: new Date(this.o.now()).toISOString() }, hooks);
    for (const o of outcomes) {
      if (!o.ok) log.warn({ hook: o.hook, event: type, err: o.error }, 'hook failed');
      await store.audit({ eventType: 'hook', deploymentId: d.id, actor: 'controller', version: d.version, details: { event: type, hook: o.hook, ms: o.ms }, success: o.ok, error: o.error ?? null }).catch(() => {});
    }
  }

  /** The gauges of the rollout now (none running: nulls). */
  publish(d: Deployment | null, candidateWeight: number, activeColor: Color): void {
    this.o.gauges?.setRollout({ deploymentId: d?.id ?? null, phase: d?.status.phase ?? null, candidateColor: d?.candidateColor ?? null, candidateWeight, activeColor });
  }

  countRollback(trigger: string): void {
    this.o.gauges?.countRollback(trigger);
  }
}
