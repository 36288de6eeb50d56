/**
 * Trusted state in a file (Node.js only: import from "@nucleus-ledger/client/file-store"). The file
 * holds the checkpoint note's bytes and nothing else, as the Python client's FileTrustedState
 * writes it, so the same file serves both and `nucleus verify --checkpoint` reads it.
 *
 * Saving writes a temporary file in the same directory, fsyncs it and renames it over the path
 * (a crash leaves the old state or the new one), and never replaces a larger checkpoint another
 * client saved meanwhile. Unlike the Python store it takes no advisory lock between processes
 * (Node has no flock): two processes saving at the same instant may each keep their own.
 */

import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

import { TrustedStateError } from "./errors.js";
import { sizeOf, type TrustedStateStore } from "./trusted.js";

export class FileTrustedState implements TrustedStateStore {
  readonly path: string;

  constructor(path: string) {
    if (typeof path !== "string" || !path) throw new TrustedStateError("a trusted state file needs a path");
    this.path = path;
  }

  toString(): string {
    return `FileTrustedState(${JSON.stringify(this.path)})`;
  }

  async #read(): Promise<string | null> {
    let raw: Buffer;
    try {
      raw = await readFile(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new TrustedStateError(`trusted state file ${JSON.stringify(this.path)}: cannot be read (${(err as Error).message})`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch {
      throw new TrustedStateError(`trusted state file ${JSON.stringify(this.path)}: is not UTF-8, not a checkpoint`);
    }
  }

  async load(): Promise<string | null> {
    const note = await this.#read();
    if (note === "") {
      throw new TrustedStateError(
        `trusted state file ${JSON.stringify(this.path)}: is empty, not a checkpoint (restore it from a copy, or remove ` +
        "it to trust the next checkpoint on its signature alone)",
      );
    }
    return note;
  }

  async save(note: string): Promise<void> {
    const size = sizeOf(note);
    if (size === null) {
      throw new TrustedStateError(`trusted state file ${JSON.stringify(this.path)}: refusing to save something that is not a checkpoint note`);
    }
    const current = await this.#read();
    if (current) {
      const currentSize = sizeOf(current);
      if (currentSize !== null && currentSize > size) return; // another client advanced further: never move back
    }
    const tmp = join(dirname(this.path), `.${basename(this.path)}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      const handle = await open(tmp, "wx", 0o600);
      try {
        await handle.writeFile(note, "utf-8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new TrustedStateError(`trusted state file ${JSON.stringify(this.path)}: cannot be written (${(err as Error).message})`);
    }
    try {
      const dir = await open(dirname(this.path), "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // a directory that cannot be opened for fsync (not POSIX): the rename stands
    }
  }
}
