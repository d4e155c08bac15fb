// The stores keybroker knows. Adding one: its file here (providers/<type>.ts, exporting
// `storeSchema` and `createProvider`), its `store` schema in providers/<type>.schema.ts (no SDK:
// the config loader reads it through providers/schemas.ts), its name in this list, and its
// contract-test registration.
export const storeTypes = ['aws', 'azure', 'gcp', 'vault'] as const;
export type StoreType = (typeof storeTypes)[number];
