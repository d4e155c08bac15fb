// Doctor against every gateway failure of the rollout guide and every store failure: the right
// verdict and fix in text and JSON, and the key nowhere in anything printed.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closedPort } from '../support/fault-proxy.ts';
import { check, KEY, startMachine, awsProfile, type Machine } from './setup.ts';
import { fingerprint } from '../../src/secret/value.ts';

let machine: Machine;
beforeAll(async () => {
  machine = await startMachine();
});
afterAll(async () => {
  await machine?.stop();
});

/** Runs doctor twice (text, then JSON) and returns both. */
async function doctor(args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}, replaceEnv?: NodeJS.ProcessEnv) {
  const text = await machine.run(['doctor', ...args], extraEnv, replaceEnv ? { replaceEnv } : {});
  const { result, report } = await machine.doctorJson(args, extraEnv, replaceEnv);
  expect(result.code).toBe(text.code);
  return { text: text.stdout, code: text.code, report };
}

function lineOf(text: string, title: string): string {
  const line = text.split('\n').find((entry) => entry.includes(`] ${title}: `));
  if (!line) throw new Error(`no "${title}" line in:\n${text}`);
  return line;
}

describe('doctor on a healthy machine', () => {
  test('passes every check and exits 0', async () => {
    const before = machine.gateway.log.length;
    const { text, code, report } = await doctor();
    const keyed = machine.gateway.log.slice(before).filter((entry) => entry.path.startsWith('/v1/'));
    // The key travels as Claude Code sends it: x-api-key and Authorization: Bearer.
    expect(keyed.length).toBeGreaterThan(0);
    expect(keyed.every((entry) => entry.xApiKey === KEY && entry.bearer === KEY)).toBe(true);
    expect(report.checks.filter((entry) => entry.verdict === 'FAIL')).toEqual([]);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(check(report, 'store.identity').finding).toMatch(/arn:aws/);
    expect(check(report, 'store.value').finding).toContain(fingerprint(KEY));
    expect(check(report, 'gateway.streaming').verdict).toBe('OK');
    expect(check(report, 'gateway.streaming').finding).toMatch(/arrived incrementally/);
    expect(text.split('\n')[0]).toMatch(/^\[ OK \] configuration: profile "default"/);
    expect(text).toMatch(/doctor: all good|doctor: no failures/);
  });
});

describe('doctor against each gateway failure', () => {
  test('a rejected key: FAIL naming the key by fingerprint, exit 10', async () => {
    machine.gateway.acceptKeys(['sk-test-some-other-key']);
    try {
      const { text, code, report } = await doctor();
      const models = check(report, 'gateway.models');
      expect(models.verdict).toBe('FAIL');
      expect(models.finding).toContain(`rejected key ${fingerprint(KEY)}`);
      expect(models.finding).toContain('authentication_error: invalid x-api-key');
      expect(models.fix).toMatch(/gateway admin/);
      expect(lineOf(text, 'gateway models')).toMatch(/^\[FAIL\].*rejected key sha256:/);
      expect(code).toBe(10);
    } finally {
      machine.gateway.acceptKeys([KEY]);
    }
  });

  test('a model that is not routed: FAIL for that model only', async () => {
    machine.gateway.routeModels(['claude-haiku-4-5']);
    try {
      const { text, report } = await doctor(['--model', 'claude-haiku-4-5', '--model', 'claude-opus-4-1']);
      expect(check(report, 'gateway.message.1').verdict).toBe('OK');
      const unrouted = check(report, 'gateway.message.2');
      expect(unrouted.verdict).toBe('FAIL');
      expect(unrouted.finding).toMatch(/claude-opus-4-1 is not routed by the gateway \(404: not_found_error: model: claude-opus-4-1\)/);
      expect(unrouted.fix).toMatch(/route claude-opus-4-1/);
      expect(lineOf(text, 'gateway message to claude-opus-4-1')).toMatch(/^\[FAIL\]/);
    } finally {
      machine.gateway.routeModels('any');
    }
  });

  test('a buffering gateway: FAIL on streaming, with the timing', async () => {
    machine.gateway.setFault('buffered-stream');
    try {
      const { text, report } = await doctor();
      const stream = check(report, 'gateway.streaming');
      expect(stream.verdict).toBe('FAIL');
      expect(stream.finding).toMatch(/all at once, so the gateway or a proxy buffers/);
      // The verdict above is the check; the fake holds every event ~0.5 s, then sends them in one write.
      expect(stream.details?.['firstEventMs']).toBeGreaterThan(300);
      expect(check(report, 'gateway.message').verdict).toBe('OK');
      expect(lineOf(text, 'gateway streaming')).toMatch(/^\[FAIL\].*buffer/);
    } finally {
      machine.gateway.setFault('none');
    }
  });

  test('a redirect: FAIL reporting where to, and nothing followed', async () => {
    machine.gateway.setFault('redirect');
    try {
      const before = machine.gateway.log.length;
      const { text, report } = await doctor();
      const models = check(report, 'gateway.models');
      expect(models.verdict).toBe('FAIL');
      expect(models.finding).toMatch(/307 redirect to https:\/\/login\.example\.invalid\/v1\/models/);
      expect(lineOf(text, 'gateway models')).toMatch(/^\[FAIL\].*redirect/);
      // Only the gateway itself was asked: the fake logs every request it gets.
      expect(machine.gateway.log.length).toBeGreaterThan(before);
    } finally {
      machine.gateway.setFault('none');
    }
  });

  test('a WAF answering 403 with HTML: FAIL naming the firewall', async () => {
    machine.gateway.setFault('waf');
    try {
      const { text, report } = await doctor();
      const models = check(report, 'gateway.models');
      expect(models.verdict).toBe('FAIL');
      expect(models.finding).toMatch(/403 with an HTML page \("403 Forbidden"\): a web application firewall/);
      expect(models.finding).toContain('Request blocked by WAF');
      expect(lineOf(text, 'gateway models')).toMatch(/^\[FAIL\].*firewall/);
    } finally {
      machine.gateway.setFault('none');
    }
  });

  test('a gateway that is down: FAIL unreachable, later gateway checks skipped', async () => {
    const port = await closedPort();
    const { text, report } = await doctor([], { ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}` });
    const reachable = check(report, 'gateway.reachable');
    expect(reachable.verdict).toBe('FAIL');
    expect(reachable.finding).toMatch(/cannot reach the gateway .*connection refused/);
    expect(check(report, 'gateway.models').verdict).toBe('SKIP');
    expect(check(report, 'gateway.message').verdict).toBe('SKIP');
    expect(check(report, 'gateway.streaming').verdict).toBe('SKIP');
    expect(lineOf(text, 'gateway reachable')).toMatch(/^\[FAIL\].*cannot reach/);
  });

  test('a server error is shown as the gateway returned it', async () => {
    machine.gateway.setFault('server-error');
    try {
      const { report } = await doctor();
      expect(check(report, 'gateway.models').finding).toMatch(/500 from the gateway \(api_error: Internal server error\)/);
    } finally {
      machine.gateway.setFault('none');
    }
  });

  test('plain http to another host is a failure, and the key is not sent (test/doctor/gateway-trust.test.ts shows it)', async () => {
    const { report } = await doctor(['--gateway', 'http://gateway.example.invalid:1']);
    expect(check(report, 'gateway.url').verdict).toBe('FAIL');
    expect(check(report, 'gateway.url').finding).toMatch(/plain HTTP to another machine/);
    expect(check(report, 'gateway.models').verdict).toBe('SKIP');
  });
});

describe('doctor against each store failure', () => {
  test('not logged in: FAIL with the login command, later store checks skipped', async () => {
    const env = {
      ...machine.env,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_CONFIG_FILE: '/nonexistent/config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    };
    const { text, code, report } = await doctor([], {}, env);
    const identity = check(report, 'store.identity');
    expect(identity.verdict).toBe('FAIL');
    expect(identity.finding).toMatch(/not logged in to AWS/);
    expect(identity.fix).toMatch(/aws sso login|aws configure/);
    expect(check(report, 'store.read').verdict).toBe('SKIP');
    expect(lineOf(text, 'store identity')).toMatch(/^\[FAIL\].*not logged in.*-> run 'aws sso login/);
    expect(code).toBe(4);
  });

  test('the secret does not exist: FAIL naming it, with the admin fix', async () => {
    machine.writeConfig({ ...awsProfile(machine.moto.endpoint), secret: 'claude-code/keys/nobody' });
    try {
      const { text, code, report } = await doctor();
      expect(check(report, 'store.identity').verdict).toBe('OK');
      const read = check(report, 'store.read');
      expect(read.verdict).toBe('FAIL');
      expect(read.finding).toMatch(/secret "claude-code\/keys\/nobody" .* does not exist/);
      expect(read.fix).toMatch(/keybroker admin put/);
      expect(lineOf(text, 'secret readable')).toMatch(/^\[FAIL\]/);
      expect(code).toBe(5);
    } finally {
      machine.writeConfig(awsProfile(machine.moto.endpoint));
    }
  });

  test('the store is unreachable: FAIL within the bound, later store checks skipped', async () => {
    const port = await closedPort();
    machine.writeConfig(awsProfile(`http://127.0.0.1:${port}`));
    try {
      const { text, code, report } = await doctor();
      const identity = check(report, 'store.identity');
      expect(identity.verdict).toBe('FAIL');
      expect(identity.finding).toMatch(/cannot reach|did not answer|unavailable/);
      expect(identity.fix).toMatch(/network|VPN|try again/);
      expect(check(report, 'store.read').verdict).toBe('SKIP');
      expect(lineOf(text, 'store identity')).toMatch(/^\[FAIL\]/);
      expect(code).toBe(7);
    } finally {
      machine.writeConfig(awsProfile(machine.moto.endpoint));
    }
  });

  test('an unusable value: FAIL naming the problem, never the value', async () => {
    await machine.moto.aws([
      'secretsmanager',
      'create-secret',
      '--name',
      'claude-code/keys/broken',
      '--secret-string',
      'sk-test-has a-space',
    ]);
    machine.writeConfig({ ...awsProfile(machine.moto.endpoint), secret: 'claude-code/keys/broken' });
    try {
      const { report } = await doctor();
      const value = check(report, 'store.value');
      expect(value.verdict).toBe('FAIL');
      expect(value.finding).toMatch(/space at position 12/);
      expect(JSON.stringify(report)).not.toContain('has a-space');
    } finally {
      machine.writeConfig(awsProfile(machine.moto.endpoint));
    }
  });
});

describe('the key', () => {
  test('appears in nothing doctor printed, verbose runs included', async () => {
    await machine.run(['doctor', '--verbose']);
    await machine.run(['doctor', '--json'], { KEYBROKER_DEBUG: '1' });
    const all = machine.transcript.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    expect(all).toContain(fingerprint(KEY));
    expect(all).not.toContain(KEY);
    expect(all).not.toContain(KEY.slice(8, 30));
  });
});
