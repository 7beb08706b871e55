'use strict';
// mkportable's native addon, compiled by node-gyp from the package's own binding.gyp when mkportable is installed
// (`npm ci` in a checkout, `npm install -g` elsewhere). Checkouts from before kept it here, in src/native/build.
const fs = require('node:fs');
const path = require('node:path');

const places = [path.join(__dirname, '..', '..', 'build', 'Release', 'mkportable_native.node'), path.join(__dirname, 'build', 'Release', 'mkportable_native.node')];
module.exports = require(places.find((p) => fs.existsSync(p)) ?? places[0]);
