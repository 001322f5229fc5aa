import { X509Certificate } from 'node:crypto'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { csrInstructions, ensureLocalCa, hostKind, issueLocalCertificate, trustInstructions } from '../tls/local-ca.ts'
import { defaultDataDir } from '../core/data-dir.ts'

const HELP = `edgebox cert: certificates for HTTPS

Usage:
  edgebox cert [--host NAME]... [--home DIR]   a local development certificate, signed by Edgebox's local CA
  edgebox cert --csr [--host NAME]...          how to get a certificate from a real authority (creates nothing)

Options:
      --host NAME   a name or IP address to cover (repeatable; *.example.test allowed);
                    localhost, 127.0.0.1 and ::1 are always included
      --home DIR    where the local CA and certificates live
                    (default $EDGEBOX_HOME, else $XDG_DATA_HOME/edgebox, else ~/.local/share/edgebox)
      --csr         print the steps for a certificate signing request instead
  -h, --help        this help
`

export interface CertOutput {
  stdout: (s: string) => void
  stderr: (s: string) => void
}

const processOutput: CertOutput = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
}

/**
 * `edgebox cert`: creates (once) the local CA and a certificate for the
 * given hosts, then says how to trust the CA; with --csr, explains how to
 * get a certificate from a real authority instead. Returns the exit code:
 * 0 done, 1 the local CA could not be used, 2 a usage error.
 */
export async function certCommand(argv: string[], out: CertOutput = processOutput): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: 'string', multiple: true },
        home: { type: 'string' },
        csr: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (err) {
    out.stderr(`edgebox cert: ${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  if (values.help) {
    out.stdout(HELP)
    return 0
  }
  const given = values.host ?? []
  const bad = given.find((h) => hostKind(h.trim().toLowerCase()) === null)
  if (bad !== undefined) {
    out.stderr(`edgebox cert: --host ${JSON.stringify(bad)} is not a host name (like shop.example or *.example.test) or an IP address\n`)
    return 2
  }
  const hosts = given.map((h) => h.trim().toLowerCase())

  if (values.csr) {
    out.stdout(csrInstructions(hosts.length ? hosts : ['example.com']))
    return 0
  }

  const home = values.home !== undefined ? path.resolve(values.home) : defaultDataDir()
  try {
    const ca = await ensureLocalCa(home)
    out.stdout(`Local CA: ${ca.created ? 'created' : 'already exists'}: ${ca.certPath}\n`)
    const leaf = await issueLocalCertificate(home, hosts)
    const until = new X509Certificate(leaf.certPem).validToDate.toISOString().slice(0, 10)
    out.stdout(
      `Certificate: ${leaf.issued ? 'issued' : 'still valid, reused'}\n` +
        `  certificate: ${leaf.certPath}\n` +
        `  key:         ${leaf.keyPath}\n` +
        `  hosts:       ${leaf.hosts.join(', ')}\n` +
        `  valid until: ${until}\n\n` +
        // the port `--https` listens on by default (src/cli/main.ts), as in the curl example below
        `Serve it with tls: { local: true } and a listener with tls: true (or: npm start -- --https, then https://localhost:8080/).\n\n`,
    )
    out.stdout(trustInstructions(ca.certPath))
    // the same output says where a real site's certificate comes from
    out.stdout(`\nFor a site on the internet, get a certificate from a real authority instead:\n\n${csrInstructions(hosts.length ? hosts : ['example.com'])}`)
    return 0
  } catch (err) {
    out.stderr(`edgebox cert: ${(err as Error).message}\n`)
    return 1
  }
}
