// The `store` section of a GCP Secret Manager profile, apart from the provider so that the config
// loader validates it without loading the store's SDK chunk (providers/schemas.ts lists them).
import * as v from 'valibot';
import { caBundlePath, type ProviderModule } from './provider.ts';

const PROJECT_ID = /^(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[0-9]{1,20}$/;
const VERSION = /^(?:latest|[1-9][0-9]{0,18}|[a-zA-Z][a-zA-Z0-9_-]{0,62})$/;

export const storeSchema = v.strictObject({
  type: v.literal('gcp'),
  /** The project that holds the secrets: its id ("acme-keys") or number. */
  project: v.pipe(v.string(), v.regex(PROJECT_ID, 'must be a GCP project id such as "acme-llm-keys" or a project number')),
  /** The version to read: "latest" (default), a version number, or a version alias. */
  version: v.optional(v.pipe(v.string(), v.regex(VERSION, 'must be "latest", a version number such as "3", or a version alias'))),
  /** The Secret Manager endpoint (Private Service Connect, a proxy, an emulator): "https://host[:port]". */
  endpoint: v.optional(
    v.pipe(
      v.string(),
      v.url('must be a URL such as "https://secretmanager.googleapis.com"'),
      v.startsWith('https://', 'must be an https:// URL (Secret Manager speaks gRPC over TLS)'),
    ),
  ),
  /** A PEM file of CA certificates to trust for the endpoint besides the public roots (like gcloud's core/custom_ca_certs_file). */
  caFile: v.optional(caBundlePath),
}) as unknown as ProviderModule['storeSchema'];
