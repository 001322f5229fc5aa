// The external OpenID Connect provider of bench/auth.sh: the tests' oidc-provider (test/helpers/oidc.ts,
// startTestProvider: oidc-provider 9 on 127.0.0.1, its development login form, grants given without a consent page)
// with one account and one confidential client whose redirect URI is Edgebox's callback. Run with the project's
// pinned Node (it strips the helper's types). It listens on a free port and prints one JSON line,
// {"issuer":"http://127.0.0.1:PORT"}, on stdout once it answers; SIGTERM closes it.
// usage: node auth-idp.mjs EDGEBOX_ORIGIN CLIENT_SECRET
import { startTestProvider } from '../../test/helpers/oidc.ts'

const [edgebox, secret] = process.argv.slice(2)
if (!edgebox || !secret) {
  console.error('usage: node auth-idp.mjs EDGEBOX_ORIGIN CLIENT_SECRET')
  process.exit(2)
}
const idp = await startTestProvider({
  accounts: { alice: { email: 'alice@example.com', email_verified: true, name: 'Alice', groups: ['staff'] } },
  clients: [{ client_id: 'edgebox', client_secret: secret, redirect_uris: [`${edgebox}/_edgebox/auth/callback`] }],
})
process.stdout.write(JSON.stringify({ issuer: idp.issuer }) + '\n')
process.on('SIGTERM', () => void idp.close().finally(() => process.exit(0)))
