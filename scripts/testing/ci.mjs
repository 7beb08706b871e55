// The one definition of "running in CI", shared by scripts/run-tests.mjs, test/support/env.ts and the harnesses.
// CI is on when the CI variable is set to anything but an explicit "off" value (CI=true, CI=1, CI=yes, ...).
// .ci/run sets CI=true itself, so the CI run never depends on the host to set it.

/** @param {NodeJS.ProcessEnv} [env] */
export function inCI(env = process.env) {
  const v = (env.CI ?? '').trim();
  return v !== '' && !/^(0|false|no|off)$/i.test(v);
}

export const IN_CI = inCI();
