// The `store` section of a AWS Secrets Manager profile, apart from the provider so that the config
// loader validates it without loading the store's SDK chunk (providers/schemas.ts lists them).
import * as v from 'valibot';
import type { ProviderModule } from './provider.ts';

export const storeSchema = v.strictObject({
  type: v.literal('aws'),
  region: v.optional(v.pipe(v.string(), v.regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as "us-east-1"'))),
  /** A Secrets Manager endpoint (VPC endpoint, emulator); STS is asked at the same address. */
  endpoint: v.optional(v.pipe(v.string(), v.url('must be a URL such as "http://127.0.0.1:4566"'))),
  /** A named profile of ~/.aws/config; otherwise AWS_PROFILE or the default chain. */
  profile: v.optional(v.pipe(v.string(), v.minLength(1))),
}) as unknown as ProviderModule['storeSchema'];
