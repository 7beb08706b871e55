'use strict';
// Built by `node-gyp rebuild` when npm installs this folder (a file: dependency of mkportable).
module.exports = require('./build/Release/mkportable_native.node');
