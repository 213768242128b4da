// The seeds' portal flow (seeds/000) in Debian's Chromium, step by step, with a screenshot of
// each step. Usage: node flow.mjs CONFIG_JSON
// CONFIG_JSON: {endpoint, artifacts, tenant_a, tenant_b, admin_a: [user, password],
//               contributor_b: [user, password], pool_id, vnet_id}
// Prints one JSON line: {"ok": true} or {"ok": false, "step", "error"}.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const config = JSON.parse(process.argv[2]);
mkdirSync(config.artifacts, { recursive: true });
const consoleErrors = [];
let step = "launch";
let shot = 0;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

function watch(page) {
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(`${step}: ${message.text()}`); });
  page.on("pageerror", (error) => consoleErrors.push(`${step}: ${error.message}`));
  return page;
}

async function snap(page, name) {
  shot += 1;
  await page.screenshot({ path: `${config.artifacts}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function signIn(page, [user, password]) {
  await page.waitForSelector("#username");
  await page.fill("#username", user);
  await page.fill("#password", password);
  await page.click("#sign-in");
}

async function newPage() {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  return watch(await context.newPage());
}

try {
  const page = await newPage();
  const poolUrl = (tab, sub) => `${config.endpoint}/portal/t/${config.tenant_a}/pool?id=${encodeURIComponent(config.pool_id)}&tab=${tab}${sub ? `&sub=${sub}` : ""}`;

  step = "a wrong password shows a sign-in error";
  await page.goto(`${config.endpoint}/portal`);
  // The sign-in form is usable from the keyboard: the tenant field takes focus by Tab.
  await page.keyboard.press("Tab");
  await page.fill("#tenant", "contoso-a.example");
  await page.click("#signin");
  await signIn(page, [config.admin_a[0], "not-the-password"]);
  await page.waitForSelector(".error");
  expect((await page.textContent(".error")).includes("AADSTS50126"), "no sign-in error shown");
  await snap(page, "wrong-password");

  step = "sign in to tenant A";
  await signIn(page, config.admin_a);
  await page.waitForSelector("#signed-in");
  expect((await page.textContent("#signed-in")).includes(config.admin_a[0]), "the header does not show the user");
  await snap(page, "signed-in-a");

  step = "network managers → nm → IP address pools → pool";
  await page.click("text=Network managers");
  await page.click("#managers >> a:text-is(\"nm\")");
  await page.waitForSelector("#pools");
  await snap(page, "ip-address-pools");
  await page.click("#pools >> a:text-is(\"pool\")");
  await page.waitForSelector("#pool-overview");
  expect((await page.textContent("#pool-overview")).includes("10.0.0.0/8"), "the overview lacks the pool's space");
  expect(await page.isVisible("#pool-picture"), "no picture of the address space");
  await snap(page, "pool-overview");

  step = "+ Create > Allocate resources, choose tenant B, Apply";
  await page.click("#allocate-resources");
  await page.selectOption("#allocate-tenant", config.tenant_b);
  await page.click("#allocate-apply");
  await page.waitForSelector("#authenticate");
  await snap(page, "allocate-choose-tenant");

  step = "Authenticate as B's Network Contributor";
  await page.click("#authenticate");
  await signIn(page, config.contributor_b);
  await page.waitForSelector("#vnets");
  await snap(page, "allocate-vnets");

  step = "select the VNet, Associate";
  await page.check("#vnet-vnet-b");
  await page.selectOption("#allocate-size", "100");
  await page.click("#associate");
  await page.waitForSelector("#resources");
  const error = await page.$(".error");
  expect(!error, `associating failed: ${error && await error.textContent()}`);
  const resources = await page.textContent("#resources");
  expect(resources.includes("vnet-b") && resources.includes(config.tenant_b), `vnet-b is not under Resources: ${resources}`);
  expect(resources.includes("104"), "the allocation is not 104 addresses");
  await snap(page, "allocations-resources");

  step = "in tenant B, the VNet's Subnets show the pool";
  await page.selectOption("#tenant-switcher", config.tenant_b);
  await page.click("text=Switch");
  await page.click("text=Virtual networks");
  await page.click("#virtual-networks >> a:text-is(\"vnet-b\")");
  await page.click("#tab-subnets");
  await page.waitForSelector("#address-space");
  expect((await page.textContent("#address-space")).includes("pool"), "the IPAM pool column does not name the pool");
  await snap(page, "vnet-subnets");

  step = "Remove: select, X Remove, Yes";
  await page.goto(poolUrl("allocations", "resources"));
  await page.check(`input[name=vnet][value="${config.vnet_id}"]`);
  await page.click("#remove");
  await page.waitForSelector("#remove-yes");
  await snap(page, "remove-confirm");
  await page.click("#remove-yes");
  await page.waitForSelector("#resources");
  expect(!(await page.textContent("#resources")).includes("vnet-b"), "vnet-b is still listed");
  await snap(page, "removed");

  step = "Allocate static CIDRs";
  await page.click("#allocate-cidrs");
  await page.fill("#cidr-name", "onprem");
  await page.fill("#cidr-count", "256");
  await page.click("#cidr-allocate");
  await page.waitForSelector("#static-cidrs");
  expect((await page.textContent("#static-cidrs")).includes("onprem"), "the static CIDR is not listed");
  await snap(page, "static-cidrs");

  step = "+ Create a child pool, with the computed range shown";
  await page.goto(`${config.endpoint}/portal/t/${config.tenant_a}/manager?id=${encodeURIComponent(config.pool_id.split("/ipamPools/")[0])}`);
  await page.click("#create-pool");
  await page.fill("#pool-name", "child");
  await page.fill("#pool-display-name", "Child pool");
  await page.selectOption("#pool-parent", "pool");
  await page.fill("#pool-start", "10.1.0.0");
  await page.selectOption("#pool-size", "16");
  await page.click("#pool-review");
  await page.waitForSelector(".ok");
  expect((await page.textContent(".ok")).includes("10.1.255.255"), "no computed range");
  await snap(page, "create-pool-review");
  await page.click("#pool-submit");
  await page.waitForSelector("#pool-overview");
  await snap(page, "child-pool");

  step = "a user without IPAM Pool User sees LinkedAuthorizationFailed";
  const other = await newPage();
  await other.goto(`${config.endpoint}/portal`);
  await other.fill("#tenant", "contoso-b.example");
  await other.click("#signin");
  await signIn(other, config.contributor_b);
  await other.waitForSelector("#signed-in");
  await other.click("text=Virtual networks");
  await other.click("#create-vnet");
  await other.fill("#vnet-group", "rg-b");
  await other.fill("#vnet-name", "vnet-denied");
  await other.check("#vnet-ipam");
  await other.fill("#vnet-pool", config.pool_id);
  await other.fill("#vnet-count", "64");
  await other.click("#vnet-submit");
  await other.waitForSelector(".error");
  expect((await other.textContent(".error")).includes("LinkedAuthorizationFailed"), "the refusal is not shown in words");
  await snap(other, "linked-authorization-failed");

  step = "no console errors";
  expect(consoleErrors.length === 0, consoleErrors.join("\n"));
  console.log(JSON.stringify({ ok: true, screenshots: shot }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, step, error: String(error && error.message || error), console: consoleErrors }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
