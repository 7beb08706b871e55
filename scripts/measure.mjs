// One command's wall time, CPU (user + system) and peak RSS, for the benchmarks. The children's rusage needs
// wait4(); python's resource module reads it for us.
import { spawnSync } from 'node:child_process';

const MEASURE = `
import resource, subprocess, sys, time, json
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.monotonic() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": r.returncode, "wall": wall, "cpu": u.ru_utime + u.ru_stime, "rss": u.ru_maxrss * 1024, "err": r.stderr.decode()[-800:]}))
`;

/** Runs argv (stdout discarded); throws with the tail of its stderr when it fails. */
export function measure(argv, env = process.env) {
  const r = spawnSync('python3', ['-c', MEASURE, ...argv], { encoding: 'utf8', env, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`measure failed: ${r.stderr}`);
  const m = JSON.parse(r.stdout);
  if (m.code !== 0) throw new Error(`${argv.join(' ')} failed: ${m.err}`);
  return m;
}
