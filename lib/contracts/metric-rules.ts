// Rules on an app's own quality metric, reported per response in an x-changelens-metric-<name>
// header (the canary seed's recall@10 ≥ 0.30): their text form, shared by the config and the admin
// API, and what the judge checks (monitoring/judge.ts).

export interface MetricRule {
  /** The header's suffix: x-changelens-metric-<name>. */
  name: string;
  op: '>=' | '<=';
  threshold: number;
}

/** "recall_at_10>=0.30,quality<=2": the form of CHANGELENS_METRIC_RULES and a deploy's metricRules. */
export function parseMetricRules(text: string): MetricRule[] | { error: string } {
  const rules: MetricRule[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z0-9_]{1,40})\s*(>=|<=)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)$/i.exec(part);
    if (!m) return { error: `"${part}": expected name>=number or name<=number, name of a-z, 0-9 and _` };
    const name = m[1]!.toLowerCase();
    if (rules.some((r) => r.name === name && r.op === m[2])) return { error: `"${part}": a second ${m[2]} rule for ${name}` };
    rules.push({ name, op: m[2] as MetricRule['op'], threshold: Number(m[3]) });
  }
  return rules;
}
