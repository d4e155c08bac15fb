// What the doctor's checks learn and hand on to later checks (never printed as such: the key
// stays in memory and only its fingerprint appears in findings).
import type { LoadedConfig, ConfigRequest } from '../config/config.ts';
import type { Provider, StoreIdentity } from '../../providers/provider.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import type { SettingsFile } from '../claude/settings.ts';

export interface DoctorDeps {
  env: NodeJS.ProcessEnv;
  configRequest: ConfigRequest;
  /** Where Claude Code would run (its project settings are read from here). */
  projectDir: string;
  platform: NodeJS.Platform;
  now(): number;
  osUser(): string;
  openProvider(config: LoadedConfig, timeoutMs: number): Promise<Provider>;
  /** The keychain, as the cache would open it (tests inject a fake one). */
  keychain(): CacheStore;
  fetch: typeof fetch;
  /** --gateway */
  gateway?: string;
  /** --model, in order */
  models: string[];
  debug(message: string): void;
}

export interface DoctorState {
  config?: LoadedConfig;
  provider?: Provider;
  identity?: StoreIdentity;
  /** Why the store cannot be asked again (unreachable, not logged in): later store checks skip. */
  storeBlocked?: string;
  secret?: string;
  rawValue?: string;
  version?: string;
  storeExpiresAt?: Date;
  /** The key to test the gateway with, and where it came from. */
  key?: string;
  keyFrom?: string;
  cache?: CacheStore;
  claudeFiles?: SettingsFile[];
  /** Set when the gateway did not answer: later gateway checks skip. */
  gatewayDown?: string;
  gatewayUrl?: URL;
  /** Why the developer's key is not sent to the gateway (an address from project settings, plain HTTP to another host). */
  keyWithheld?: { why: string; fix: string };
  /** The address came from project settings: not contacted at all, not even without the key. */
  gatewayUntrusted?: boolean;
  listedModels?: string[];
}

/** What every check reads (the doctor's deps) and hands on (what earlier checks learnt). */
export interface CheckContext {
  deps: DoctorDeps;
  state: DoctorState;
}
