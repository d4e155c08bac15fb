// With every network target black-holed (connections accepted, never answered), the whole
// doctor still finishes within its own budget and says which layer did not answer. A developer
// runs doctor when auth is already broken; a doctor that hangs on a dead network explains nothing.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { expectWithinBound, processStart } from '../support/time-bounds.ts';
import { DOCTOR_BUDGET_MS } from '../../src/doctor/doctor.ts';
import { awsProfile, check, startMachine, type Machine } from './setup.ts';

let machine: Machine;
let storeProxy: FaultProxy;
let gatewayProxy: FaultProxy;
beforeAll(async () => {
  machine = await startMachine();
  storeProxy = await startFaultProxy(machine.moto.port);
  gatewayProxy = await startFaultProxy(machine.gateway.port);
  machine.writeConfig({ ...awsProfile(storeProxy.url()), cache: { backend: 'auto', fallback: 'file' } });
  // A key in the cache, so that the gateway checks have one to send while the store is down.
  const warmed = await machine.run(['get']);
  expect(warmed.code, warmed.stderr).toBe(0);
  storeProxy.set({ kind: 'blackhole' });
  gatewayProxy.set({ kind: 'blackhole' });
});
afterAll(async () => {
  await storeProxy?.stop();
  await gatewayProxy?.stop();
  await machine?.stop();
});

test('finishes within its budget with the store and the gateway black-holed, naming both', async () => {
  const yardstick = await processStart();
  const { result, report } = await machine.doctorJson([], { ANTHROPIC_BASE_URL: gatewayProxy.url() });
  await expectWithinBound('doctor with everything black-holed', result.ms, DOCTOR_BUDGET_MS, yardstick);
  expect(result.code).toBe(7);
  const identity = check(report, 'store.identity');
  expect(identity.verdict).toBe('FAIL');
  expect(identity.finding).toMatch(/did not answer|no answer within/);
  expect(check(report, 'store.read').verdict).toBe('SKIP');
  expect(check(report, 'cache.entry').finding).toMatch(/^cached sha256:/);
  const reachable = check(report, 'gateway.reachable');
  expect(reachable.verdict).toBe('FAIL');
  expect(reachable.finding).toMatch(/no answer within|did not answer in time/);
  expect(check(report, 'gateway.models').verdict).toBe('SKIP');
  expect(check(report, 'gateway.streaming').verdict).toBe('SKIP');
  // Both proxies were really tried (the checks did not skip the network).
  expect(storeProxy.connections()).toBeGreaterThan(1);
  expect(gatewayProxy.connections()).toBeGreaterThan(0);
  console.log(`doctor with everything black-holed: ${Math.round(result.ms)} ms`);
});

test('prints every line on a black-holed run too (text)', async () => {
  const yardstick = await processStart();
  const result = await machine.run(['doctor', '--model', 'claude-sonnet-4-5'], { ANTHROPIC_BASE_URL: gatewayProxy.url() });
  await expectWithinBound('doctor (text) with everything black-holed', result.ms, DOCTOR_BUDGET_MS, yardstick);
  expect(result.stdout).toMatch(/^\[FAIL\] store identity: /m);
  expect(result.stdout).toMatch(/^\[FAIL\] gateway reachable: /m);
  expect(result.stdout).toMatch(/^doctor: 2 failed/m);
});
