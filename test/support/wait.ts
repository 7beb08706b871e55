import net from 'node:net';

/** Poll `probe` until it returns a value (errors count as not yet), or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** One request/response over TCP from the host side (the container shares the host's network). */
export function ask(port: number, request: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    sock.setTimeout(3000, () => sock.destroy(new Error(`no answer on port ${port}, got '${got}'`)));
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => {
      got += d;
      if (until.test(got)) {
        sock.end();
        resolve(got);
      }
    });
    sock.on('error', reject);
  });
}
