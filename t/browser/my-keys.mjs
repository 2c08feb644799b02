// My keys in a real browser: sign in through the demo's form with a chosen
// lifetime, see the key page, open My keys, get a second key, revoke one
// with its button and see it gone; no Content-Security-Policy violation on
// the way. Prints TAP; BASE is the demo server, SHOTS a folder for pictures.
import { broke, finish, launch, ok } from './tap.mjs';

const base = process.env.BASE;
const shots = process.env.SHOTS;

async function signInThroughForm(page, email) {
  await page.waitForSelector('#login_hint');
  await page.fill('#login_hint', email);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const violations = [];
  await context.exposeFunction('reportViolation', (v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.reportViolation(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
  });

  console.log('1..14');
  await page.goto(`${base}/keys`);
  ok(await page.isVisible('#sign-in'), 'My keys without a session offers a sign-in');
  await page.selectOption('#ttl', { label: '8 hours' });
  await Promise.all([page.waitForNavigation(), page.click('#new-key button')]);
  await signInThroughForm(page, 'demo@example.com');
  const key = (await page.textContent('#key')) || '';
  ok(key.startsWith('sk-demo-'), 'the demo form signs in and the key page shows a key');
  ok(((await page.textContent('#lifetime')) || '').includes('in 8 hours'),
     'the key lives the lifetime picked');
  ok(((await page.textContent('#local')) || '').length > 0, 'the expiry shows in local time');
  if (shots) await page.screenshot({ path: `${shots}/key-page.png` });

  await Promise.all([page.waitForNavigation(), page.click('#my-keys')]);
  let rows = await page.$$eval('#keys tbody tr', (trs) => trs.map((tr) => tr.textContent));
  ok(rows.length === 1, 'My keys lists the key');
  ok(!(await page.content()).includes(key), 'without its value');

  await page.selectOption('#ttl', { label: '1 hour' });
  await Promise.all([page.waitForNavigation(), page.click('#new-key button')]);
  await signInThroughForm(page, 'demo@example.com');
  ok(((await page.textContent('#lifetime')) || '').includes('in 1 hour'), 'a second key, for an hour');
  await Promise.all([page.waitForNavigation(), page.click('#my-keys')]);
  rows = await page.$$eval('#keys tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
  ok(rows.length === 2, 'My keys lists both');

  // What the stand-in for OpenAI reports for each key, once polled.
  for (const [i, id] of rows.entries()) {
    const res = await fetch(`${base}/fake/usage`, {
      method: 'POST',
      body: JSON.stringify({ service_account_id: id.trim(), requests: 12 + i, input_tokens: 48000,
                             output_tokens: 9100, cost_usd: 0.37 + i }),
    });
    if (!res.ok) throw new Error(`recording usage: ${res.status}`);
  }
  // Until a poll after the recording: one before it shows $0.00.
  let costs = [];
  const polled = () => costs.length === 2 && costs.includes('$0.37') && costs.includes('$1.37');
  for (let tries = 0; tries < 60 && !polled(); tries++) {
    await page.waitForTimeout(500);
    await page.goto(`${base}/keys`);
    costs = await page.$$eval('#keys tbody tr td:nth-child(7)', (tds) => tds.map((td) => td.textContent));
  }
  ok(polled(),
     `My keys shows what each key cost once usage is polled (${costs.join(', ')})`);
  ok(((await page.textContent('#spend')) || '').includes('$1.74') &&
     ((await page.textContent('#spend')) || '').includes('$5.00'),
     'and the spend this month against the budget');
  if (shots) await page.screenshot({ path: `${shots}/my-keys.png`, fullPage: true });

  const first = rows[0];
  await Promise.all([page.waitForNavigation(),
                     page.click(`#keys tbody tr:first-child button`)]);
  ok(((await page.textContent('#message')) || '').includes('Revoked 1 key.'),
     'the Revoke button revokes and the page says so');
  rows = await page.$$eval('#keys tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
  ok(rows.length === 1 && !rows.includes(first), 'the revoked key is gone from the list');
  await page.goto(`${base}/keys`);
  rows = await page.$$eval('#keys tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
  ok(rows.length === 1 && !rows.includes(first), 'and stays gone');
  if (shots) await page.screenshot({ path: `${shots}/my-keys-after.png` });
  ok(violations.length === 0, `no Content-Security-Policy violation (${violations.join('; ')})`);
} catch (err) {
  broke(err);
} finally {
  await browser.close();
}
finish();
