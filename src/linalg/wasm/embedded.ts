/**
 * Synchronous instantiation of the project's embedded WebAssembly modules (src/linalg's float64
 * kernels, Shampoo's float32 kernels): base64 text in a .ts module, so they load from src/ and
 * dist/, in Node and in bundlers, without file access. The few WebAssembly JS API members used
 * are declared here (tsconfig has no DOM lib).
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

function decodeBase64(s: string): Uint8Array {
  const g = globalThis as { Buffer?: { from(s: string, enc: string): Uint8Array }; atob?: (s: string) => string };
  if (g.Buffer) return new Uint8Array(g.Buffer.from(s, 'base64'));
  const bin = (g.atob as (s: string) => string)(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Compile and instantiate a base64-embedded module (no imports); throws when WebAssembly is
 * unavailable or the module does not compile (e.g. no SIMD).
 */
export function instantiateEmbedded<T>(base64: string): T {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) throw new Error('WebAssembly is not available');
  return new api.Instance(new api.Module(decodeBase64(base64)), {}).exports as T;
}
