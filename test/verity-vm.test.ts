// dm-verity on a real kernel: our sidecar images and DDIs, attached with `portablectl attach --now` on real
// systemd-portabled 252 in a QEMU VM (this machine's kernel has no device-mapper), run their service with a verity
// device under it; with one byte flipped they fail to start or fail on read with the kernel's verity error; signed
// ones start only when their certificate is in /etc/verity.d. All cases run in one VM boot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { portableService } from '../src/build.js';
import { hostSource } from '../src/sources/host.js';
import { IN_CI, tempDir } from './support/env.js';
import { findBytes, flipByte, makeSigningPair, withFolderAt, type SigningPair } from './support/verity.js';
import { runInVm, vmPrerequisites, type VmFile, type VmRun } from './support/vm.js';

const PAYLOAD_AT = '/opt/mkportable-vt';
const ROOT_START = 1 << 20; // where our DDIs put the root partition

interface Built {
  name: string;
  rootHash: string;
  files: string[];
  /** Offset of the payload's bytes in the image file. */
  payloadAt: number;
}

/**
 * A service that reads its payload (a block of random bytes, unique to each image, so every image has its own
 * root hash and dm device) in ExecStartPre and then sleeps: it is active only once every payload block was read.
 */
async function build(dir: string, pname: string, format: 'squashfs' | 'ddi', signing?: SigningPair): Promise<Built> {
  const payloadDir = tempDir('mkportable-vt-');
  const payload = randomBytes(384 * 1024);
  await fs.writeFile(path.join(payloadDir, 'payload'), payload, { mode: 0o644 });
  await fs.chmod(payloadDir, 0o755);
  try {
    const unit = [
      '[Unit]', `Description=mkportable verity test ${pname}`, '',
      '[Service]', `ExecStartPre=/bin/sh -c 'cat ${PAYLOAD_AT}/payload > /dev/null'`, 'ExecStart=/usr/bin/sleep 600', '',
    ].join('\n');
    const r = await portableService({
      pname, version: '1', units: [{ name: `${pname}.service`, text: unit }], contents: ['/usr/bin/cat', PAYLOAD_AT],
      outDir: dir, squashBlockSize: '128K', verity: true, format,
      ...(signing ? { signingKey: signing.key, signingCertificate: signing.certificate } : {}),
    }, { source: withFolderAt(hostSource(), PAYLOAD_AT, payloadDir) });
    // Random bytes do not compress: squashfs stores the payload's blocks as they are.
    return { name: r.name, rootHash: r.rootHash!, files: r.outputs, payloadAt: await findBytes(r.image, payload.subarray(0, 64)) };
  } finally {
    await fs.rm(payloadDir, { recursive: true, force: true });
  }
}

interface CaseResult {
  attach: string;
  state: string;
  result: string;
  tables: string[];
  kernel: string[];
  journal: string[];
}

function parse(run: VmRun): Map<string, CaseResult> {
  const cases = new Map<string, CaseResult>();
  for (const line of run.output.split('\n')) {
    const m = /^(ATTACH|STATE|TABLE|KERNEL|JOURNAL) (\S+) ?(.*)$/.exec(line);
    if (!m) continue;
    const [, kind, label, rest] = m;
    if (!cases.has(label)) cases.set(label, { attach: '', state: '', result: '', tables: [], kernel: [], journal: [] });
    const c = cases.get(label)!;
    if (kind === 'ATTACH') c.attach = rest;
    else if (kind === 'STATE') [c.state, c.result] = rest.split(' ');
    else if (kind === 'TABLE') c.tables.push(rest);
    else if (kind === 'KERNEL') c.kernel.push(rest);
    else c.journal.push(rest);
  }
  return cases;
}

// Images stay attached (each has its own prefix and root hash): a detach would cost another dissect and reload.
const CASE_FUNCTION = `
IMG=/run/mkportable-test/images
echo "UPTIME start $(cut -d' ' -f1 /proc/uptime)"
run_case() {
  label=$1; name=$2; hash=$3; p=\${name%%_*}
  dmesg -C
  portablectl attach --now --runtime "$IMG/$name.raw" >/tmp/attach.log 2>&1
  echo "ATTACH $label $?"
  i=0; st=unknown
  while [ $i -lt 200 ]; do
    st=$(systemctl show -P ActiveState "$p.service")
    case "$st" in active|failed) break ;; esac
    sleep 0.2; i=$((i + 1))
  done
  echo "STATE $label $st $(systemctl show -P Result "$p.service")"
  dmsetup table 2>/dev/null | grep "^$hash-verity:" | sed "s/^/TABLE $label /"
  dmesg | grep -i verity | sed "s/^/KERNEL $label /"
  journalctl -b -u "$p.service" -o cat --no-pager 2>/dev/null | tail -n 4 | sed "s/^/JOURNAL $label /"
  systemctl stop "$p.service"
}
`;

const pre = vmPrerequisites();
if (!pre.ok && !IN_CI) {
  test('dm-verity in a VM', { skip: `prerequisites missing: ${pre.reason}` }, () => {});
} else {
  describe('dm-verity images on a real kernel (QEMU VM, systemd 252)', { timeout: 20 * 60_000 }, () => {
    let dir: string;
    let cases: Map<string, CaseResult>;
    let run: VmRun;

    before(async () => {
      if (!pre.ok) throw new Error(`prerequisite missing in CI: ${pre.reason}`);
      dir = tempDir('mkportable-vm-images-');
      const trusted = makeSigningPair(dir, 'trusted');
      const other = makeSigningPair(dir, 'other');
      const images = {
        vside: await build(dir, 'vside', 'squashfs'),
        vddi: await build(dir, 'vddi', 'ddi'),
        vsflip: await build(dir, 'vsflip', 'squashfs'),
        vd0flip: await build(dir, 'vd0flip', 'ddi'),
        vssig: await build(dir, 'vssig', 'squashfs', trusted),
        vdsig: await build(dir, 'vdsig', 'ddi', trusted),
        vsother: await build(dir, 'vsother', 'squashfs', other),
        vdother: await build(dir, 'vdother', 'ddi', other),
      };
      // One byte of the squashfs: in the payload, read by ExecStartPre (the sidecar image), or in block 0, read by
      // the mount (the DDI).
      await flipByte(path.join(dir, 'vsflip_1.raw'), images.vsflip.payloadAt + 1000);
      await flipByte(path.join(dir, 'vd0flip_1.raw'), ROOT_START + 100);

      const files: VmFile[] = [{ path: 'trusted.crt', from: trusted.certificate }];
      for (const b of Object.values(images)) for (const f of b.files) files.push({ path: `images/${path.basename(f)}`, from: f });
      const script = `${CASE_FUNCTION}
run_case vside vside_1 ${images.vside.rootHash}
run_case vddi vddi_1 ${images.vddi.rootHash}
run_case vsflip vsflip_1 ${images.vsflip.rootHash}
run_case vd0flip vd0flip_1 ${images.vd0flip.rootHash}
run_case vssig-untrusted vssig_1 ${images.vssig.rootHash}
portablectl detach --runtime "$IMG/vssig_1.raw" >/dev/null
mkdir -p /etc/verity.d
cp trusted.crt /etc/verity.d/mkportable-test.crt
run_case vssig vssig_1 ${images.vssig.rootHash}
run_case vdsig vdsig_1 ${images.vdsig.rootHash}
run_case vsother vsother_1 ${images.vsother.rootHash}
run_case vdother vdother_1 ${images.vdother.rootHash}
`;
      run = await runInVm({ files, script: `${script}echo "UPTIME end $(cut -d' ' -f1 /proc/uptime)"\n`, timeoutMs: 12 * 60_000 });
      cases = parse(run);
      const up = (w: string) => Number(new RegExp(`^UPTIME ${w} (\\S+)`, 'm').exec(run.output)?.[1]);
      console.log(`# VM run: ${run.seconds.toFixed(1)} s in all; booted in ${up('start').toFixed(1)} s, ${cases.size} attach --now cycles in ${(up('end') - up('start')).toFixed(1)} s`);
    });
    after(async () => {
      if (dir && existsSync(dir)) await fs.rm(dir, { recursive: true, force: true });
    });

    const get = (label: string) => {
      const c = cases.get(label);
      assert.ok(c, `no result for ${label} in the VM output:\n${run.output}`);
      return c;
    };
    const describeCase = (label: string) => JSON.stringify(get(label), null, 1);

    const runsOnVerity = (label: string) => {
      const c = get(label);
      assert.equal(c.attach, '0', `portablectl attach of ${label} failed: ${describeCase(label)}`);
      assert.equal(c.state, 'active', `${label}.service should run: ${describeCase(label)}`);
      assert.ok(c.tables.some((t) => /: 0 \d+ verity 1 /.test(t)), `dmsetup table should show ${label}'s verity device (named after its root hash) while it runs: ${describeCase(label)}`);
      assert.deepEqual(c.kernel.filter((k) => /corrupt/i.test(k)), [], `no verity errors for ${label}`);
    };
    const failsWithVerityError = (label: string) => {
      const c = get(label);
      assert.equal(c.state, 'failed', `${label}.service must not run with a flipped byte: ${describeCase(label)}`);
      assert.ok(c.kernel.some((k) => /verity.*(corrupt|verification failed)/i.test(k)), `the kernel should report the corrupted block for ${label}: ${describeCase(label)}`);
    };
    const refused = (label: string) => {
      const c = get(label);
      assert.equal(c.state, 'failed', `${label}.service must not start: ${describeCase(label)}`);
      assert.deepEqual(c.tables, [], `no verity device for ${label}: ${describeCase(label)}`);
    };

    test('a sidecar image (.verity + .roothash) runs on a dm-verity device', () => runsOnVerity('vside'));
    test('a DDI runs on a dm-verity device from its verity partition', () => runsOnVerity('vddi'));
    test('sidecar image, a flipped byte in a file: reading it fails with the kernel\'s verity error', () => failsWithVerityError('vsflip'));
    test('DDI, a flipped byte in block 0: the mount fails with the kernel\'s verity error', () => failsWithVerityError('vd0flip'));
    test('a signed image does not start while its certificate is not in /etc/verity.d', () => refused('vssig-untrusted'));
    test('signed sidecar image (.roothash.p7s) starts once its certificate is in /etc/verity.d', () => runsOnVerity('vssig'));
    test('signed DDI (root-verity-sig partition) starts once its certificate is in /etc/verity.d', () => runsOnVerity('vdsig'));
    test('sidecar image signed by another key does not start', () => refused('vsother'));
    test('DDI signed by another key does not start', () => refused('vdother'));
  });
}
