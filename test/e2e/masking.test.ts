// No stderr path prints a key (docs/security.md): each path is fed an error that quotes a key
// through the built binary, from a store, a gateway or an identity provider that says more than
// it should, and must show it masked. Each test fails when that path's one maskSecrets call goes.
// The keys carry no vendor prefix: only the long-run rule of maskSecrets can catch them.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

/** The developer's key, as the store holds it and as a careless error quotes it. */
const KEY = 'TESTONLYq7Wm3Xk9Pz2Lr5Vt8Yb4Nc6';
/** The admin's LiteLLM master key. */
const MASTER_KEY = 'TESTONLYm4Sx8Kd2Qw6Zr9Tb3Hv7Jp5';

/** Fails when `text` holds the key or any 8 characters of it in a row. */
function expectNoPartOf(key: string, text: string): void {
  for (let at = 0; at + 8 <= key.length; at++)
    expect(text, `"${key.slice(at, at + 8)}" of the key is in:\n${text}`).not.toContain(key.slice(at, at + 8));
}

type Answer = { status: number; type?: string; body: unknown };

const STS_IDENTITY =
  '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>AIDATESTONLY</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>';

/**
 * A Secrets Manager endpoint on 127.0.0.1 that answers each operation (X-Amz-Target) as the test
 * says: AWS's JSON protocol, errors typed by x-amzn-errortype as the SDK reads them.
 */
async function startFakeSecretsManager(): Promise<{ url: string; answer(operation: string, answer: Answer): void; stop(): Promise<void> }> {
  const answers = new Map<string, Answer>();
  const server = http.createServer((request, response) => {
    let form = '';
    request.on('data', (chunk: Buffer) => (form += chunk));
    request.on('end', () => {
      // STS (who the developer or admin is) speaks the query protocol at the same endpoint.
      if (!request.headers['x-amz-target'] && form.includes('Action=GetCallerIdentity')) {
        response.writeHead(200, { 'content-type': 'text/xml' });
        return void response.end(STS_IDENTITY);
      }
      const operation =
        String(request.headers['x-amz-target'] ?? '')
          .split('.')
          .at(-1) ?? '';
      const answer = answers.get(operation) ?? {
        status: 400,
        type: 'InvalidRequestException',
        body: { __type: 'InvalidRequestException', message: `no answer for ${operation}` },
      };
      response.writeHead(answer.status, {
        'content-type': 'application/x-amz-json-1.1',
        ...(answer.type ? { 'x-amzn-errortype': answer.type } : {}),
      });
      response.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answer: (operation, answer) => void answers.set(operation, answer),
    stop: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const secretValue = (value: string): Answer => ({
  status: 200,
  body: {
    ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:claude-code/keys/dev-AbCdEf',
    Name: 'claude-code/keys/dev',
    VersionId: '11111111-2222-3333-4444-555555555555',
    VersionStages: ['AWSCURRENT'],
    SecretString: value,
    CreatedDate: 1_780_000_000,
  },
});
const awsError = (status: number, type: string, message: string): Answer => ({ status, type, body: { __type: type, message } });
/** AWS's refusal of the read, quoting what it refused (as a policy evaluation message might). */
const deniedQuotingKey = awsError(
  400,
  'AccessDeniedException',
  `User: arn:aws:sts::123456789012:assumed-role/dev/dev is not authorized to perform: secretsmanager:GetSecretValue; the value ${KEY} is not yours`,
);

let store: Awaited<ReturnType<typeof startFakeSecretsManager>>;
const homes: TestHome[] = [];
beforeAll(async () => {
  store = await startFakeSecretsManager();
});
afterAll(async () => store?.stop());
afterEach(() => {
  for (const home of homes.splice(0)) home.remove();
});
function newHome(profile: Record<string, unknown> = {}): TestHome {
  const home = makeTestHome(
    awsConfig(store.url, { user: 'os', secret: 'claude-code/keys/dev', timeout: '20s', cache: { backend: 'file' }, ...profile }),
  );
  homes.push(home);
  return home;
}

describe('get', () => {
  it('a store refusal that quotes the key: the error line masks it', async () => {
    store.answer('GetSecretValue', deniedQuotingKey);
    const result = await runBinary([], { env: newHome().env() });
    expect(result.code).toBe(6);
    expect(result.stderr).toMatch(/^keybroker: access denied to secret "claude-code\/keys\/dev"/);
    expect(result.stderr).toContain('…');
    expectNoPartOf(KEY, result.stdout + result.stderr);
  });

  it('--verbose: the debug trace of a store answer that names its version after the key masks it', async () => {
    store.answer('GetSecretValue', {
      ...secretValue('sk-test-served'),
      body: { ...(secretValue('sk-test-served').body as object), VersionId: KEY },
    });
    const result = await runBinary(['--verbose'], { env: newHome().env() });
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-served' });
    expect(result.stderr).toContain('keybroker: debug: served version … of "claude-code/keys/dev" from store');
    expectNoPartOf(KEY, result.stderr);
  });

  it("the store down with a cached key: the warning quotes the store's error, masked, and the key is served on stdout only", async () => {
    const home = newHome();
    store.answer('GetSecretValue', secretValue(KEY));
    expect(await runBinary([], { env: home.env() })).toMatchObject({ code: 0, stdout: KEY, stderr: '' });
    // The cached entry made older than refreshAfter (15 min by default): the next get asks the store.
    const cacheDir = path.join(home.dir, '.cache', 'keybroker');
    const [entry] = (fs.readdirSync(cacheDir, { recursive: true }) as string[]).filter(
      (name) => name.endsWith('.json') && fs.readFileSync(path.join(cacheDir, name), 'utf8').includes('fetchedAt'),
    );
    const file = path.join(cacheDir, entry!);
    const cached = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...cached, fetchedAt: Date.now() - 60 * 60_000 }), { mode: 0o600 });

    store.answer('GetSecretValue', awsError(500, 'InternalServiceError', `internal error while decrypting ${KEY}`));
    const result = await runBinary([], { env: home.env() });
    expect(result).toMatchObject({ code: 0, stdout: KEY });
    expect(result.stderr).toMatch(/serving the cached key/);
    expectNoPartOf(KEY, result.stderr);
  });
});

describe('doctor', () => {
  it('a store refusal that quotes a key doctor never read: its report masks it, in text and in --json', async () => {
    store.answer('GetSecretValue', deniedQuotingKey);
    const home = newHome();
    for (const args of [['doctor'], ['doctor', '--json']]) {
      const result = await runBinary(args, { env: home.env({ ANTHROPIC_BASE_URL: '' }) });
      expect(result.stdout + result.stderr).toMatch(/access denied to secret \\?"claude-code\/keys\/dev\\?"/);
      expectNoPartOf(KEY, result.stdout + result.stderr);
    }
  });
});

describe('admin', () => {
  it('import: a store write refused quoting the key is masked in the row error and in the audit line', async () => {
    store.answer('GetSecretValue', awsError(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret."));
    store.answer('DescribeSecret', awsError(400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret."));
    store.answer(
      'CreateSecret',
      awsError(400, 'InvalidParameterException', `Invalid SecretString: ${KEY} contains a character that is not allowed`),
    );
    const home = newHome({ secret: 'claude-code/keys/{user}' });
    const csv = path.join(home.dir, 'keys.csv');
    fs.writeFileSync(csv, `alice,${KEY}\n`, { mode: 0o600 });
    const audit = path.join(home.dir, 'audit.log');
    const result = await runBinary(['admin', 'import', csv, '--audit-log', audit], { env: home.env() });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/import stopped at alice .*Invalid SecretString: … contains a character/);
    expect(fs.readFileSync(audit, 'utf8')).toMatch(/"outcome":"failed: store write: .*Invalid SecretString: … contains/);
    expectNoPartOf(KEY, result.stdout + result.stderr + fs.readFileSync(audit, 'utf8'));
  });

  it('rotate: a LiteLLM error that quotes the master key where its 200-character cut falls is masked before the cut', async () => {
    // The message is cut to 200 characters: the key starts 10 before the cut, so an unmasked cut
    // leaves 10 characters of it, too short for any later mask to recognise.
    const filler = 'the proxy refused this request because the token it received is not an admin token; '.repeat(3).slice(0, 190);
    const gateway = http.createServer((request, response) => {
      request.resume();
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ error: { message: `${filler}${MASTER_KEY} was received`, type: 'auth_error', param: 'None', code: '401' } }),
      );
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      store.answer('GetSecretValue', secretValue('sk-test-old-key'));
      const home = newHome({
        secret: 'claude-code/keys/{user}',
        keyIssuer: { type: 'litellm', url: `http://127.0.0.1:${(gateway.address() as AddressInfo).port}` },
      });
      const audit = path.join(home.dir, 'audit.log');
      const result = await runBinary(['admin', 'rotate', '--user', 'dev', '--now', '--audit-log', audit], {
        env: home.env({ LITELLM_MASTER_KEY: MASTER_KEY }),
      });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/refused the master key/);
      expectNoPartOf(MASTER_KEY, result.stdout + result.stderr + (fs.existsSync(audit) ? fs.readFileSync(audit, 'utf8') : ''));
    } finally {
      gateway.closeAllConnections();
      gateway.close();
    }
  });
});

describe('SSO', () => {
  it("an identity provider's error description that quotes a token is masked", async () => {
    const op = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        const issuer = `http://127.0.0.1:${(op.address() as AddressInfo).port}`;
        if (request.url === '/.well-known/openid-configuration') {
          response.writeHead(200, { 'content-type': 'application/json' });
          return void response.end(
            JSON.stringify({
              issuer,
              token_endpoint: `${issuer}/token`,
              device_authorization_endpoint: `${issuer}/device`,
              authorization_endpoint: `${issuer}/authorize`,
              response_types_supported: ['code'],
              subject_types_supported: ['public'],
              id_token_signing_alg_values_supported: ['RS256'],
            }),
          );
        }
        response.writeHead(400, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: 'invalid_request', error_description: `the assertion ${KEY} is not accepted here` }));
      });
    });
    await new Promise<void>((resolve) => op.listen(0, '127.0.0.1', resolve));
    try {
      const home = makeTestHome({
        profiles: {
          default: {
            oidc: { issuer: `http://127.0.0.1:${(op.address() as AddressInfo).port}`, clientId: 'keybroker-cli' },
            cache: { backend: 'file' },
          },
        },
      });
      homes.push(home);
      const result = await runBinary(['login', '--flow', 'device', '--no-browser'], { env: home.env() });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/invalid_request: the assertion … is not accepted here/);
      expectNoPartOf(KEY, result.stdout + result.stderr);
    } finally {
      op.closeAllConnections();
      op.close();
    }
  });
});
