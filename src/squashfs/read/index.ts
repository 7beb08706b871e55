export {
  DEFAULT_MAX_READ_FILE,
  SquashfsImage,
  openImage,
  openImageBuffer,
  type DirEntry,
  type NodeStat,
  type NodeType,
  type OpenOptions,
  type ReadFileOptions,
  type WalkEntry,
} from './image.js';
export { listCommand, formatMode, pathArgument } from './ls.js';
