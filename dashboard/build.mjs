// Copies the charting library from node_modules (installed by `npm ci` from package-lock.json)
// into the API's static files. The copy is not committed: deploy/setup.sh runs this step.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "api", "dashboard", "static", "vendor");
mkdirSync(out, { recursive: true });

const chart = join(here, "node_modules", "chart.js");
const version = JSON.parse(readFileSync(join(chart, "package.json"), "utf8")).version;
copyFileSync(join(chart, "dist", "chart.umd.min.js"), join(out, "chart.umd.min.js"));
copyFileSync(join(chart, "LICENSE.md"), join(out, "chart.js-LICENSE.md"));
writeFileSync(join(out, "versions.json"), JSON.stringify({ "chart.js": version }, null, 2) + "\n");
console.log(`dashboard: chart.js ${version} -> ${out}`);
