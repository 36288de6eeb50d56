/**
 * A `fetch` for Node.js over `node:http` / `node:https` with keep-alive connections (Node only:
 * import from "@nucleus-ledger/client/node-http"). Pass it as `createClient({fetch: nodeHttpFetch()})`:
 * the global `fetch` (undici) costs about a millisecond more per request on loopback (see
 * BENCHMARKS.md, "TypeScript client"). It does what the client needs of fetch: a method, headers,
 * a string or byte body, no redirects followed; the answer is a standard `Response`.
 */

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

export interface NodeHttpFetchOptions {
  /** Most sockets kept per host (default 8). */
  maxSockets?: number;
  /** Milliseconds before a request is abandoned (default 30000). */
  timeoutMs?: number;
}

function headersOf(message: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(message.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}

/** A fetch-compatible function over node:http(s) keep-alive agents of its own. */
export function nodeHttpFetch(options: NodeHttpFetchOptions = {}): typeof globalThis.fetch {
  const maxSockets = options.maxSockets ?? 8;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const agents = { "http:": new HttpAgent({ keepAlive: true, maxSockets }), "https:": new HttpsAgent({ keepAlive: true, maxSockets }) };
  const fetchLike = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    if (input instanceof Request) throw new TypeError("nodeHttpFetch takes a URL and an init object, not a Request");
    const url = new URL(String(input));
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`unsupported URL ${url.href}`);
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const body = init.body;
    let payload: Uint8Array | string | undefined;
    if (typeof body === "string" || body instanceof Uint8Array) payload = body;
    else if (body !== undefined && body !== null) throw new TypeError("nodeHttpFetch sends string or Uint8Array bodies only");
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise<Response>((resolve, reject) => {
      const req = send(url, { method: init.method ?? "GET", headers, agent: agents[url.protocol as "http:" | "https:"], timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const status = res.statusCode ?? 502;
          const nobody = status === 204 || status === 205 || status === 304 || init.method === "HEAD";
          resolve(new Response(nobody ? null : Buffer.concat(chunks), { status, headers: headersOf(res) }));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer from ${url.host} within ${timeoutMs} ms`)));
      req.on("error", reject);
      init.signal?.addEventListener("abort", () => req.destroy(new Error("aborted")));
      req.end(payload);
    });
  };
  return fetchLike as typeof globalThis.fetch;
}
