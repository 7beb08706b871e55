/**
 * What the CLI shows while it works. On a terminal: a line per step, and for the long one — writing the image's
 * data — a live bar like mksquashfs's (bytes and files done of the total, rate, compression ratio so far, ETA),
 * drawn by cli-progress. Not on a terminal, or with --json: nothing but the result. --progress=bar|plain|none
 * chooses (plain: the step lines, and one line when the data is written).
 */
import { createRequire } from 'node:module';
import type cliProgressModule from 'cli-progress';
import type { WriteProgress } from '../squashfs/write.js';

export type ProgressMode = 'bar' | 'plain' | 'none';

/** A stream the progress goes to (stderr; tests give a fake terminal). */
export interface ProgressStream {
  write(s: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressUi {
  /** A short phase starts: "resolving the closure". */
  step(line: string): void;
  /** The image's data: called repeatedly while it is written. */
  write(p: WriteProgress): void;
  /** All done (or failed): leave the terminal tidy. */
  done(): void;
}

/** The mode for a --progress value; undefined: a bar on a terminal, nothing elsewhere or with --json. */
export function progressMode(flag: string | undefined, json: boolean, stream: ProgressStream): ProgressMode {
  if (flag === undefined) return json || !stream.isTTY ? 'none' : 'bar';
  if (flag === 'bar' || flag === 'plain' || flag === 'none') return flag;
  throw new RangeError(`--progress: expected bar, plain or none, got '${flag}'`);
}

const MiB = 1024 * 1024;
export const mib = (n: number): string => (n >= 100 * MiB ? (n / MiB).toFixed(0) : (n / MiB).toFixed(1));

function rateOf(bytes: number, seconds: number): string {
  return seconds > 0 ? `${mib(bytes / seconds)} MiB/s` : '-';
}

export function createProgress(mode: ProgressMode, stream: ProgressStream): ProgressUi {
  if (mode === 'none') return { step() {}, write() {}, done() {} };
  const line = (s: string) => stream.write(`mkportable: ${s}\n`);
  if (mode === 'plain') {
    let last: WriteProgress | null = null;
    let started = 0;
    let reported = false;
    const finishData = () => {
      if (!last || reported) return;
      reported = true;
      const secs = (Date.now() - started) / 1000;
      const ratio = last.bytes > 0 ? (last.stored / last.bytes).toFixed(3) : '-';
      line(`data: ${mib(last.bytes)} MiB in ${last.files} files → ${mib(last.stored)} MiB (ratio ${ratio}) in ${secs.toFixed(1)} s, ${rateOf(last.bytes, secs)}`);
    };
    return {
      step(s) {
        finishData();
        last = null;
        reported = false;
        line(`${s}…`);
      },
      write(p) {
        if (!last) started = Date.now();
        last = { ...p };
        if (p.files === p.totalFiles && p.bytes === p.totalBytes) finishData();
      },
      done: finishData,
    };
  }

  // Loaded only for a bar: the other modes are every run off a terminal.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof cliProgressModule;
  let bar: cliProgressModule.SingleBar | null = null;
  let started = 0;
  const stop = () => {
    bar?.stop();
    bar = null;
  };
  return {
    step(s) {
      stop();
      line(`${s}…`);
    },
    write(p) {
      const secs = started ? (Date.now() - started) / 1000 : 0;
      const payload = {
        done: mib(p.bytes),
        all: mib(p.totalBytes),
        files: p.files,
        allFiles: p.totalFiles,
        rate: rateOf(p.bytes, secs),
        ratio: p.bytes > 0 ? `${((p.stored / p.bytes) * 100).toFixed(0)}%` : '-',
      };
      if (!bar) {
        started = Date.now();
        bar = new cliProgress.SingleBar(
          {
            stream: stream as NodeJS.WritableStream,
            format: '[{bar}] {percentage}% | {done}/{all} MiB | {files}/{allFiles} files | {rate} | ratio {ratio} | ETA {eta_formatted}',
            barsize: 24,
            hideCursor: true,
            clearOnComplete: false,
            stopOnComplete: false,
            etaBuffer: 40,
            fps: 10,
            // --progress=bar asked for off a terminal: a line now and then instead of redraws.
            noTTYOutput: !stream.isTTY,
            notTTYSchedule: 2000,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, p.totalBytes), p.bytes, payload);
      } else bar.update(p.bytes, payload);
    },
    done: stop,
  };
}
