// The cache layer of doctor against a real Secret Service (dbus + gnome-keyring), and without one.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { awsProfile, check, KEY, startMachine, type Machine } from './setup.ts';
import { fingerprint } from '../../src/secret/value.ts';

let machine: Machine;
let keyring: SecretService;
let busOnly: SecretService;
beforeAll(async () => {
  machine = await startMachine();
  machine.writeConfig({ ...awsProfile(machine.moto.endpoint), cache: { backend: 'auto', fallback: 'none' } });
  keyring = await startSecretService();
  busOnly = await startSecretService({ withoutKeyring: true });
});
afterAll(async () => {
  await keyring?.stop();
  await busOnly?.stop();
  await machine?.stop();
});

test('auto with a working keychain: uses it, round trip leaves nothing behind, shows the cached key', async () => {
  const bus = { DBUS_SESSION_BUS_ADDRESS: keyring.env['DBUS_SESSION_BUS_ADDRESS'] };
  const got = await machine.run(['get'], bus);
  expect(got.code, got.stderr).toBe(0);
  expect(got.stderr).toBe('');
  const { report } = await machine.doctorJson([], bus);
  const backend = check(report, 'cache.backend');
  expect(backend.verdict, backend.finding).toBe('OK');
  expect(backend.finding).toMatch(/the OS keychain \("backend": "auto", set by .*config\.json; it accepted a write\)/);
  expect(check(report, 'cache.round-trip').finding).toMatch(/wrote, read and deleted a test entry in the keychain cache/);
  expect(check(report, 'cache.entry').finding).toContain(`cached ${fingerprint(KEY)}`);
  // Only the profile's own entry is in the keyring: the doctor's probe was deleted.
  const accounts = await keyring.accounts('keybroker');
  expect(accounts).toHaveLength(1);
  expect(accounts[0]).toMatch(/^default:/);
});

test('auto with a keyring that has no unlocked collection: WARN saying what it fell back to and why', async () => {
  const { report } = await machine.doctorJson([], { DBUS_SESSION_BUS_ADDRESS: busOnly.env['DBUS_SESSION_BUS_ADDRESS'] });
  const backend = check(report, 'cache.backend');
  expect(backend.verdict).toBe('WARN');
  expect(backend.finding).toMatch(/"backend": "auto" found no usable keychain \(.+\); using no cache/);
  expect(backend.fix).toMatch(/keyring|"backend": "file"/);
  expect(check(report, 'cache.round-trip').verdict).toBe('SKIP');
});

test('auto without a session bus at all: WARN, no cache', async () => {
  const { report } = await machine.doctorJson([], { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
  const backend = check(report, 'cache.backend');
  expect(backend.verdict).toBe('WARN');
  expect(backend.finding).toMatch(/Failed to connect to socket \/nonexistent\/bus/);
});

test('an explicit keychain backend that does not work is a FAIL', async () => {
  machine.writeConfig({ ...awsProfile(machine.moto.endpoint), cache: { backend: 'keychain' } });
  try {
    const { report, result } = await machine.doctorJson([], { DBUS_SESSION_BUS_ADDRESS: busOnly.env['DBUS_SESSION_BUS_ADDRESS'] });
    expect(check(report, 'cache.backend').verdict).toBe('FAIL');
    expect(result.code).toBe(9);
  } finally {
    machine.writeConfig({ ...awsProfile(machine.moto.endpoint), cache: { backend: 'auto', fallback: 'none' } });
  }
});
