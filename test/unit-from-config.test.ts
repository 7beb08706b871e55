// unitFromConfig makes the service unit from what the image is, never from where it sits on the build host: the
// same OCI layout at two different paths (different folder names too) gives byte-identical images, and the unit
// names the image by its reference and image ID.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { portableService } from '../src/index.js';
import { openImage } from '../src/squashfs/read/index.js';
import { writeLayout } from './support/oci-layout.js';
import { tempDir } from './support/env.js';

let work: string;
before(() => {
  work = tempDir('mkportable-unit-from-config-');
});
after(() => rmSync(work, { recursive: true, force: true }));

test('two copies of an OCI layout at different paths give identical images', async () => {
  const first = path.join(work, 'first-copy');
  writeLayout(first, [{
    entries: [
      { name: 'usr/', type: 'dir' },
      { name: 'usr/bin/', type: 'dir' },
      { name: 'usr/bin/app', type: 'file', mode: 0o755, data: 'a program, not ELF\n' },
      { name: 'srv/', type: 'dir' },
    ],
  }], { tag: '1.0', runConfig: { Entrypoint: ['app'], Cmd: ['--serve', '100%'], Env: ['PATH=/usr/bin', 'MODE=prod'], WorkingDir: '/srv' } });
  const second = path.join(work, 'elsewhere', 'another-name');
  cpSync(first, second, { recursive: true });

  const build = (layout: string, out: string) => portableService({
    pname: 'app', version: '1', from: `oci:${layout}:1.0`, unitFromConfig: true, outDir: path.join(work, out), squashCompression: 'gzip -Xcompression-level 1',
  });
  const a = await build(first, 'out-a');
  const b = await build(second, 'out-b');
  assert.equal(a.sha256, b.sha256, 'the image bytes do not depend on where the layout is');

  const img = await openImage(a.image);
  let unit: string;
  try {
    unit = Buffer.from(await img.readFile('/etc/systemd/system/app.service')).toString();
  } finally {
    await img.close();
  }
  assert.ok(!unit.includes(work), `the unit names no build host path:\n${unit}`);
  assert.match(unit, /^Description=app \(1\.0, image ID sha256:[0-9a-f]{12}\)$/m);
  assert.match(unit, /^ExecStart=\/usr\/bin\/app --serve 100%%$/m);
  assert.match(unit, /^WorkingDirectory=\/srv$/m);
});
