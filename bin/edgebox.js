#!/usr/bin/env node
// The `edgebox` command. Edgebox runs on Node.js 24 or newer: inside this
// repository npm puts the pinned runtime (the `node` devDependency) first on
// PATH, so `npm start` and `npx edgebox` use it.
import { existsSync } from 'node:fs'

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(`edgebox needs Node.js 24 or newer; this is ${process.version}.\nRun it through npm (npm start, npx edgebox) so the project's pinned Node is used, or install Node 24.\n`)
  process.exit(1)
}
// In a checkout, run the TypeScript sources directly (Node strips the types);
// an installed package runs its compiled build.
const src = new URL('../src/cli/main.ts', import.meta.url)
const useSrc = !import.meta.url.includes('/node_modules/') && existsSync(src)
const { main } = await import(useSrc ? src.href : new URL('../dist/cli/main.js', import.meta.url).href)
await main(process.argv.slice(2))
