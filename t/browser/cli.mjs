// openaikey in a real browser: the helper prints its sign-in address, the
// browser signs in through the demo's form and really follows the callback's
// redirect to the helper's loopback listener; the key reaches the terminal
// and no page or address the browser saw holds it. Prints TAP; BASE is the
// demo server, CLI the helper, SHOTS a folder for pictures.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { broke, finish, launch, ok } from './tap.mjs';

const base = process.env.BASE;
const shots = process.env.SHOTS;

// Runs the helper; resolves its address once printed, and its end.
function startHelper(cache) {
  const child = spawn(process.env.CLI, ['login', `${base}/`, '--no-browser', '--timeout', '120'],
                      { env: { ...process.env, XDG_CACHE_HOME: cache, no_proxy: '127.0.0.1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const url = new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = stderr.match(/^\s+(http:\/\/\S+)$/m);
      if (m) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`openaikey ended early: ${stderr}`)));
  });
  const end = new Promise((resolve) => {
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  return { url, end, child };
}

const cache = mkdtempSync(join(tmpdir(), 'okey-cli-cache-'));
const browser = await launch();
const helper = startHelper(cache);
const timer = setTimeout(() => helper.child.kill('SIGKILL'), 150000);
try {
  console.log('1..7');
  const page = await (await browser.newContext({ viewport: { width: 900, height: 500 } })).newPage();
  const seen = [];
  page.on('response', async (res) => {
    seen.push(res.url());
    try { seen.push(await res.text()); } catch { /* redirects have no body */ }
  });
  const url = await helper.url;
  const port = new URL(url).searchParams.get('cli_port');
  await page.goto(url);
  await page.waitForSelector('#login_hint');
  await page.fill('#login_hint', 'demo@example.com');
  await Promise.all([page.waitForURL(`http://127.0.0.1:${port}/**`), page.click('button[type=submit]')]);
  ok(new URL(page.url()).host === `127.0.0.1:${port}`, 'the browser follows the redirect to the helper\'s listener');
  ok(((await page.textContent('h1')) || '') === 'Key sent to your terminal', 'which says the key went to the terminal');
  if (shots) await page.screenshot({ path: `${shots}/cli-sent.png` });
  const result = await helper.end;
  ok(result.code === 0, `the helper ends with 0 (${result.stderr.trim().split('\n').pop()})`);
  const m = result.stdout.match(/^export OPENAI_API_KEY='(sk-demo-[A-Za-z0-9_-]+)'\n$/);
  ok(m, 'and prints the export line');
  const key = m ? m[1] : 'no key';
  ok(!seen.some((text) => text.includes(key)) && !(await page.content()).includes(key),
     `no page or address the browser saw holds the key (${seen.length / 2} responses)`);
  const file = join(cache, 'openaikey');
  ok((statSync(file).mode & 0o777) === 0o700, 'the cache directory is mode 0700');
  const again = spawn(process.env.CLI, ['key'], { env: { ...process.env, XDG_CACHE_HOME: cache } });
  let out = '';
  again.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((resolve) => again.on('exit', resolve));
  ok(code === 0 && out === `${key}\n`, 'openaikey key then prints the cached key');
} catch (err) {
  broke(err);
} finally {
  clearTimeout(timer);
  helper.child.kill();
  await browser.close();
  rmSync(cache, { recursive: true, force: true });
}
finish();
