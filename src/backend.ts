/**
 * Backend choice, in Node and in browsers.
 *
 *   Node:     tensorflow (tfjs-node, when the user installed it and it loads) -> wasm -> cpu
 *   browser:  webgpu (when @tensorflow/tfjs-backend-webgpu is imported and the browser supports
 *             it) -> webgl -> wasm -> cpu
 *
 * `initBackend(preferred?)` with a backend named (or CURVATURE_BACKEND in Node) uses exactly that
 * backend or throws an error saying why: a requested backend is never silently replaced by
 * another. Without a name the first backend of the platform's list that initialises is used.
 *
 * The wasm backend (@tensorflow/tfjs-backend-wasm, a peer dependency) loads its .wasm binaries
 * at run time. Node finds them in the package; a browser bundle must serve them and say where:
 * `initBackend('wasm', { wasmPaths: '/assets/tfjs-wasm/' })` (tfjs's `setWasmPaths`; docs/browser.md
 * shows esbuild, Vite and webpack setups).
 *
 * The library never imports a backend eagerly at module load beyond registering wasm, so that
 * importing it prints nothing and leaves the user's backend alone until they (or a curvature
 * command) call `initBackend`. Nothing here reads `process` unguarded (browser-safe).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { silenceCpuFirstUseNotice } from './tfjs-internals/engine.js';
import { installWasmKernels } from './tfjs-internals/wasm-kernels.js';

export type BackendName = 'tensorflow' | 'webgpu' | 'webgl' | 'wasm' | 'cpu';
const KNOWN: readonly BackendName[] = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'];

export interface InitBackendOptions {
  /**
   * Where the wasm backend's .wasm files are served (a URL prefix ending in '/', or a map from
   * file name to URL), passed to tfjs's `setWasmPaths` before the wasm backend initialises.
   */
  wasmPaths?: string | Record<string, string>;
}

/** True in a browser or a web worker (tfjs's own platform detection). */
function inBrowser(): boolean {
  return tf.env().getBool('IS_BROWSER');
}

/** The platform's backends, in order of preference. */
export function platformBackends(): BackendName[] {
  return inBrowser() ? ['webgpu', 'webgl', 'wasm', 'cpu'] : ['tensorflow', 'wasm', 'cpu'];
}

function environmentBackend(): string | undefined {
  const env = typeof process !== 'undefined' ? process.env : undefined;
  const v = env?.CURVATURE_BACKEND;
  return v === undefined || v === '' ? undefined : v;
}

async function tryTfjsNode(): Promise<boolean> {
  try {
    // Installed by the user (it downloads libtensorflow, which some machines cannot).
    const mod = '@tensorflow/tfjs-node';
    await import(/* @vite-ignore */ /* webpackIgnore: true */ mod);
    return tf.findBackendFactory('tensorflow') != null;
  } catch {
    return false;
  }
}

/** Why `name` cannot be used here, or undefined when it initialised and is now active. */
async function trySet(name: BackendName): Promise<string | undefined> {
  if (name === 'tensorflow') {
    if (inBrowser()) return 'tfjs-node runs only in Node';
    if (!(await tryTfjsNode())) return '@tensorflow/tfjs-node is not installed or does not load';
  }
  if ((name === 'webgl' || name === 'webgpu') && !inBrowser()) return `${name} is only available in a browser`;
  if (name === 'webgpu' && tf.findBackendFactory('webgpu') == null) {
    return "import '@tensorflow/tfjs-backend-webgpu' (installed by you) before calling initBackend";
  }
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (name === 'webgpu' && nav?.gpu === undefined) {
    return 'this browser has no WebGPU (navigator.gpu is missing)';
  }
  let ok = false;
  try {
    ok = await tf.setBackend(name);
    if (ok) await tf.ready();
  } catch (e) {
    return `it failed to initialise (${e instanceof Error ? e.message : String(e)})`;
  }
  if (!ok || tf.getBackend() !== name) {
    return name === 'wasm' && inBrowser()
      ? "it failed to initialise: are its .wasm files served? Pass their URL prefix as initBackend('wasm', { wasmPaths })"
      : 'it failed to initialise';
  }
  // The cpu backend greets Node users with advice to install tfjs-node on first use; here
  // cpu was chosen deliberately (or tfjs-node is unavailable), so the notice is only noise.
  if (name === 'cpu') silenceCpuFirstUseNotice();
  return undefined;
}

/**
 * Select the tfjs backend and return the name actually in use.
 *
 * With `preferred` (or, in Node, env CURVATURE_BACKEND) that backend or an error naming why it
 * is unavailable; without, the first of `platformBackends()` that initialises. An unknown name
 * throws.
 */
export async function initBackend(preferred?: string, options: InitBackendOptions = {}): Promise<BackendName> {
  const fromArgument = preferred !== undefined && preferred !== '';
  const wanted = fromArgument ? preferred : environmentBackend();
  if (wanted !== undefined && !KNOWN.includes(wanted as BackendName)) {
    throw new Error(
      `Unknown backend '${wanted}': expected one of ${KNOWN.join(', ')} (from ${
        fromArgument ? 'the preferred argument' : 'CURVATURE_BACKEND'
      }).`,
    );
  }
  if (options.wasmPaths !== undefined) setWasmPaths(options.wasmPaths);
  installWasmKernels();
  if (wanted !== undefined) {
    const why = await trySet(wanted as BackendName);
    if (why !== undefined) throw new Error(`Backend '${wanted}' is unavailable: ${why}.`);
    return wanted as BackendName;
  }
  const tried: string[] = [];
  for (const name of platformBackends()) {
    const why = await trySet(name);
    if (why === undefined) return name;
    tried.push(`${name}: ${why}`);
  }
  throw new Error(`No tfjs backend could be initialised (${tried.join('; ')}).`);
}

/** The backend currently in use, as tfjs names it. */
export function currentBackend(): string {
  return tf.getBackend();
}
