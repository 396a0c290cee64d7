/**
 * End to end in a real browser: headless Chromium (Debian's `chromium` package, /usr/bin/chromium)
 * driven by playwright-core, against a gateway on 127.0.0.1 serving an in-process agency.
 * Where /usr/bin/chromium is absent (a developer machine) the test is SKIPPED, not failed:
 * install it with `apt-get install -y chromium`; CI installs it.
 */
import fs from 'node:fs'
import path from 'node:path'
import test from 'brittle'
import { chromium, type Browser, type Page } from 'playwright-core'
import { Gateway } from '../lib/index.js'
import { makeTree, openAgency } from './helpers/index.js'

const CHROMIUM = '/usr/bin/chromium'
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM)
const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

const name = HAVE_CHROMIUM
  ? 'browser: browse to a dataset, open a record, search, download a file — with and without JavaScript; untrusted data never runs'
  : `browser: SKIPPED — ${CHROMIUM} not found (apt-get install -y chromium); CI runs it`

test(name, { skip: !HAVE_CHROMIUM, timeout: 90_000 }, async (t) => {
  const { host } = await openAgency(t, 'Ministry of Records')
  const agency = await host.agency()
  await agency.createDataset('register', { description: 'who owns which parcel' })
  await agency.append('register', Array.from({ length: 75 }, (_, i) => ({ parcel: i, owner: i === 7 ? XSS : `owner-${i}` })))
  await agency.createDataset('laws', { kind: 'files', description: 'consolidated laws' })
  const src = path.join(await t.tmp(), 'laws')
  const tree = makeTree(src, 1536 * 1024)
  fs.writeFileSync(path.join(src, 'evil.html'), `<!doctype html><p id="evil">evil</p>${XSS}`)
  await agency.publish('laws', src)

  const gw = new Gateway({ reader: agency.datasets })
  t.teardown(() => gw.close(), { order: -1, force: true })
  await gw.ready()
  const base = gw.url

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close(), { order: -2, force: true })

  const offsite: string[] = []
  const watch = (page: Page): void => {
    page.setDefaultTimeout(10_000)
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) offsite.push(r.url())
    })
    page.on('dialog', (d) => {
      t.fail(`a dialog opened: ${d.message()}`)
      void d.dismiss()
    })
  }

  // 1. Without JavaScript: everything works as plain links and forms.
  const plain = await browser.newContext({ javaScriptEnabled: false, acceptDownloads: true })
  const page = await plain.newPage()
  watch(page)
  await page.goto(base + '/')
  t.is(await page.title(), 'Datasets · Data Embassy mirror')
  t.is(await page.locator('h2').first().textContent(), 'Ministry of Records')

  await page.getByRole('link', { name: 'register', exact: true }).click()
  await page.waitForURL(base + '/datasets/register')
  t.is(await page.locator('h1').textContent(), 'register', 'navigated to the dataset')
  t.is(await page.locator('tbody tr').count(), 50, 'first page of records')
  await page.getByRole('link', { name: 'Next', exact: true }).click()
  t.is(await page.locator('tbody tr').count(), 25, 'second page')
  await page.getByRole('link', { name: 'First', exact: true }).click()

  await page.getByRole('link', { name: 'Record 7', exact: true }).click()
  await page.waitForURL(base + '/datasets/register/records/7')
  t.is(await page.locator('h1').textContent(), 'Record 7', 'opened a record')
  const shown = await page.locator('#record-text').textContent()
  t.ok(shown?.includes(XSS.replace(/"/g, '\\"')), 'untrusted text shown literally')
  t.is(await page.locator('main img').count(), 0, 'no element injected')
  await page.getByRole('link', { name: 'Next record' }).click()
  t.is(await page.locator('h1').textContent(), 'Record 8')

  await page.goto(base + '/datasets/register')
  await page.getByLabel('Search records').fill('owner-4')
  await page.getByRole('button', { name: 'Search' }).click()
  await page.waitForURL(/q=owner-4/)
  const hits = await page.locator('tbody tr td.num a').allTextContents()
  t.alike(hits, ['4', '40', '41', '42', '43', '44', '45', '46', '47', '48', '49'], 'search by record text')

  await page.goto(base + '/')
  await page.getByRole('link', { name: 'laws', exact: true }).click()
  await page.getByRole('link', { name: 'acts/', exact: true }).click()
  await page.getByRole('link', { name: '2024/', exact: true }).click()
  await page.getByRole('link', { name: 'act-1.txt', exact: true }).click()
  t.is(await page.locator('h1').textContent(), 'act-1.txt', 'file page')
  const [fromFilePage] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download', exact: true }).click()])
  t.is(fromFilePage.suggestedFilename(), 'act-1.txt')
  t.alike(fs.readFileSync((await fromFilePage.path())!), tree['acts/2024/act-1.txt'], 'downloaded file byte-identical')

  await page.goto(base + '/datasets/laws/files/big/')
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download registry.bin' }).click()])
  t.alike(fs.readFileSync((await download.path())!), tree['big/registry.bin'], 'a 1.5 MiB file downloads byte-identical')
  await plain.close()

  // 2. With JavaScript on: untrusted records, names and files still never run.
  const js = await browser.newContext({ acceptDownloads: true })
  const page2 = await js.newPage()
  watch(page2)
  await page2.goto(base + '/datasets/register/records/7')
  await page2.goto(base + '/datasets/register?q=script')
  t.is(await page2.locator('tbody tr').count(), 1, 'the hostile record is found')
  t.is(await page2.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined, 'record text did not run')
  await page2.goto(base + '/api/datasets/laws/files/evil.html')
  t.is(await page2.locator('#evil').textContent(), 'evil', 'an HTML file opens')
  t.is(await page2.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined, 'its script is sandboxed')
  await js.close()
  t.alike(offsite, [], 'no request left the gateway')

  // Positive control: the same payload does run where nothing escapes or sandboxes it.
  const control = await (await browser.newContext()).newPage()
  await control.setContent(`<p>control</p>${XSS}`)
  await control.waitForFunction(() => (globalThis as { __pwned?: number }).__pwned !== undefined)
  t.pass('the payload runs when served unprotected')
})
