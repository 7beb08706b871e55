import { main } from './main.js';
import { guardStdio, reportError } from './output.js';

guardStdio();
// Whatever escapes main (an error event of a stream, a rejection nobody awaited) is still one line, not a stack.
const last = (e: unknown) => {
  process.exitCode = reportError(e);
  process.exit();
};
process.on('uncaughtException', last);
process.on('unhandledRejection', last);
process.exitCode = await main(process.argv.slice(2));
