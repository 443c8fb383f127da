#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI is bundled to dist/cli.js by `npm run build` (run by `npm ci` through `prepare`).
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('merge-studio: dist/cli.js is missing; run `npm run build` (or `npm ci`) first.');
  process.exit(2);
}
// onnxruntime-node has no native build for some platforms (Intel Macs): say so instead of failing inside its loader.
const reason = require(path.join(__dirname, '..', 'dist', 'platform.js')).unsupportedPlatformReason();
if (reason) {
  console.error(`merge-studio: ${reason}`);
  process.exit(2);
}
require(cli)
  .main(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
