// A release's secret settings (`changelens deploy --secret KEY=VALUE`, a deploy request's
// `secrets`): sealed by the proxy the moment they arrive (AES-256-GCM, a key derived from the
// appliance's backup key, which the supervisor and the proxy hold and a release never does), kept
// sealed everywhere — Postgres, the routing snapshot, the releases and deployments APIs, audit,
// logs — and opened only by the supervisor as it starts the colour that needs them.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

export const SEALED_PREFIX = 'clsecret:v1:';

export function releaseSecretsKey(backupKey: string): Buffer {
  return createHmac('sha256', backupKey).update('changelens release secrets v1').digest();
}

/**
 * Deterministic: the IV is a keyed hash of the value, so the same value seals the same (a release
 * deployed again with the same secrets is the same release) and two values never share an IV.
 */
export function sealSecret(key: Buffer, value: string): string {
  const iv = createHmac('sha256', key).update('iv\0').update(value, 'utf8').digest().subarray(0, 12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return SEALED_PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The env with every sealed value opened; an error naming the key when one cannot be (another key, altered). */
export function unsealEnv(key: Buffer, env: Readonly<Record<string, string>>): { env: Record<string, string> } | { error: string } {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!value.startsWith(SEALED_PREFIX)) {
      out[name] = value;
      continue;
    }
    try {
      const raw = Buffer.from(value.slice(SEALED_PREFIX.length), 'base64url');
      if (raw.length < 12 + 16) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      out[name] = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      return { error: `${name}: a sealed secret this appliance cannot open (sealed with another backup key, or altered)` };
    }
  }
  return { env: out };
}
