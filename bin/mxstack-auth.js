#!/usr/bin/env node
// The auth service (built-in identity provider): runs the TypeScript sources directly through tsx.
//   mxstack-auth --config <config.json> [--secrets-dir <dir>]
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/auth-service/main.ts');
process.exitCode = await main(process.argv.slice(2));
