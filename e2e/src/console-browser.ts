/// <reference lib="dom" />
/**
 * The console's browser for end-to-end tests: Debian's chromium driven by
 * playwright-core (flags from REFERENCE: headless, no background networking,
 * a fresh profile folder), pages that record every CSP violation and page
 * error, and the console's sign-in form filled in.
 */
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with its own profile in `profileDir` (its cookies are that profile's). */
export function launchBrowser(
  profileDir: string,
  viewport?: { width: number; height: number },
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    ...(viewport ? { viewport } : {}),
  });
}

/** A page, with the CSP violations it reports and its uncaught errors. */
export async function newPage(
  context: BrowserContext,
): Promise<{ page: Page; violations: string[]; errors: string[] }> {
  const page = await context.newPage();
  const violations: string[] = [];
  const errors: string[] = [];
  await page.exposeFunction('__cspViolation', (v: string) => violations.push(v));
  // Init scripts come from the browser's debugging protocol, not the page: CSP does not apply to them.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      (window as unknown as { __cspViolation: (v: string) => void }).__cspViolation(
        `${e.violatedDirective} ${e.blockedURI}`,
      ),
    );
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, violations, errors };
}

/** Fills in the console's sign-in form with `token` and sends it. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
