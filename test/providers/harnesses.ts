// Every store type's contract harness. A Record over StoreType: a provider without one does not compile.
import type { StoreType } from '../../providers/index.ts';
import type { ProviderHarness } from './contract.ts';
import { awsHarness } from './aws.harness.ts';
import { azureHarness } from './azure.harness.ts';
import { gcpHarness } from './gcp.harness.ts';
import { vaultHarness } from './vault.harness.ts';

export const harnesses: Record<StoreType, ProviderHarness> = {
  aws: awsHarness,
  azure: azureHarness,
  gcp: gcpHarness,
  vault: vaultHarness,
};
