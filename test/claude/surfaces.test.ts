// The other Claude surfaces' pure rendering and the config fields they use (issue 11).
import { describe, expect, it } from 'vitest';
import {
  chooseMcpServer,
  customHeadersValue,
  desktopCredential,
  helperContext,
  renderHeaders,
  urlCovers,
} from '../../src/claude/surfaces.ts';
import { ciAssignments, renderGithub, renderGitlab, renderShell } from '../../src/claude/ci-env.ts';
import { parseConfigText } from '../../src/config/config.ts';
import { ConfigError, UsageError } from '../../src/kernel/errors.ts';

const KEY = 'sk-test-surfaces-key';
const servers = (entries: Record<string, { url: string; profile?: string }>) =>
  Object.fromEntries(Object.entries(entries).map(([name, server]) => [name, { ...server, source: 'test.json' }]));

describe('keybroker headers: the JSON object', () => {
  it("is a Bearer Authorization header by default, and the profile's templates with {key} filled in otherwise", () => {
    expect(renderHeaders({}, KEY)).toEqual({ Authorization: `Bearer ${KEY}` });
    expect(renderHeaders({ headers: { 'x-api-key': '{key}', 'x-tenant': 'acme', 'x-both': 'k={key};again={key}' } }, KEY)).toEqual({
      'x-api-key': KEY,
      'x-tenant': 'acme',
      'x-both': `k=${KEY};again=${KEY}`,
    });
  });
});

describe('which MCP server a key may go to', () => {
  it('covers a URL at or below the configured one, on the same scheme, host and port only', () => {
    expect(urlCovers('https://mcp.corp.example/api', 'https://mcp.corp.example/api')).toBe(true);
    expect(urlCovers('https://mcp.corp.example/api', 'https://mcp.corp.example/api/mcp?x=1')).toBe(true);
    expect(urlCovers('https://mcp.corp.example/api', 'https://mcp.corp.example/apix')).toBe(false);
    expect(urlCovers('https://mcp.corp.example/', 'http://mcp.corp.example/mcp')).toBe(false);
    expect(urlCovers('https://mcp.corp.example/', 'https://mcp.corp.example:8443/mcp')).toBe(false);
    expect(urlCovers('https://mcp.corp.example/', 'https://mcp.corp.example.evil.test/mcp')).toBe(false);
    expect(urlCovers('https://mcp.corp.example/', 'https://mcp.corp.example@evil.test/mcp')).toBe(false);
    expect(urlCovers('https://mcp.corp.example/', 'not a url')).toBe(false);
  });

  it("chooses by URL; the name only breaks ties, so a repo's .mcp.json cannot borrow a listed name for its own URL", () => {
    const listed = servers({
      tools: { url: 'https://mcp.corp.example/', profile: 'tools' },
      search: { url: 'https://mcp.corp.example/search', profile: 'search' },
    });
    expect(chooseMcpServer(listed, { url: 'https://mcp.corp.example/search/mcp', name: 'anything' }).name).toBe('search');
    expect(chooseMcpServer(listed, { url: 'https://mcp.corp.example/search/mcp', name: 'tools' }).name).toBe('tools');
    expect(chooseMcpServer(listed, { url: 'https://mcp.corp.example/other' }).server.profile).toBe('tools');
    expect(() => chooseMcpServer(listed, { url: 'https://attacker.example/mcp', name: 'tools' })).toThrow(ConfigError);
    expect(() => chooseMcpServer({}, { url: 'https://mcp.corp.example/mcp', name: 'tools' })).toThrow(
      /not listed in keybroker's "mcpServers"/,
    );
  });
});

describe('Desktop / Cowork inferenceCredentialHelper', () => {
  it("prints the bare key, or {token, headers} with the profile's gateway headers", () => {
    expect(desktopCredential({}, KEY)).toBe(KEY);
    expect(JSON.parse(desktopCredential({ gatewayHeaders: { 'x-tenant': 'acme' } }, KEY))).toEqual({
      token: KEY,
      headers: { 'x-tenant': 'acme' },
    });
  });

  it('reads CLAUDE_HELPER_CONTEXT, an unknown value as unknown (served as interactive)', () => {
    expect(helperContext({})).toBeUndefined();
    expect(helperContext({ CLAUDE_HELPER_CONTEXT: 'mid-session-refresh' })).toBe('mid-session-refresh');
    expect(helperContext({ CLAUDE_HELPER_CONTEXT: 'something-new' })).toBe('unknown');
  });
});

describe('CI lines', () => {
  const assignments = ciAssignments({
    key: KEY,
    keyVariable: 'ANTHROPIC_API_KEY',
    gateway: 'https://llm.example',
    gatewayHeaders: { 'x-tenant': "o'brien" },
  });

  it('sets the gateway, the key and ANTHROPIC_CUSTOM_HEADERS as Claude Code reads them', () => {
    expect(customHeadersValue({ a: '1', b: '2' })).toBe('a: 1\nb: 2');
    expect(renderShell(assignments)).toBe(
      `export ANTHROPIC_BASE_URL='https://llm.example'\nexport ANTHROPIC_API_KEY='${KEY}'\nexport ANTHROPIC_CUSTOM_HEADERS='x-tenant: o'\\''brien'\n`,
    );
  });

  it('github: the mask line alone goes to the log; a value holding the delimiter is refused', () => {
    expect(renderGithub(assignments, 'DELIM')).toEqual({
      log: `::add-mask::${KEY}\n`,
      envFile: `ANTHROPIC_BASE_URL=https://llm.example\nANTHROPIC_API_KEY=${KEY}\nANTHROPIC_CUSTOM_HEADERS=x-tenant: o'brien\n`,
    });
    expect(() =>
      renderGithub(ciAssignments({ key: KEY, keyVariable: 'ANTHROPIC_API_KEY', gatewayHeaders: { a: 'DELIM', b: 'x' } }), 'DELIM'),
    ).toThrow(UsageError);
  });

  it('gitlab refuses under CI_DEBUG_TRACE', () => {
    expect(() => renderGitlab(assignments, { CI_DEBUG_TRACE: 'true' })).toThrow(/CI_DEBUG_TRACE/);
  });
});

describe('config: headers, gatewayHeaders, mcpServers', () => {
  const file = (profile: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    JSON.stringify({ profiles: { default: { store: { type: 'aws' }, secret: 's', ...profile } }, ...top });

  it('accepts templates with {key}, static gateway headers and URL entries', () => {
    expect(() =>
      parseConfigText(
        file(
          { headers: { 'x-api-key': '{key}' }, gatewayHeaders: { 'x-tenant': 'acme' } },
          { mcpServers: { tools: { url: 'https://mcp.example/mcp', profile: 'default' } } },
        ),
        'c.json',
      ),
    ).not.toThrow();
  });

  it.each([
    ['a header name with a space', { headers: { 'x api': '{key}' } }, {}, /header names/],
    ['a value with a line break', { headers: { 'x-api-key': '{key}\nInjected: 1' } }, {}, /printable ASCII/],
    ['a placeholder other than {key}', { headers: { 'x-user': '{user}' } }, {}, /only the placeholder \{key\}/],
    ['an empty map', { headers: {} }, {}, /at least one header/],
    ['the key in gatewayHeaders', { gatewayHeaders: { 'x-api-key': '{key}' } }, {}, /must not contain \{key\}/],
    ['an MCP server without a URL', {}, { mcpServers: { tools: { profile: 'default' } } }, /url/],
    ['an MCP server on another scheme', {}, { mcpServers: { tools: { url: 'file:///etc/passwd' } } }, /http\(s\) URL/],
  ])('refuses %s, naming the file and the field', (_what, profile, top, message) => {
    expect(() => parseConfigText(file(profile, top), 'c.json')).toThrow(message);
  });
});
