// The name a profile's key is cached under (keychain account, cache file), the same for get, status,
// cache clear and doctor.
import type { Profile } from '../config/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/sha256.ts';
import { resolveSecretName, userNameProblem } from '../secret/name.ts';

/** Where a profile's entry is cached, and what an entry found there must say it was read from. */
export interface CacheSlot {
  account: string;
  /** The resolved secret name an entry must carry; undefined where only the store can tell ("user": "store", `oidc`). */
  secret: string | undefined;
}

/**
 * A profile's cache slot. With "user": "os" it is bound to the resolved secret name, so one OS
 * user's key is never served to another; a user that cannot be told is a ConfigError (exit 3)
 * before any cache is read. With "user": "store" the name needs the store (a network call): the
 * slot is the template's, and an entry must name a secret the template can resolve to.
 */
export function cacheSlot(profile: Profile, osUser: () => string): CacheSlot {
  if (profile.oidc || profile.user === 'store') return { account: accountOf(profile, profile.secret), secret: undefined };
  const secret = resolveSecretName(profile.secret, osUser(), 'the OS login');
  return { account: accountOf(profile, secret), secret };
}

/**
 * The keychain account (or cache file) of a profile: changes when what it reads changes.
 * `osUser` is asked only for a "user": "os" store profile, which cannot be named without it.
 */
export function cacheAccount(profile: Profile, osUser: () => string = needsOsUser): string {
  return cacheSlot(profile, osUser).account;
}

/** The account, or undefined where the OS user cannot be told (`cache clear` then removes what it can). */
export function knownCacheAccount(profile: Profile, osUser: () => string): string | undefined {
  try {
    return cacheAccount(profile, osUser);
  } catch (error) {
    if (error instanceof ConfigError) return undefined;
    throw error;
  }
}

function needsOsUser(): never {
  throw new Error('the cache account of a "user": "os" profile needs the OS user');
}

function accountOf(profile: Profile, secret: string): string {
  const what = JSON.stringify([profile.store, secret, profile.field, profile.user, ...(profile.oidc ? [profile.oidc] : [])]);
  return `${profile.name}:${sha256Hex(what).slice(0, 12)}`;
}

/** True when a cached entry read from `secret` may be served from this slot. */
export function entryBelongs(slot: CacheSlot, profile: Profile, secret: string): boolean {
  if (slot.secret !== undefined) return secret === slot.secret;
  // A token's entry is bound by its account, which hashes the whole `oidc` block.
  // Stryker disable next-line ConditionalExpression: equivalent, an oidc profile's secret is its issuer (config), which its entries carry
  if (profile.oidc) return true;
  if (!profile.secret.includes('{user}')) return secret === profile.secret;
  const [head, ...rest] = profile.secret.split('{user}');
  // Stryker disable next-line ConditionalExpression: equivalent, the final comparison needs the same head; this only stops early
  if (!secret.startsWith(head!)) return false;
  // The one user name every {user} stands for, read from the first one.
  const user = secret.slice(head!.length).split(rest[0] || '\0')[0]!;
  return userNameProblem(user) === undefined && profile.secret.replaceAll('{user}', user) === secret;
}

/** Where an `oidc` profile's refresh token is kept, next to its cached access token. */
export function refreshTokenAccount(profile: Profile): string {
  return `${accountOf(profile, profile.secret)}:refresh`;
}
