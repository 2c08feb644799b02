// What the browser tests share: TAP lines, and Debian's Chromium headless.
import { chromium } from 'playwright-core';

let n = 0;
let failed = 0;

export function ok(cond, what) {
  n += 1;
  if (!cond) failed += 1;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
}

// A test that threw: one more failure, with the error's first line.
export function broke(err) {
  ok(false, err.message.split('\n')[0]);
}

export function finish() {
  process.exit(failed ? 1 : 0);
}

export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update'],
  });
}
