// Drives the OHIF viewer in Debian's Chromium (puppeteer-core, headless) against a running dicomweb server and
// reports what a user would see, as JSON on stdout. Started by tests/e2e/test_ohif.py, which stores the studies,
// serves OHIF and checks the report; this script only looks and reports.
//
// Usage: node check_viewer.cjs <plan.json>
// plan: { chromium, viewer (OHIF's base URL), server (dicomweb's root), screenshots (a directory),
//         studies: [{ uid, patientId, label, thumbnails (series with images) }] }
// Report: { studyList: { shown: [patientId...] }, studies: [{ uid, label, drawn, thumbnails, error }],
//           requests: [{ url, status }], failures: [{ url, status | error }], console: [text] }
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require(process.env.PUPPETEER_CORE || 'puppeteer-core');

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
// Every wait is bounded: a viewer that never draws is a failure with a screenshot, not a hung test.
const STEP_TIMEOUT_MS = 60000;

async function waitFor(page, predicate, arg, what) {
  try {
    await page.waitForFunction(predicate, { timeout: STEP_TIMEOUT_MS, polling: 250 }, arg);
    return null;
  } catch (error) {
    return `${what}: ${error.message.split('\n')[0]}`;
  }
}

// True once a cornerstone canvas of a viewport holds an image: pixels that are not all one value. The viewport's
// canvas is a 2D canvas (cornerstone renders off screen with WebGL or the CPU and copies the result), so its pixels
// can be read back.
function viewportDrawn() {
  for (const canvas of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) continue;
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let lo = 255;
    let hi = 0;
    for (let i = 0; i < data.length; i += 4 * 7) {
      const grey = (data[i] + data[i + 1] + data[i + 2]) / 3;
      if (grey < lo) lo = grey;
      if (grey > hi) hi = grey;
    }
    if (hi - lo > 16) return true;
  }
  return false;
}

// The study browser's thumbnails that show a decoded image (an <img> with a size); `expected` of them.
function thumbnailsDrawn(expected) {
  const images = [...document.querySelectorAll('[data-cy="study-browser-thumbnail"] img')];
  return images.filter((img) => img.complete && img.naturalWidth > 0).length >= expected;
}

async function main() {
  const report = { studyList: { shown: [] }, studies: [], requests: [], failures: [], console: [] };
  const browser = await puppeteer.launch({
    executablePath: plan.chromium,
    headless: true,
    // --no-sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start.
    // SwiftShader gives WebGL without a GPU; cornerstone falls back to the CPU where it cannot.
    args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--window-size=1400,900'],
    defaultViewport: { width: 1400, height: 900 },
  });
  try {
    const page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') report.console.push(message.text().slice(0, 500));
    });
    page.on('response', (response) => {
      const url = response.url();
      if (!url.startsWith(plan.server)) return;
      const status = response.status();
      report.requests.push({ url, status });
      if (status >= 400) report.failures.push({ url, status });
    });
    page.on('requestfailed', (request) => {
      const url = request.url();
      if (!url.startsWith(plan.server)) return;
      const error = request.failure()?.errorText || 'failed';
      // A request the viewer itself cancels (it aborts thumbnail and prefetch requests when the page changes) is
      // not a server failure; anything else is.
      if (error === 'net::ERR_ABORTED') return;
      report.failures.push({ url, error });
    });

    await page.goto(plan.viewer, { waitUntil: 'domcontentloaded', timeout: STEP_TIMEOUT_MS });
    const ids = plan.studies.map((study) => study.patientId);
    const listError = await waitFor(
      page,
      (wanted) => wanted.every((id) => document.body.innerText.includes(id)),
      ids,
      'study list',
    );
    const text = await page.evaluate(() => document.body.innerText);
    report.studyList.shown = ids.filter((id) => text.includes(id));
    if (listError) {
      report.studyList.error = listError;
      await page.screenshot({ path: path.join(plan.screenshots, 'study-list.png') });
    }

    for (const study of plan.studies) {
      const url = `${plan.viewer}/viewer?StudyInstanceUIDs=${encodeURIComponent(study.uid)}`;
      const result = { uid: study.uid, label: study.label, drawn: false, thumbnails: 0 };
      await page.goto(url, { waitUntil: 'domcontentloaded', timeout: STEP_TIMEOUT_MS });
      const drawError = await waitFor(page, viewportDrawn, null, 'viewport');
      result.drawn = !drawError;
      const thumbError = await waitFor(page, thumbnailsDrawn, study.thumbnails, 'thumbnails');
      result.thumbnails = await page.evaluate(
        () =>
          [...document.querySelectorAll('[data-cy="study-browser-thumbnail"] img')].filter(
            (img) => img.complete && img.naturalWidth > 0,
          ).length,
      );
      if (drawError || thumbError) {
        result.error = [drawError, thumbError].filter(Boolean).join('; ');
        await page.screenshot({ path: path.join(plan.screenshots, `${study.label}.png`) });
      }
      report.studies.push(result);
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
