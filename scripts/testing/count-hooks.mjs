// Module resolution hooks (registered by count-register.mjs): test code importing node:assert gets the counting
// wrappers from this folder instead; the wrappers themselves get the real module.
const here = new URL('./', import.meta.url).href;
const redirect = {
  'node:assert': 'counted-assert-legacy.mjs',
  assert: 'counted-assert-legacy.mjs',
  'node:assert/strict': 'counted-assert-strict.mjs',
  'assert/strict': 'counted-assert-strict.mjs',
};

export async function resolve(specifier, context, next) {
  const target = redirect[specifier];
  if (target && !context.parentURL?.startsWith(here)) return { url: new URL(target, here).href, shortCircuit: true };
  return next(specifier, context);
}
