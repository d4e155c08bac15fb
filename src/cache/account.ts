// The name a profile's key is cached under (keychain account, cache file), the same for get, status,
// cache clear and doctor.
import type { Profile } from '../config/config.ts';
import { sha256Hex } from '../kernel/sha256.ts';

/** The keychain account (or cache file) of a profile: changes when what it reads changes. */
export function cacheAccount(profile: Profile): string {
  const what = JSON.stringify([profile.store, profile.secret, profile.field, profile.user, ...(profile.oidc ? [profile.oidc] : [])]);
  return `${profile.name}:${sha256Hex(what).slice(0, 12)}`;
}

/** Where an `oidc` profile's refresh token is kept, next to its cached access token. */
export function refreshTokenAccount(profile: Profile): string {
  return `${cacheAccount(profile)}:refresh`;
}
