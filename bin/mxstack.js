#!/usr/bin/env node
// The mxstack command line: the compiled dist/ when it is current, else the sources through tsx (bin/launch.js).
import { importEntry } from './launch.js';

const { main } = await importEntry('cli/main');
process.exitCode = await main(process.argv.slice(2));
