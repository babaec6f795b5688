// Module rules of Slipway (see DESIGN.md, "Layout" and "Rules of the house"), checked by
// `npm run lint` (`depcruise src bench test --config .dependency-cruiser.cjs`).
//
// Layers, and what each may import besides its own folder, node builtins and npm packages:
//   core            nothing of ours
//   lib             core (runtime helpers any layer may use: the write queue, Docker errors)
//   protocol        core, lib
//   master, agent,  core, lib, protocol. Never each other; a framework reaches the master only
//   config,         through the scheduler API. Never store (each owns a narrow interface for what
//   delivery        it persists, and store implements it).
//   frameworks/kit  core, protocol (what every framework shares: session, offer manners,
//                   constraints, the plan applier)
//   frameworks/X    core, lib, protocol, frameworks/kit. frameworks/X never imports frameworks/Y.
//   sim             core, lib, protocol, master, agent (simulated agents and frameworks, and the
//                   images and on-disk helpers that tests and benches share)
//   store           core, lib, protocol, master, agent, frameworks, config, delivery (it implements their
//                   interfaces)
//   server          anything under src except cli and web (composition roots)
//   sdk             core, lib, protocol
//   cli             sdk, server, core, lib, protocol, sim, and bench/
//   bench/          server, sim, sdk, core, lib, protocol, master (the scheduler bench drives the
//                   master core on simulated agents). Never test/, never agent or a framework
//                   (go through sim, sdk or server), never store (go through sim, sdk or server).
//   web             sdk, core, lib, protocol
// Only test files, bench/, src/cli and src/server import src/sim. Nothing under src imports test/.
// Unit tests beside sources (`*.test.ts`) are exempt from the layer rules; cycles are forbidden
// everywhere, tests included.
//
// Rules name folders that may not exist yet; a rule about a missing folder simply never matches.
// When you add a top-level folder under src/, give it a rule here (`not-in-a-known-layer` warns).

/** A unit test beside its source: exempt from the layer rules. */
const TEST_FILE = '[.]test[.]ts$';

/** Anything that is code of ours (as opposed to node builtins and npm packages). */
const OURS = '^(src|test|bench)/';

const KNOWN_SRC_FOLDERS = [
  'core',
  'lib',
  'protocol',
  'auth',
  'master',
  'agent',
  'frameworks/[^/]+',
  'config',
  'delivery',
  'store',
  'server',
  'sdk',
  'cli',
  'web',
  'sim',
];

/**
 * A layer rule: files under `from` (a regular expression on the path) may import, of our code,
 * only paths matching one of `allowed`. `$1` in `allowed` is the first group of `from`.
 */
function layer(name, from, allowed, comment) {
  return {
    name,
    severity: 'error',
    comment,
    from: { path: from, pathNot: TEST_FILE },
    to: { path: OURS, pathNot: allowed },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'This import closes a cycle. Slipway forbids import cycles everywhere (tests included): ' +
        'move the shared part into a lower module, or invert the dependency with an interface.',
      from: {},
      to: { circular: true },
    },
    layer(
      'core-imports-nothing-of-ours',
      '^src/core/',
      ['^src/core/'],
      'src/core holds pure values and functions: it may import only node builtins and npm ' +
        'packages, nothing else of ours.',
    ),
    layer(
      'lib-imports-only-core',
      '^src/lib/',
      ['^src/(core|lib)/'],
      'src/lib holds runtime helpers that every layer may use (the write queue, Docker error ' +
        'mapping): it may import only src/core, so that using it never drags another layer in.',
    ),
    layer(
      'auth-imports-only-core-and-lib',
      '^src/auth/',
      ['^src/(auth|core|lib)/'],
      'src/auth (tokens, policies, capabilities, the HTTP gate, audit) is used by every HTTP layer: ' +
        'it may import only src/core and src/lib.',
    ),
    layer(
      'protocol-imports-only-core-and-lib',
      '^src/protocol/',
      ['^src/(core|lib|protocol)/'],
      'src/protocol (scheduler-API calls and events, agent messages: types and contracts) may ' +
        'import only src/core and src/lib.',
    ),
    layer(
      'master-agent-config-import-only-core-and-protocol',
      '^src/(master|agent|config|delivery)/',
      ['^src/($1|core|lib|protocol|auth)/'],
      'src/master, src/agent, src/config and src/delivery may import only src/core, src/lib, src/protocol and src/auth (their HTTP layers check tokens and capabilities): never ' +
        'each other, never a framework, never store/server/sdk/cli/web/sim. What they persist ' +
        'goes through a narrow interface of their own that src/store implements.',
    ),
    layer(
      'framework-kit-imports-only-core-and-protocol',
      '^src/frameworks/kit/',
      ['^src/(frameworks/kit|core|protocol)/'],
      'src/frameworks/kit is what every framework shares (the subscribe/reconnect session, offer ' +
        'manners, Marathon-semantics constraints, the plan applier): it may import only src/core ' +
        'and src/protocol, so that it stays below every framework and knows none of them.',
    ),
    layer(
      'frameworks-import-only-core-lib-protocol-and-kit',
      '^src/frameworks/(?!kit/)([^/]+)/',
      ['^src/(frameworks/$1|frameworks/kit|core|lib|protocol|auth)/'],
      'A framework (src/frameworks/X) may import only src/core, src/lib, src/protocol, src/auth (its http/ layer) and ' +
        'src/frameworks/kit: it reaches the master only through the scheduler API, and never ' +
        'imports another framework, the agent, config, or store/server/sdk/cli/web/sim.',
    ),
    layer(
      'sim-imports-only-core-protocol-master-agent',
      '^src/sim/',
      ['^src/(sim|core|lib|protocol|master|agent)/'],
      'src/sim (simulated agents and frameworks) may import only src/core, src/lib, src/protocol, ' +
        'src/master and src/agent.',
    ),
    layer(
      'store-implements-interfaces-only',
      '^src/store/',
      ['^src/(store|core|lib|protocol|master|agent|frameworks|config|delivery|auth)/'],
      'src/store may import src/core, src/lib, src/protocol and the persistence interfaces of ' +
        'master/agent/frameworks/config/delivery; never server/sdk/cli/web/sim, test/ or bench/.',
    ),
    layer(
      'server-does-not-import-cli-or-web',
      '^src/server/',
      ['^src/(?!(cli|web)/)'],
      'src/server wires everything under src except src/cli and src/web (they sit on top of it, ' +
        'through the SDK); it never imports test/ or bench/.',
    ),
    layer(
      'sdk-imports-only-core-and-protocol',
      '^src/sdk/',
      ['^src/(sdk|core|lib|protocol)/'],
      'src/sdk may import only src/core, src/lib and src/protocol.',
    ),
    layer(
      'cli-goes-through-sdk',
      '^src/cli/',
      ['^src/(cli|sdk|server|core|lib|protocol|sim)/', '^bench/'],
      'src/cli may import only src/sdk, src/server, src/core, src/lib, src/protocol, src/sim and bench/: ' +
        'it talks to a running Slipway through the SDK, never to master/agent/frameworks directly.',
    ),
    layer(
      'bench-imports-only-public-layers',
      '^bench/',
      ['^bench/', '^src/(server|sim|sdk|core|lib|protocol|master)/'],
      'bench/ may import, of our code, only src/server, src/sim, src/sdk, src/core, src/lib, ' +
        'src/protocol and src/master (the scheduler bench drives the master core on simulated ' +
        'agents), and bench/ itself. Never test/ (what tests and benches share lives in src/sim), ' +
        'never the internals of src/agent or of a framework (src/frameworks/**), never src/store: ' +
        'a bench measures Slipway as it is wired and used, through src/sim, src/sdk (the public ' +
        'HTTP API) or src/server (the composition roots), so that the figures measure what ships ' +
        'and a refactoring inside a layer does not break a bench.',
    ),
    layer(
      'web-goes-through-sdk',
      '^src/web/',
      ['^src/(web|sdk|core|lib|protocol)/'],
      'src/web may import only src/sdk, src/core, src/lib and src/protocol.',
    ),
    {
      name: 'only-tests-benches-cli-server-import-sim',
      severity: 'error',
      comment:
        'src/sim is a test and bench harness: only test files, bench/, src/cli and src/server ' +
        'may import it.',
      from: { pathNot: ['^src/(sim|cli|server)/', '^bench/', '^test/', TEST_FILE] },
      to: { path: '^src/sim/' },
    },
    {
      name: 'src-does-not-import-test',
      severity: 'error',
      comment: 'Code under src/ never imports test/ (unit tests beside sources excepted).',
      from: { path: '^src/', pathNot: TEST_FILE },
      to: { path: '^test/' },
    },
    {
      name: 'not-in-a-known-layer',
      severity: 'warn',
      comment:
        'This file is in a folder under src/ that .dependency-cruiser.cjs has no layer rule for, ' +
        'so nothing checks what it imports. Add the folder to the rules (and to DESIGN.md).',
      from: {
        path: '^src/',
        pathNot: [`^src/(${KNOWN_SRC_FOLDERS.join('|')})/`, TEST_FILE],
      },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment:
        'This import cannot be resolved to a file on disk. Imports of our code carry an explicit ' +
        '`.ts` extension; npm packages must be in package.json.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment:
        'This imports an npm package that is not in package.json; it works only by accident of ' +
        'hoisting. Add it with `npm install` (or `npm install -D` for tools and tests).',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'warn',
      comment:
        'Code under src/ that runs in `slipway up` imports a devDependency. Move the package to ' +
        '"dependencies", or keep the import in tests.',
      from: { path: '^src/', pathNot: [TEST_FILE, '^src/sim/'] },
      to: {
        dependencyTypes: ['npm-dev'],
        dependencyTypesNot: ['type-only'],
        pathNot: ['node_modules/@types/'],
      },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['(^|/)node_modules/', '^[.]slipway/', '^coverage/'] },
    moduleSystems: ['es6', 'cjs'],
    // Type-only imports count: a layer may not even name the types of a layer it may not import.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
