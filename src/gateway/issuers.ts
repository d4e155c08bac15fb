// The gateways whose key API keybroker speaks, by the profile's "keyIssuer.type". Adding one: its
// file here (src/gateway/<type>.ts, implementing KeyIssuer) and its case below.
import type { KeyIssuerConfig } from '../config/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import type { IssuerContext, KeyIssuer } from './key-issuer.ts';
import { createLiteLlmIssuer } from './litellm.ts';

export function openKeyIssuer(config: KeyIssuerConfig | undefined, context: IssuerContext): KeyIssuer {
  if (!config) {
    throw new ConfigError(
      'no gateway key API is configured in the profile',
      'add "keyIssuer": {"type": "litellm", "url": "https://…", "masterKeyEnv": "LITELLM_MASTER_KEY"}, or pass the new key on stdin/--from-file',
    );
  }
  switch (config.type) {
    case 'litellm':
      return createLiteLlmIssuer(config, context);
  }
}
