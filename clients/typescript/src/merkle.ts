/**
 * RFC 9162 Merkle tree verification with SHA-256 (docs/FORMAT.md section 7), as
 * nucleus_core/tlog_verify.py does it: inclusion (2.1.3.2), consistency (2.1.4.2) and the page
 * multi-proof of `POST /entries/query`. Every refusal is a {@link ProofError}.
 */

import { sha256 } from "@noble/hashes/sha2.js";

import { concatBytes, equalBytes } from "./bytes.js";

export const HASH_SIZE = 32;
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));
const MAX_TREE_SIZE = 2 ** 53 - 1; // every seq a JavaScript number holds exactly

export class ProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProofError";
  }
}

const LEAF = new Uint8Array([0]);
// One buffer for every interior node's input (JavaScript runs one hash at a time): no allocation.
const NODE_INPUT = new Uint8Array(1 + 2 * HASH_SIZE);
NODE_INPUT[0] = 1;

/** `SHA-256(0x00 || leaf)`; for a Nucleus ledger `leaf` is the 32 raw bytes of an entry hash. */
export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concatBytes([LEAF, leaf]));
}

/** `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    return sha256(concatBytes([NODE_INPUT.subarray(0, 1), left, right]));
  }
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 1 + HASH_SIZE);
  return sha256(NODE_INPUT);
}

function checkHash(value: Uint8Array, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) throw new ProofError(`${what} is not ${HASH_SIZE} bytes`);
  return value;
}

function checkCount(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_TREE_SIZE) {
    throw new ProofError(`${what} is not an integer from 0 to 2^53-1`);
  }
  return value;
}

function checkProof(proof: readonly Uint8Array[], what: string): Uint8Array[] {
  if (!Array.isArray(proof)) throw new ProofError(`${what} is a list of hashes`);
  return proof.map((p, i) => checkHash(p, `${what} element ${i}`));
}

// Sizes and indices up to 2^53: halving by division keeps them exact where >>> would not.
const odd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** Check that leaf hash `leaf` is leaf `index` of the tree of `size` with root `root` (RFC 9162 2.1.3.2). */
export function verifyInclusion(
  leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array,
): void {
  checkHash(leaf, "the leaf hash");
  checkHash(root, "the root hash");
  const path = checkProof(proof, "the inclusion proof");
  checkCount(index, "the leaf index");
  checkCount(size, "the tree size");
  if (index >= size) throw new ProofError(`the leaf index ${index} is not below the tree size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new ProofError("the inclusion proof has more hashes than the tree size allows");
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the inclusion proof has fewer hashes than the tree size needs");
  if (!equalBytes(r, root)) throw new ProofError("the inclusion proof does not lead to the root hash");
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * Check that each of `leaves` (leaf hashes) is leaf `indices[i]` (strictly increasing) of the tree
 * of `size` with root `root`, by one proof for all: walking MTH(D[start:end]) from the whole tree
 * down, a range holding none of the leaves takes the proof's next hash, a range of one leaf is that
 * leaf, any other range splits at RFC 9162's k, left first (tlog_verify.verify_multi_inclusion).
 */
export function verifyMultiInclusion(
  leaves: readonly Uint8Array[], indices: readonly number[], size: number, proof: readonly Uint8Array[], root: Uint8Array,
): void {
  checkHash(root, "the root hash");
  checkCount(size, "the tree size");
  const given = leaves.map((leaf, i) => checkHash(leaf, `leaf hash ${i}`));
  const path = checkProof(proof, "the inclusion proof");
  if (!Array.isArray(indices) || indices.length !== given.length || given.length === 0) {
    throw new ProofError("one leaf index per leaf hash, at least one, is needed");
  }
  const order = indices.map((index) => checkCount(index, "a leaf index"));
  for (let i = 1; i < order.length; i++) {
    if ((order[i] as number) <= (order[i - 1] as number)) throw new ProofError("the leaf indices are not strictly increasing");
  }
  const last = order[order.length - 1] as number;
  if (last >= size) throw new ProofError(`the leaf index ${last} is not below the tree size ${size}`);
  let next = 0;
  const mth = (start: number, end: number, lo: number, hi: number): Uint8Array => {
    if (lo === hi) {
      const value = path[next++];
      if (value === undefined) throw new ProofError("the inclusion proof has fewer hashes than the leaves and tree size need");
      return value;
    }
    if (end - start === 1) return given[lo] as Uint8Array;
    const k = largestPowerOfTwoBelow(end - start);
    let mid = lo;
    while (mid < hi && (order[mid] as number) < start + k) mid++;
    return nodeHash(mth(start, start + k, lo, mid), mth(start + k, end, mid, hi));
  };
  const computed = mth(0, size, 0, order.length);
  if (next !== path.length) throw new ProofError("the inclusion proof has more hashes than the leaves and tree size need");
  if (!equalBytes(computed, root)) throw new ProofError("the inclusion proof does not lead to the root hash");
}

/**
 * Check that the tree of `second` with root `secondRoot` extends the tree of `first` with root
 * `firstRoot` (RFC 9162 2.1.4.2; equal sizes: empty proof and equal roots; from 0: empty proof).
 */
export function verifyConsistency(
  first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: readonly Uint8Array[],
): void {
  checkHash(firstRoot, "the first root hash");
  checkHash(secondRoot, "the second root hash");
  const path = checkProof(proof, "the consistency proof");
  checkCount(first, "the first tree size");
  checkCount(second, "the second tree size");
  if (first > second) throw new ProofError(`the first tree size ${first} is larger than the second ${second}`);
  if (first === 0 || second === 0) {
    if (!equalBytes(firstRoot, EMPTY_ROOT) || (second === 0 && !equalBytes(secondRoot, EMPTY_ROOT))) {
      throw new ProofError("the root hash of the empty tree is SHA-256 of the empty string");
    }
    if (path.length) throw new ProofError("a consistency proof from the empty tree is empty");
    return;
  }
  if (first === second) {
    if (path.length) throw new ProofError("a consistency proof between equal tree sizes is empty");
    if (!equalBytes(firstRoot, secondRoot)) throw new ProofError("the two tree heads have the same size and different root hashes");
    return;
  }
  if (path.length === 0) throw new ProofError("the consistency proof is empty");
  if (isPowerOfTwo(first)) path.unshift(firstRoot);
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError("the consistency proof has more hashes than the tree sizes allow");
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the consistency proof has fewer hashes than the tree sizes need");
  if (!equalBytes(fr, firstRoot)) throw new ProofError("the consistency proof does not lead to the first root hash");
  if (!equalBytes(sr, secondRoot)) throw new ProofError("the consistency proof does not lead to the second root hash");
}
