#!/usr/bin/env node
// The `edgebox` command. Edgebox runs on Node.js 24 or newer. `npx edgebox`
// runs this file on the first `node` on PATH, and npm puts the project's
// node_modules/.bin first: a project that adds the `node` package
// (npm install --save-dev node@24) gets Node 24 there, so this file runs the
// server itself, in this process, with no second process to pass signals and
// exit codes through. This repository pins its runtime the same way.
//
// Everything up to the version check is plain JavaScript that an old Node can
// parse (no static imports, no top-level await), so an old Node reaches the
// check and says what to do instead of failing on syntax.

var major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write('Edgebox needs Node.js 24 or newer (this is ' + process.version + '). Add it to this project: npm install --save-dev node@24, then run npx edgebox again.\n')
  process.exit(2)
} else {
  start().catch(function failed(err) {
    console.error(err)
    process.exit(1)
  })
}

async function start() {
  const { existsSync } = await import('node:fs')
  // In a checkout, run the TypeScript sources directly (Node strips the types);
  // an installed package runs its compiled build.
  const src = new URL('../src/cli/main.ts', import.meta.url)
  const useSrc = !import.meta.url.includes('/node_modules/') && existsSync(src)
  const { main } = await import(useSrc ? src.href : new URL('../dist/cli/main.js', import.meta.url).href)
  await main(process.argv.slice(2))
}
