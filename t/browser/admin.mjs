// The admin console in a real browser: three people sign in through the
// demo's form and get keys, the stand-in for OpenAI reports what the keys
// cost, and the administrator (Basic authentication) sees them by spend,
// finds whose a leaked key is without the page or the URL ever showing it,
// and revokes it with its button; no Content-Security-Policy violation on
// the way. Prints TAP; BASE is the demo server, SHOTS a folder for pictures.
import { broke, finish, launch, ok } from './tap.mjs';

const base = process.env.BASE;
const shots = process.env.SHOTS;
// What scripts/run gives the demo's administrator.
const admin = { username: 'admin', password: 'demo-admin' };

// Who signs in, and what each of their keys costs this month.
const people = [
  { email: 'ada.lovelace@example.com', costs: [3.8] },
  { email: 'grace.hopper@example.com', costs: [1.35, 0.5] },
  { email: 'alan.turing@example.com', costs: [0.12] },
];
const usd = (n) => `$${n.toFixed(2)}`;

function watchCsp(context, violations) {
  return Promise.all([
    context.exposeFunction('reportViolation', (v) => violations.push(v)),
    context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        window.reportViolation(`${e.violatedDirective} ${e.blockedURI}`);
      });
    }),
  ]);
}

// A sign-in through the demo provider's form; the key the key page shows.
async function newKey(page, email) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login_hint');
  await page.fill('#login_hint', email);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return ((await page.textContent('#key')) || '').trim();
}

async function consoleRows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
}

const browser = await launch();
try {
  console.log('1..18');

  // Each person in a browser of their own: their keys, and their ids on My keys.
  for (const person of people) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const page = await context.newPage();
    person.keys = [];
    for (let i = 0; i < person.costs.length; i++) person.keys.push(await newKey(page, person.email));
    await page.goto(`${base}/keys`);
    person.ids = await page.$$eval('#keys tbody tr td:first-child',
                                   (tds) => tds.map((td) => td.textContent.trim()));
    await context.close();
  }
  ok(people.every((p) => p.keys.every((k) => k.startsWith('sk-demo-')) &&
                         p.ids.length === p.costs.length),
     'three people sign in through the form and get their keys');

  // What the stand-in for OpenAI reports for each key, once polled.
  for (const person of people) {
    for (const [i, id] of person.ids.entries()) {
      const res = await fetch(`${base}/fake/usage`, {
        method: 'POST',
        body: JSON.stringify({ service_account_id: id, cost_usd: person.costs[i],
                               requests: 40 + 17 * i, input_tokens: 182000, output_tokens: 31000 }),
      });
      if (!res.ok) throw new Error(`recording usage: ${res.status}`);
    }
  }

  // (A page of Chromium's shows no 401: it fails the navigation instead.)
  const anonymous = await browser.newContext();
  const refused = await anonymous.request.get(`${base}/admin`);
  ok(refused.status() === 401 && /^Basic /.test(refused.headers()['www-authenticate'] || ''),
     `without credentials the console answers 401 and asks for them (${refused.status()})`);
  await anonymous.close();

  const context = await browser.newContext({ viewport: { width: 1100, height: 760 },
                                             httpCredentials: admin });
  const violations = [];
  await watchCsp(context, violations);
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) violations.push(msg.text());
  });

  // Until a usage poll has reported every person's spend.
  const expected = people.map((p) => [p.email, String(p.costs.length),
                                      usd(p.costs.reduce((a, b) => a + b, 0))]);
  const shown = (rows) => expected.map(([email]) => {
    const row = rows.find((r) => r[0] === email);
    return row ? row.slice(0, 3) : null;
  });
  const settled = (rows) => JSON.stringify(shown(rows)) === JSON.stringify(expected);
  let response = await page.goto(`${base}/admin`);
  let rows = await consoleRows(page, '#people');
  for (let tries = 0; tries < 60 && !settled(rows); tries++) {
    await page.waitForTimeout(500);
    response = await page.goto(`${base}/admin`);
    rows = await consoleRows(page, '#people');
  }
  ok(response.status() === 200 && ((await page.textContent('body')) || '').includes('admin'),
     'with them it answers and names the administrator');
  ok(settled(rows), `it lists each person with their live keys and spend (${JSON.stringify(shown(rows))})`);
  const spends = rows.map((r) => Number(r[2].replace(/[$,]/g, '')));
  ok(rows.length >= 3 && spends.every((s, i) => i === 0 || spends[i - 1] >= s),
     `highest spend first (${spends.join(', ')})`);
  const order = rows.map((r) => r[0]).filter((e) => people.some((p) => p.email === e));
  ok(JSON.stringify(order) === JSON.stringify(people.map((p) => p.email)),
     `so the three come in the order of their spend (${order.join(', ')})`);
  ok(rows.every((r) => r[3] === '$5.00'), 'each against the demo budget of $5.00');

  // A leaked key pasted into the search box.
  const [ada, grace] = people;
  const leaked = ada.keys[0];
  await page.fill('#q', leaked);
  await Promise.all([page.waitForNavigation(), page.click('#search button')]);
  const found = await consoleRows(page, '#keys');
  ok(found.length === 1 && found[0][0] === ada.email && found[0][1].includes(ada.ids[0]),
     `a whole key value pasted into the search finds its owner (${found.map((r) => r[0])})`);
  ok(found.length === 1 && found[0][6] === usd(ada.costs[0]), 'and what the key cost');
  const html = await page.content();
  ok(!html.includes(leaked) && !html.includes(leaked.slice(11)),
     'the page shows neither the key nor its hidden part');
  ok(!page.url().includes(leaked.slice(8)) && !page.url().includes('q='),
     `nor does the URL (${page.url()})`);
  ok((await page.inputValue('#q')) === '', 'the search box does not keep it');
  const named = (await page.textContent('#found')) || '';
  ok(named.includes(`...${leaked.slice(-4)}`) && !named.includes(leaked.slice(8, -4)),
     `the search is named by the key's ends only (${named})`);
  if (shots) await page.screenshot({ path: `${shots}/admin.png`, fullPage: true });

  await Promise.all([page.waitForNavigation(), page.click('#keys tbody tr:first-child button')]);
  const message = (await page.textContent('#message')) || '';
  ok(message.includes('Revoked 1 key') && message.includes(ada.ids[0]),
     `the Revoke button revokes the key and says so (${message})`);
  // Whether a key is live comes from the usage poll: until the next one
  // has listed the project, a search may still name the revoked key.
  let after = '';
  for (let tries = 0; tries < 40 && !after.includes('No live key matches'); tries++) {
    if (tries) await page.waitForTimeout(500);
    await page.fill('#q', ada.ids[0]);
    await Promise.all([page.waitForNavigation(), page.click('#search button')]);
    after = (await page.textContent('#found')) || '';
  }
  ok((await page.$$('#keys tbody tr')).length === 0 && after.includes('No live key matches'),
     `the revoked key is gone from a search by its id (${after})`);
  let adaRow = [];
  for (let tries = 0; tries < 20 && adaRow[1] !== '0'; tries++) {
    if (tries) await page.waitForTimeout(500);
    await page.goto(`${base}/admin`);
    adaRow = (await consoleRows(page, '#people')).find((r) => r[0] === ada.email) || [];
  }
  ok(adaRow[1] === '0' && adaRow[2] === usd(ada.costs[0]),
     `its owner holds no live key, and what it cost still counts (${adaRow.join(', ')})`);
  await page.fill('#q', grace.email);
  await Promise.all([page.waitForNavigation(), page.click('#search button')]);
  const kept = await consoleRows(page, '#keys');
  ok(kept.length === 2 && kept.every((r) => r[0] === grace.email),
     'another person\'s keys are untouched');
  ok(violations.length === 0, `no Content-Security-Policy violation (${violations.join('; ')})`);
} catch (err) {
  broke(err);
} finally {
  await browser.close();
}
finish();
