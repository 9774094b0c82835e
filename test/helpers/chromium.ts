// Headless Chromium for the browser tests (Debian's `chromium`; .ci/run installs it when missing).
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Whether Chromium is here; in CI its absence is an error (the suite must not skip silently). */
export function chromiumAvailable(testFile: string): boolean {
  const available = existsSync(CHROMIUM);
  if (!available && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
  if (!available) console.warn(`${testFile} skipped: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
  return available;
}

/** Headless Chromium with WebGL on SwiftShader, no background network traffic. */
export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Collect page errors, console errors and failed or >= 400 responses into `problems`. */
export function watchPage(page: Page, problems: string[]): void {
  page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
}
