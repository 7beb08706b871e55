/**
 * `import { defineConfig } from 'mkportable'` in a config file must load wherever the file lives: next to a local
 * install, far from a global one, or run through npx. Node would look for 'mkportable' in node_modules folders
 * above the config; instead, the name is mapped to the running mkportable itself, for ESM imports (a module
 * resolve hook) and for configs tsx compiles to CommonJS (require's filename resolution).
 */
import { existsSync } from 'node:fs';
import Module, { register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NAME = 'mkportable';
let installed = false;

/** The running package's library entry: dist/src/index.js when compiled, src/index.ts under tsx. */
function entryFile(): string {
  const js = fileURLToPath(new URL('../index.js', import.meta.url));
  return existsSync(js) ? js : fileURLToPath(new URL('../index.ts', import.meta.url));
}

// A data: URL keeps the hook in this module's text: nothing extra to ship or to find at run time.
const HOOK = `
let entry;
export function initialize(data) { entry = data.entry; }
export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(NAME)}) return { url: entry, shortCircuit: true, format: 'module' };
  return next(specifier, context);
}
`;

export function resolveSelfImports(): void {
  if (installed) return;
  installed = true;
  const entry = entryFile();
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`, { data: { entry: pathToFileURL(entry).href } });
  // CommonJS (a .ts config outside an ESM package): only the config's own require of 'mkportable' is redirected.
  const cjs = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const original = cjs._resolveFilename;
  cjs._resolveFilename = function (request: string, ...rest: unknown[]) {
    return original.call(this, request === NAME ? entry : request, ...rest);
  };
}
