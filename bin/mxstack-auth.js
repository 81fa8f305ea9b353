#!/usr/bin/env node
// The auth service (built-in identity provider): the compiled dist/ when it is current, else the sources
// through tsx (bin/launch.js).
//   mxstack-auth --config <config.json> [--secrets-dir <dir>]
import { importEntry } from './launch.js';

const { main } = await importEntry('components/auth/service/main');
process.exitCode = await main(process.argv.slice(2));
