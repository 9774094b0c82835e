/**
 * Backend choice: tfjs-node ('tensorflow') when it loads, else wasm, else cpu.
 *
 * The library never imports a backend eagerly at module load beyond registering wasm, so that
 * importing `curvature` prints nothing and leaves the user's backend alone until they (or a
 * curvature command) call `initBackend`.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
const KNOWN: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

async function tryTfjsNode(): Promise<boolean> {
  try {
    // Optional dependency: absent on machines that cannot download libtensorflow.
    const mod = '@tensorflow/tfjs-node';
    await import(/* @vite-ignore */ mod);
    return tf.findBackendFactory('tensorflow') != null;
  } catch {
    return false;
  }
}

async function trySet(name: BackendName): Promise<boolean> {
  if (name === 'tensorflow' && !(await tryTfjsNode())) return false;
  try {
    const ok = await tf.setBackend(name);
    if (ok) await tf.ready();
    // The cpu backend greets Node users with advice to install tfjs-node on first use; here
    // cpu was chosen deliberately (or tfjs-node is unavailable), so the notice is only noise.
    if (ok && name === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
    return ok && tf.getBackend() === name;
  } catch {
    return false;
  }
}

/**
 * Select the tfjs backend and return the name actually in use.
 *
 * Order: `preferred` (or env CURVATURE_BACKEND) first, then tensorflow -> wasm -> cpu.
 * An unknown name throws; a known backend that fails to load falls through to the next one.
 */
export async function initBackend(preferred?: string): Promise<BackendName> {
  const wanted = preferred ?? process.env.CURVATURE_BACKEND ?? undefined;
  if (wanted !== undefined && wanted !== '' && !KNOWN.includes(wanted as BackendName)) {
    throw new Error(
      `Unknown backend '${wanted}': expected one of ${KNOWN.join(', ')} (from ${
        preferred !== undefined ? 'the preferred argument' : 'CURVATURE_BACKEND'
      }).`,
    );
  }
  const order: BackendName[] = wanted ? [wanted as BackendName] : [];
  for (const b of KNOWN) if (!order.includes(b)) order.push(b);
  for (const name of order) {
    if (await trySet(name)) return name;
  }
  throw new Error('No tfjs backend could be initialised (tried tensorflow, wasm, cpu).');
}

/** The backend currently in use, as curvature names it. */
export function currentBackend(): string {
  return tf.getBackend();
}
