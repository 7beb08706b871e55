export function inCI(env?: NodeJS.ProcessEnv): boolean;
export const IN_CI: boolean;
