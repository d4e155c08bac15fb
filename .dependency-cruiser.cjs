// The architecture as rules: which folder may import which (README "Architecture"). Checked by
// test/architecture.test.ts with dependency-cruiser; `npx depcruise src providers bin` runs it by hand.
// A folder imports only the folders listed for it (all of them below it), and nothing imports in a circle.
const mayUse = {
  'src/kernel': [],
  providers: ['src/kernel'],
  'src/secret': ['src/kernel'],
  'src/config': ['src/kernel', 'providers'],
  'src/loader': ['src/kernel', 'providers', 'src/config'],
  'src/cache': ['src/kernel', 'providers', 'src/secret', 'src/config', 'src/loader'],
  'src/claude': ['src/kernel', 'src/config'],
  'src/gateway': ['src/kernel', 'src/config'],
  'src/sso': ['src/kernel', 'src/secret', 'src/config', 'src/loader', 'src/cache'],
  'src/broker': ['src/kernel', 'providers', 'src/secret', 'src/config', 'src/loader', 'src/cache', 'src/claude', 'src/gateway'],
  'src/admin': ['src/kernel', 'providers', 'src/secret', 'src/config', 'src/loader', 'src/gateway'],
  'src/doctor': [
    'src/kernel',
    'providers',
    'src/secret',
    'src/config',
    'src/loader',
    'src/cache',
    'src/claude',
    'src/gateway',
    'src/broker',
    'src/sso',
  ],
  'src/cli': [
    'src/kernel',
    'providers',
    'src/secret',
    'src/config',
    'src/loader',
    'src/cache',
    'src/claude',
    'src/gateway',
    'src/broker',
    'src/admin',
    'src/doctor',
    'src/sso',
  ],
};

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules that import each other cannot be understood, tested or loaded apart.',
      from: { path: '^(src|providers|bin)/' },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      severity: 'error',
      comment: "Every file under src/ lives in one of the architecture's folders (add a new one to mayUse with its place).",
      from: { path: '^src/', pathNot: `^(${Object.keys(mayUse).map(escapeRegExp).join('|')})/` },
      to: {},
    },
    ...Object.entries(mayUse).map(([folder, allowed]) => ({
      name: `layer-${folder.replace(/\//g, '-')}`,
      severity: 'error',
      comment: `${folder} may import only ${allowed.length ? allowed.join(', ') : 'nothing of ours'} (and itself).`,
      from: { path: `^${escapeRegExp(folder)}/` },
      to: { path: '^(src|providers|bin|test|bench)/', pathNot: `^(${[folder, ...allowed].map(escapeRegExp).join('|')})/` },
    })),
  ],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};

// For test/architecture.test.ts (not a dependency-cruiser option, so not enumerable).
Object.defineProperty(module.exports, 'mayUse', { value: mayUse, enumerable: false });
