// A stand-in for the Azure CLI's `az account get-access-token`, which is what
// AzureCliCredential runs: same arguments, same JSON on stdout, same "run 'az login'" errors on
// stderr. Its login state lives where az keeps it ($AZURE_CONFIG_DIR, default ~/.azure):
// azureProfile.json (the real file's shape) plus the tokens the fake Entra ID minted for it.
import fs from 'node:fs';
import path from 'node:path';

const SCRIPT = String.raw`#!/usr/bin/env node
const fs = require('node:fs');
const path = require('node:path');
const args = process.argv.slice(2);
const option = (name) => { const at = args.indexOf(name); return at >= 0 ? args[at + 1] : undefined; };
const fail = (text) => { process.stderr.write(text + '\n'); process.exit(1); };
if (args[0] !== 'account' || args[1] !== 'get-access-token') fail("ERROR: 'keybroker fake az' only answers 'az account get-access-token'");
const dir = process.env.AZURE_CONFIG_DIR || path.join(process.env.HOME || '/', '.azure');
let profile, tokens;
try {
  profile = JSON.parse(fs.readFileSync(path.join(dir, 'azureProfile.json'), 'utf8').replace(/^\uFEFF/, ''));
  tokens = JSON.parse(fs.readFileSync(path.join(dir, 'keybroker-fake-tokens.json'), 'utf8'));
} catch { fail("ERROR: Please run 'az login' to setup account."); }
const account = (profile.subscriptions || []).find((s) => s.isDefault) || (profile.subscriptions || [])[0];
if (!account) fail("ERROR: Please run 'az login' to setup account.");
const resource = (option('--resource') || 'https://management.core.windows.net/').replace(/\/$/, '');
const tenant = option('--tenant') || account.tenantId;
const token = (tokens[tenant] || {})[resource];
if (!token) {
  fail('ERROR: AADSTS50020: User account \'' + account.user.name + '\' from identity provider \'https://sts.windows.net/' + account.tenantId + '/\' does not exist in tenant \'' + tenant + '\' and cannot access the application.\n' +
    'Interactive authentication is needed. Please run:\naz login --tenant "' + tenant + '"');
}
if (token.expires_on * 1000 < Date.now()) {
  fail("ERROR: AADSTS700082: The refresh token has expired due to inactivity.\nInteractive authentication is needed. Please run:\naz login");
}
const local = new Date(token.expires_on * 1000);
const pad = (n) => String(n).padStart(2, '0');
const expiresOn = local.getFullYear() + '-' + pad(local.getMonth() + 1) + '-' + pad(local.getDate()) + ' ' + pad(local.getHours()) + ':' + pad(local.getMinutes()) + ':' + pad(local.getSeconds()) + '.000000';
process.stdout.write(JSON.stringify({ accessToken: token.accessToken, expiresOn, expires_on: token.expires_on, subscription: account.id, tenant, tokenType: 'Bearer' }, null, 2) + '\n');
`;

/** Writes the fake `az` into `binDir` (put it first on PATH). */
export function installFakeAzureCli(binDir: string): string {
  fs.mkdirSync(binDir, { recursive: true });
  const file = path.join(binDir, 'az');
  fs.writeFileSync(file, SCRIPT, { mode: 0o755 });
  return file;
}

export interface AzureLogin {
  user: string;
  /** The home tenant (the one `az login` picked). */
  tenant: string;
  /** Access tokens per tenant and resource, as Entra ID issued them. */
  tokens: Record<string, Record<string, string>>;
}

/** What `az login` leaves behind in the config dir, for the fake above to answer from. */
export function writeAzureLogin(configDir: string, login: AzureLogin): void {
  fs.mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const subscription = {
    id: '00000000-0000-0000-0000-0000000000a1',
    name: 'keybroker-test',
    state: 'Enabled',
    user: { name: login.user, type: 'user' },
    isDefault: true,
    tenantId: login.tenant,
    environmentName: 'AzureCloud',
    homeTenantId: login.tenant,
  };
  fs.writeFileSync(
    path.join(configDir, 'azureProfile.json'),
    JSON.stringify({ installationId: 'keybroker-test', subscriptions: [subscription] }),
  );
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const tokens = Object.fromEntries(
    Object.entries(login.tokens).map(([tenant, byResource]) => [
      tenant,
      Object.fromEntries(Object.entries(byResource).map(([resource, accessToken]) => [resource, { accessToken, expires_on: expires }])),
    ]),
  );
  fs.writeFileSync(path.join(configDir, 'keybroker-fake-tokens.json'), JSON.stringify(tokens), { mode: 0o600 });
}
