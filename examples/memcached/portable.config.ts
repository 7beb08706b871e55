import { defineConfig } from 'mkportable';

// memcached from Debian's package on the build host, with every library it links.
export default defineConfig({
  pname: 'memcached',
  version: '1.6',
  description: 'memcached from the build host',
  units: ['memcached.service'],
});
