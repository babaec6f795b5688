#!/usr/bin/env node
// The `slipway` command. Sources are TypeScript; tsx compiles them on load so that a fresh clone
// runs after `npm ci` with no build step and no stale output.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
