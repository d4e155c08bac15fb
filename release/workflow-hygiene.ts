// The rules our GitHub workflows and the Action keep (run by test/release/workflow-hygiene.test.ts,
// or `node release/workflow-hygiene.ts FILE…`): every action pinned by commit, nothing another
// person controls expanded inside a script, least permissions per job, no install script run by
// `npm ci` but the ones package.json allows, rebuilt by name.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

type Node = Record<string, unknown>;

const PINNED = /^[\w.-]+\/[\w.-]+(\/[^@\s]+)?@[0-9a-f]{40}$/;
/** Expressions a script may expand: values the workflow itself or the runner sets. */
const SAFE_EXPRESSION = /^\s*(matrix\.[\w-]+|runner\.(os|arch|temp))\s*$/;

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function steps(owner: Node): Node[] {
  return Array.isArray(owner['steps']) ? owner['steps'].filter(isNode) : [];
}

/** `uses:` pinned by a full commit SHA, with the tag it stands for in a comment on the same line. */
export function checkPins(text: string, where: string): string[] {
  const problems: string[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    const match = /^\s*(?:-\s+)?uses:\s*['"]?([^'"\s#]+)['"]?\s*(#.*)?$/.exec(line);
    if (!match || match[1]!.startsWith('./')) continue;
    const ref = match[1]!;
    if (!PINNED.test(ref)) problems.push(`${where}:${index + 1}: ${ref} is not pinned by a full 40-hex commit SHA`);
    else if (!/#\s*v?\d/.test(match[2] ?? '')) problems.push(`${where}:${index + 1}: ${ref} has no comment naming the tag it pins`);
  }
  return problems;
}

/** Every `uses:` the YAML holds (steps, reusable-workflow jobs), however it is written: pinned by commit. */
export function checkParsedPins(owners: Node[], where: string): string[] {
  const refs = owners
    .flatMap((owner) => [owner['uses'], ...steps(owner).map((step) => step['uses'])])
    .filter((ref): ref is string => typeof ref === 'string');
  return refs
    .filter((ref) => !ref.startsWith('./') && !PINNED.test(ref))
    .map((ref) => `${where}: ${ref} is not pinned by a full 40-hex commit SHA`);
}

/** No `${{ … }}` in a `run:` script but the workflow's own matrix values and the runner's facts. */
export function checkScripts(owner: Node, where: string): string[] {
  const problems: string[] = [];
  for (const [index, step] of steps(owner).entries()) {
    const script = step['run'];
    if (typeof script !== 'string') continue;
    for (const [, expression] of script.matchAll(/\$\{\{(.*?)\}\}/gs)) {
      if (!SAFE_EXPRESSION.test(expression!)) {
        problems.push(
          `${where}: step ${index + 1} (${String(step['name'] ?? step['run']).split('\n')[0]}) expands \${{${expression}}} inside run:; pass it through env: and quote "$VAR"`,
        );
      }
    }
  }
  return problems;
}

function readOnly(permissions: unknown): boolean {
  if (permissions === 'read-all' || (isNode(permissions) && Object.keys(permissions).length === 0)) return true;
  return isNode(permissions) && Object.values(permissions).every((value) => value === 'read' || value === 'none');
}

/** Top-level permissions none or read-only; each job states its own. */
export function checkPermissions(workflow: Node, where: string): string[] {
  const problems: string[] = [];
  if (!('permissions' in workflow)) problems.push(`${where}: no top-level permissions: (write "permissions: {}" and grant per job)`);
  else if (!readOnly(workflow['permissions']))
    problems.push(`${where}: top-level permissions grant write; grant it in the job that needs it`);
  for (const [name, job] of Object.entries(isNode(workflow['jobs']) ? workflow['jobs'] : {})) {
    if (isNode(job) && !('permissions' in job)) problems.push(`${where}: job ${name} has no permissions: of its own`);
  }
  return problems;
}

/** `npm ci --ignore-scripts`, then `npm rebuild` of every package package.json's allowScripts allows. */
export function checkInstallScripts(owner: Node, where: string, allowed: string[]): string[] {
  const problems: string[] = [];
  const scripts = steps(owner).map((step) => (typeof step['run'] === 'string' ? step['run'] : ''));
  const ciAt = scripts.findIndex((script) => /\bnpm ci\b/.test(script));
  if (ciAt === -1) return problems;
  for (const script of scripts) {
    for (const line of script.split('\n').filter((text) => /\bnpm ci\b/.test(text))) {
      if (!line.includes('--ignore-scripts'))
        problems.push(
          `${where}: "${line.trim()}" runs every dependency's install script (npm before 11.16 ignores allowScripts); add --ignore-scripts`,
        );
    }
  }
  const rebuild =
    scripts
      .slice(ciAt)
      .join('\n')
      .match(/\bnpm rebuild\b[^\n]*/)?.[0] ?? '';
  const missing = allowed.filter((name) => !rebuild.split(/\s+/).includes(name));
  if (missing.length)
    problems.push(`${where}: after npm ci --ignore-scripts, no "npm rebuild" of ${missing.join(', ')} (package.json allowScripts)`);
  return problems;
}

/** The packages whose install scripts package.json allows. */
export function allowedScripts(packageJson: string): string[] {
  const allow = (JSON.parse(packageJson) as { allowScripts?: Record<string, boolean> }).allowScripts ?? {};
  return Object.entries(allow).flatMap(([name, on]) => (on ? [name] : []));
}

/** Every problem of one workflow file's text (or a composite action's: `runs.steps`). */
export function checkWorkflow(text: string, where: string, allowed: string[]): string[] {
  const document = parse(text) as unknown;
  if (!isNode(document)) return [`${where}: not a YAML mapping`];
  const jobs = Object.values(isNode(document['jobs']) ? document['jobs'] : {}).filter(isNode);
  const problems = checkPins(text, where);
  // A flow mapping ({ uses: … }) escapes the line check; the parsed YAML does not.
  if (problems.length === 0) problems.push(...checkParsedPins(isNode(document['runs']) ? [document['runs']] : jobs, where));
  const on = document['on'];
  if (isNode(on) ? 'pull_request_target' in on : String(on).includes('pull_request_target'))
    problems.push(`${where}: pull_request_target runs a fork's pull request with this repository's secrets`);
  if (isNode(document['runs'])) {
    problems.push(...checkScripts(document['runs'], where), ...checkInstallScripts(document['runs'], where, allowed));
    return problems;
  }
  problems.push(...checkPermissions(document, where));
  for (const [name, job] of Object.entries(isNode(document['jobs']) ? document['jobs'] : {})) {
    if (!isNode(job)) continue;
    problems.push(...checkScripts(job, `${where} job ${name}`), ...checkInstallScripts(job, `${where} job ${name}`, allowed));
  }
  return problems;
}

if (import.meta.main) {
  const root = path.resolve(import.meta.dirname, '..');
  const allowed = allowedScripts(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const problems = process.argv.slice(2).flatMap((file) => checkWorkflow(fs.readFileSync(file, 'utf8'), file, allowed));
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  process.exit(problems.length ? 1 : 0);
}
