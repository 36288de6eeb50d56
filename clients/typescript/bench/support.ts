// What the benchmarks share: command-line options, percentiles, and the Python worker process
// that times the Python client on request (one JSON command a line, one JSON answer a line).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The number given as `--name N` on the command line, or `fallback`. */
export function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export interface PythonWorker {
  /** Send one command, wait for its answer. */
  ask(command: unknown): Promise<any>;
  stop(): void;
}

/** `bench/<script>` run by $NUCLEUS_PYTHON (default python3). */
export function pythonWorker(script: string): PythonWorker {
  const python = process.env["NUCLEUS_PYTHON"] || "python3";
  const worker = spawn(python, [fileURLToPath(new URL(`../../bench/${script}`, import.meta.url))], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: worker.stdout })[Symbol.asyncIterator]();
  return {
    async ask(command: unknown): Promise<any> {
      worker.stdin.write(`${JSON.stringify(command)}\n`);
      const next = await lines.next();
      if (next.done) throw new Error("the Python worker stopped");
      return JSON.parse(next.value);
    },
    stop(): void {
      worker.stdin.end();
    },
  };
}
