/**
 * Screenshot a report.html with headless Chromium (Debian: `apt-get install -y chromium`).
 *
 *   npx tsx scripts/screenshot.ts [reports/quick/report.html] [out.png] [width] [height]
 *
 * Checks that the page renders (plots and tables are inline SVG / HTML, no network) and leaves
 * a PNG to look at or put in the README. Exits 0 with a note when chromium is not installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [page = 'reports/quick/report.html', out = 'reports/quick/report.png', width = '1280', height = '3000'] =
  process.argv.slice(2);

function findChromium(): string | undefined {
  for (const c of [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome']) {
    if (!c) continue;
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

const chromium = findChromium();
if (!chromium) {
  process.stderr.write('screenshot: chromium not found (apt-get install -y chromium); skipped\n');
  process.exit(0);
}
if (!existsSync(page)) {
  process.stderr.write(`screenshot: ${page} does not exist (run npm start first)\n`);
  process.exit(2);
}
const r = spawnSync(
  chromium,
  [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--hide-scrollbars',
    `--window-size=${width},${height}`,
    `--screenshot=${resolve(out)}`,
    pathToFileURL(resolve(page)).href,
  ],
  { encoding: 'utf8', timeout: 60_000 },
);
if (r.status !== 0 || !existsSync(out) || statSync(out).size < 10_000) {
  process.stderr.write(`screenshot: chromium failed (status ${r.status}): ${r.stderr?.slice(-500)}\n`);
  process.exit(1);
}
process.stdout.write(`screenshot: wrote ${out} (${statSync(out).size} bytes)\n`);
