// docs/configuration.md, rendered from the config schema itself so the two never drift
// (`npm run docs:config` writes it; a test checks it is up to date).
import { configReference } from './config.js';

export function renderConfigReference(): string {
  const rows = configReference().filter((f) => !f.internal).map((f) => {
    const fileKey = f.key === 'cloudRunService' ? '—' : `\`${f.key}\``;
    const def = f.default === undefined ? '—' : `\`${f.default}\``;
    return `| \`${f.env}\` | ${fileKey} | ${def} | ${escape(f.expected)} | ${escape(f.doc)} |`;
  });
  return [
    '# Configuration reference',
    '',
    '<!-- Generated from lib/config.ts by `npm run docs:config`; a test fails when it is out of date. -->',
    '',
    'ChangeLens reads environment variables and, optionally, a JSON file given by `--config FILE` or',
    '`CHANGELENS_CONFIG`, whose keys are the camelCase names below. The environment wins over the',
    'file; an empty variable counts as unset. Everything is validated once at start: an unknown',
    '`CHANGELENS_*` variable or file key, or a value that is not of the accepted form, stops the process',
    'before anything starts, with every problem listed by name (exit code 2). `changelens config` prints',
    'the effective configuration (secrets redacted).',
    '',
    '| env | file key | default | accepted | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

function escape(text: string): string {
  return text.replace(/\|/g, '\\|');
}
