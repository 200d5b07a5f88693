// Copies the built app (dist/) into the Python package (src/relaypacs_tus/web/static/), so that
// `relaypacs-tus serve` from a checkout or an installed wheel serves it at / without RELAYPACS_WEB_DIR.
import { cpSync, existsSync, rmSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const dist = resolve(here, '..', 'dist')
const target = resolve(here, '..', '..', 'src', 'relaypacs_tus', 'web', 'static')

if (!existsSync(resolve(dist, 'index.html'))) {
  console.error(`publish: ${dist}/index.html is missing; run vite build first`)
  process.exit(1)
}
if (!existsSync(dirname(target))) {
  console.log(`publish: ${dirname(target)} does not exist (client built outside the repository); skipped`)
  process.exit(0)
}
rmSync(target, { recursive: true, force: true })
cpSync(dist, target, { recursive: true })
console.log(`publish: copied ${dist} -> ${target}`)
