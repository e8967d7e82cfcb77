// Retention's promises, as properties over random backup histories: the newest `keep` of each kind
// stay, the newest of each kind stays whatever its age, nothing is deleted without a reason, and a
// second pass over what is left deletes nothing more.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backupsToDelete, type BackupKind, type RetainedBackup } from './retention.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 29);

const historyArb = fc.array(
  fc.record({ ageMs: fc.integer({ min: 0, max: 90 * DAY }), kinds: fc.constantFrom<BackupKind[]>(['postgres'], ['redis'], ['postgres', 'redis']) }),
  { maxLength: 40 },
).map((items) => items.map((b, i): RetainedBackup => ({ id: `b${String(i).padStart(2, '0')}`, at: NOW - b.ageMs, kinds: b.kinds })));
const policyArb = fc.record({ keep: fc.integer({ min: 1, max: 10 }), maxAgeDays: fc.integer({ min: 0, max: 60 }) });

const newestFirst = (bs: readonly RetainedBackup[], kind: BackupKind): RetainedBackup[] =>
  bs.filter((b) => b.kinds.includes(kind)).sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1));

describe('backupsToDelete', () => {
  it('keeps the newest `keep` of each kind unless older than the age limit, and always the newest of each kind', () => {
    fc.assert(fc.property(historyArb, policyArb, (history, policy) => {
      const doomed = new Set(backupsToDelete(history, policy, NOW));
      for (const kind of ['postgres', 'redis'] as const) {
        const ofKind = newestFirst(history, kind);
        if (ofKind[0]) expect(doomed.has(ofKind[0].id)).toBe(false);
        for (const b of ofKind.slice(0, policy.keep)) {
          const tooOld = policy.maxAgeDays > 0 && NOW - b.at > policy.maxAgeDays * DAY;
          if (!tooOld) expect(doomed.has(b.id)).toBe(false);
        }
      }
    }));
  });

  it('deletes a backup only when every kind it holds has `keep` newer ones, or it is past the age limit', () => {
    fc.assert(fc.property(historyArb, policyArb, (history, policy) => {
      for (const id of backupsToDelete(history, policy, NOW)) {
        const b = history.find((x) => x.id === id)!;
        const tooOld = policy.maxAgeDays > 0 && NOW - b.at > policy.maxAgeDays * DAY;
        const beyondKeep = b.kinds.every((k) => newestFirst(history, k).findIndex((x) => x.id === id) >= policy.keep);
        expect(tooOld || beyondKeep).toBe(true);
      }
    }));
  });

  it('is settled after one pass: applied to what is left, it deletes nothing', () => {
    fc.assert(fc.property(historyArb, policyArb, (history, policy) => {
      const doomed = new Set(backupsToDelete(history, policy, NOW));
      const left = history.filter((b) => !doomed.has(b.id));
      expect(backupsToDelete(left, policy, NOW)).toEqual([]);
    }));
  });

  it('an example: keep 2, 30 days', () => {
    const b = (id: string, days: number, kinds: BackupKind[]): RetainedBackup => ({ id, at: NOW - days * DAY, kinds });
    const history = [b('full-40d', 40, ['postgres', 'redis']), b('pg-3d', 3, ['postgres']), b('pg-2d', 2, ['postgres']), b('pg-1d', 1, ['postgres']), b('redis-5d', 5, ['redis'])];
    // Postgres keeps pg-1d and pg-2d; Redis keeps redis-5d and full-40d — but full-40d is past 30 days.
    expect(backupsToDelete(history, { keep: 2, maxAgeDays: 30 }, NOW)).toEqual(['full-40d', 'pg-3d']);
    // Without an age limit, full-40d is still one of Redis's newest two.
    expect(backupsToDelete(history, { keep: 2, maxAgeDays: 0 }, NOW)).toEqual(['pg-3d']);
  });
});
