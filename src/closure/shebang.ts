/** `#!` lines as the kernel reads them: at most the first 256 bytes, interpreter then one optional argument string. */
export interface Shebang {
  interpreter: string;
  /** The rest of the line, as the kernel passes it (one string, not split). */
  arg?: string;
}

export function parseShebang(head: Uint8Array): Shebang | null {
  if (head[0] !== 0x23 || head[1] !== 0x21) return null;
  let end = head.indexOf(0x0a);
  if (end < 0) end = head.length;
  const line = Buffer.from(head.subarray(2, end)).toString('utf8').replace(/\r$/, '').trim();
  if (!line) return null;
  const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(line);
  if (!m) return null;
  return m[2] ? { interpreter: m[1], arg: m[2].trim() } : { interpreter: m[1] };
}

/**
 * For `#!/usr/bin/env [OPTIONS] NAME`, the program env will look up: skips env's options (`-i`, `-u NAME`, `-S`
 * splitting, `--`) and `VAR=value` assignments. Undefined when the interpreter is not env.
 */
export function envProgram(s: Shebang): string | undefined {
  if (!/(^|\/)env$/.test(s.interpreter) || !s.arg) return undefined;
  const words = s.arg.split(/[ \t]+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === '--') return words[i + 1];
    if (w === '-u' || w === '--unset' || w === '-C' || w === '--chdir') { i++; continue; }
    if (w.startsWith('-S')) {
      if (w.length > 2) return w.slice(2).split(/\s+/)[0] || words[i + 1];
      continue;
    }
    if (w.startsWith('-')) continue;
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
    return w;
  }
  return undefined;
}
