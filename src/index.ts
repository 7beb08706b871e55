export { portableService, type BuildResult, type BuildFile, type BuildHooks, type BuildPackage } from './build.js';
export type { ImageFormat } from './writers/container.js';
export { defineConfig, type PortableServiceOptions, type PortableServiceConfig, type UnitSpec, type SymlinkSpec } from './config/options.js';
export { findConfig, loadConfigFile } from './config/load.js';
export { MkportableError, type ErrorCode, type BuildWarning, type WarningCode } from './errors.js';
export type { Source, SourceStat } from './sources/source.js';
export { directorySource, hostSource } from './sources/host.js';
export { fromBytes, toBytes, escapeName, parseEscapes } from './formats/bytenames.js';
