// A runtime base for portable extensions: bash and coreutils, no units of its own. PORTABLE_PREFIXES names the
// apps that may attach on it, and /var/lib/app is the mount point for the app's StateDirectory=app.
import { readFileSync } from 'node:fs';
import { defineConfig } from 'mkportable';

// Every program of the build host's coreutils package (Debian's file list), and bash.
const coreutils = readFileSync('/var/lib/dpkg/info/coreutils.list', 'utf8')
  .split('\n')
  .filter((p) => /^\/(usr\/)?bin\/[^/]+$/.test(p));

export default defineConfig({
  pname: 'runtime',
  version: '1',
  description: 'bash and coreutils runtime for portable extensions',
  units: [],
  contents: ['/usr/bin/bash', '/usr/bin/sh', ...coreutils],
  files: [{ path: '/var/lib/app', type: 'dir' }],
  osRelease: { PORTABLE_PREFIXES: 'app' },
});
