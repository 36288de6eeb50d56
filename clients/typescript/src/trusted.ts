/**
 * A verifying client's trusted state: the last checkpoint it verified (the signed note, as
 * served) and how it moves forward, with the rules of nucleus_core/trusted_state.py: a newer
 * checkpoint is accepted only when a trusted key signed it for the expected origin and a
 * consistency proof shows it extends the trusted one; a smaller one presented as the latest is a
 * RollbackError, one of the same size with another root (or a proof that fails) an
 * InconsistentLogError. The store is read again before each advance, so clients sharing one store
 * see each other's progress, checked as a server answer would be.
 */

import { equalBytes, bytesToHex } from "./bytes.js";
import {
  CheckpointSignatureError, InconsistentLogError, RollbackError, TrustedStateError,
} from "./errors.js";
import { ProofError, verifyConsistency } from "./merkle.js";
import { NoteError, parseCheckpoint, parseNote, verifyCheckpoint, type Checkpoint, type NoteVerifier } from "./note.js";

/** Where the trusted checkpoint is kept: the signed note's text. */
export interface TrustedStateStore {
  /** The note saved last; null when nothing was saved yet. TrustedStateError when it cannot be read. */
  load(): Promise<string | null> | string | null;
  /** Keep `note` (a verified checkpoint extending the one saved before), replacing that one. */
  save(note: string): Promise<void> | void;
}

/** Trusted state in memory, for the life of the object. */
export class MemoryTrustedState implements TrustedStateStore {
  #note: string | null;

  constructor(note: string | null = null) {
    this.#note = note;
  }

  load(): string | null {
    return this.#note;
  }

  save(note: string): void {
    this.#note = note;
  }
}

/** The minimal Storage interface (window.localStorage satisfies it). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Trusted state in a browser's `localStorage` (or any {@link KeyValueStorage}) under `key`. A
 * save never replaces a larger checkpoint another tab saved meanwhile.
 */
export class LocalStorageTrustedState implements TrustedStateStore {
  readonly key: string;
  readonly #storage: KeyValueStorage;

  constructor(key: string, storage?: KeyValueStorage) {
    const found = storage ?? (globalThis as { localStorage?: KeyValueStorage }).localStorage;
    if (found === undefined) throw new TrustedStateError("no localStorage here: give LocalStorageTrustedState a storage");
    if (typeof key !== "string" || !key) throw new TrustedStateError("a localStorage trusted state needs a key");
    this.key = key;
    this.#storage = found;
  }

  toString(): string {
    return `LocalStorageTrustedState(${JSON.stringify(this.key)})`;
  }

  load(): string | null {
    let note: string | null;
    try {
      note = this.#storage.getItem(this.key);
    } catch (err) {
      throw new TrustedStateError(`${this}: cannot be read (${(err as Error).message})`);
    }
    if (note === "") throw new TrustedStateError(`${this}: is empty, not a checkpoint`);
    return note;
  }

  save(note: string): void {
    const size = sizeOf(note);
    if (size === null) throw new TrustedStateError(`${this}: refusing to save something that is not a checkpoint note`);
    const current = this.load();
    if (current !== null) {
      const currentSize = sizeOf(current);
      if (currentSize !== null && currentSize > size) return; // never move back
    }
    try {
      this.#storage.setItem(this.key, note);
    } catch (err) {
      throw new TrustedStateError(`${this}: cannot be written (${(err as Error).message})`);
    }
  }
}

/** The tree size of a checkpoint note, unverified (null when it is not one). */
export function sizeOf(note: string): number | null {
  try {
    return parseCheckpoint(parseNote(note).text).size;
  } catch {
    return null;
  }
}

/** `fetch(oldSize, newSize)`: the consistency proof's hashes, as the server sent them. */
export type ConsistencyFetch = (oldSize: number, newSize: number) => Promise<Uint8Array[]>;

/** A further requirement on a checkpoint note already verified with the log's keys. */
export type NotePolicy = (note: string, checkpoint: Checkpoint) => void;

interface Trusted {
  checkpoint: Checkpoint;
  note: string;
}

/** The trusted state of one log (origin, keys) kept in a store. */
export class TrustedLog {
  readonly verifiers: readonly NoteVerifier[];
  readonly origin: string;
  readonly store: TrustedStateStore;
  readonly policy: NotePolicy | undefined;
  #trusted: Trusted | null = null;
  #loaded = false;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(verifiers: readonly NoteVerifier[], origin: string, store: TrustedStateStore, policy?: NotePolicy) {
    if (!verifiers.length) throw new TrustedStateError("a trusted log needs at least one verifier key");
    this.verifiers = verifiers;
    this.origin = origin;
    this.store = store;
    this.policy = policy;
  }

  /** Run `fn` after every earlier locked call (the state moves one step at a time). */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #load(consistency?: ConsistencyFetch): Promise<Trusted | null> {
    const note = await this.store.load();
    if (note === null) {
      if (this.#trusted !== null) {
        throw new TrustedStateError(
          `${String(this.store)} lost the trusted checkpoint of size ${this.#trusted.checkpoint.size} this client saved ` +
          "(removed while in use?)",
        );
      }
      return null;
    }
    if (this.#trusted !== null && note === this.#trusted.note) return this.#trusted;
    let checkpoint: Checkpoint;
    try {
      checkpoint = verifyCheckpoint(note, this.verifiers, this.origin);
    } catch (err) {
      throw new TrustedStateError(
        `${String(this.store)} does not hold a valid checkpoint of ${JSON.stringify(this.origin)} signed by the given ` +
        `keys: ${(err as Error).message} (restore it from a copy; never remove it to get past this without knowing why)`,
      );
    }
    if (this.#trusted === null) {
      this.#trusted = { checkpoint, note };
      return this.#trusted;
    }
    const mine = this.#trusted.checkpoint;
    if (checkpoint.size === mine.size && !equalBytes(checkpoint.rootHash, mine.rootHash)) {
      throw new InconsistentLogError(
        `${String(this.store)} now holds a checkpoint of ${checkpoint.size} entries with root ` +
        `${bytesToHex(checkpoint.rootHash)}, but this client trusts ${bytesToHex(mine.rootHash)} at that size: two ` +
        "histories under one key (a fork), seen by clients sharing the trusted state",
      );
    }
    if (checkpoint.size > mine.size && consistency !== undefined) {
      await this.#checkConsistent(mine, checkpoint, consistency);
      this.#trusted = { checkpoint, note };
    }
    return this.#trusted;
  }

  /** The trusted checkpoint (null before the first one was accepted). */
  async checkpoint(): Promise<Checkpoint | null> {
    return this.#locked(async () => {
      if (!this.#loaded) {
        await this.#load();
        this.#loaded = true;
      }
      return this.#trusted === null ? null : this.#trusted.checkpoint;
    });
  }

  /** `note` as a checkpoint of this log signed by a trusted key (CheckpointSignatureError otherwise). */
  verifyNote(note: string): Checkpoint {
    let checkpoint: Checkpoint;
    try {
      checkpoint = verifyCheckpoint(note, this.verifiers, this.origin);
    } catch (err) {
      if (!(err instanceof NoteError)) throw err;
      throw new CheckpointSignatureError(
        `the checkpoint of ${JSON.stringify(this.origin)} the server sent is refused: ${err.message}`,
      );
    }
    if (this.policy !== undefined) this.policy(note, checkpoint);
    return checkpoint;
  }

  /**
   * Verify `note` and relate it to the trusted checkpoint: a larger one must extend it and becomes
   * the trusted state; one of the same size must have the same root; a smaller one is a
   * RollbackError when `latest` (presented as the server's latest), else must be a prefix of the
   * trusted one. With no trusted state yet, the note becomes it on its signature alone.
   */
  async accept(note: string, consistency: ConsistencyFetch, latest = true): Promise<Checkpoint> {
    const checkpoint = this.verifyNote(note);
    return this.#locked(async () => {
      const trusted = await this.#load(consistency);
      this.#loaded = true;
      if (trusted === null) {
        await this.#save(checkpoint, note);
        return checkpoint;
      }
      const old = trusted.checkpoint;
      if (checkpoint.size < old.size) {
        if (latest) {
          throw new RollbackError(
            `the server presents a tree of ${checkpoint.size} entries, smaller than the ${old.size} already trusted for ` +
            `${JSON.stringify(this.origin)} (an older copy of the ledger, or entries removed)`,
            { trustedSize: old.size, presentedSize: checkpoint.size },
          );
        }
        await this.#checkConsistent(checkpoint, old, consistency);
      } else if (checkpoint.size === old.size) {
        if (!equalBytes(checkpoint.rootHash, old.rootHash)) {
          throw new InconsistentLogError(
            `the server presents a tree of ${checkpoint.size} entries with root ${bytesToHex(checkpoint.rootHash)}, but ` +
            `the trusted checkpoint of that size has ${bytesToHex(old.rootHash)}: two histories under one key (a fork or ` +
            "a rewrite)",
          );
        }
      } else {
        await this.#checkConsistent(old, checkpoint, consistency);
        await this.#save(checkpoint, note);
      }
      return checkpoint;
    });
  }

  async #checkConsistent(first: Checkpoint, second: Checkpoint, consistency: ConsistencyFetch): Promise<void> {
    const proof = first.size === 0 ? [] : await consistency(first.size, second.size);
    try {
      verifyConsistency(first.size, second.size, first.rootHash, second.rootHash, proof);
    } catch (err) {
      if (!(err instanceof ProofError)) throw err;
      throw new InconsistentLogError(
        `the checkpoint of ${second.size} entries is not consistent with the one of ${first.size} (${err.message}): the ` +
        "log forked or was rewritten, or the server shows different histories to different clients",
      );
    }
  }

  async #save(checkpoint: Checkpoint, note: string): Promise<void> {
    await this.store.save(note);
    this.#trusted = { checkpoint, note };
  }
}
