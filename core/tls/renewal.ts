/**
 * `linksec serve`'s certificate check: at start and then daily, renew the
 * certificate at [tls] cert_file when linksec made it and it expires within 30
 * days (core/tls/store.ts). Postfix's smtpd processes read it as they start;
 * the log line says to `postfix reload` for the rest.
 */
import { describeError } from '../errors'
import type { Runtime } from '../runtime'
import { recordOwnCertificate } from './metrics'
import { certificatePaths, renewIfDue } from './store'

export const DAY_MS = 24 * 3600 * 1000

export async function checkOwnCertificate(rt: Runtime): Promise<void> {
  const paths = certificatePaths(rt.config)
  try {
    const r = await renewIfDue(paths, rt.now())
    if (r.certificate) recordOwnCertificate(rt.metrics, r.certificate)
    if (r.outcome === 'renewed')
      rt.log.info('renewed the self-signed TLS certificate linksec made; run `postfix reload`', {
        file: paths.cert,
        not_after: r.certificate!.notAfter.toISOString(),
      })
  } catch (e) {
    rt.log.error('could not renew the TLS certificate linksec made', {
      file: paths.cert,
      error: describeError(e),
    })
  }
}

/** Starts the daily check (unref'd: it never keeps the process alive); returns the stop function. */
export function startCertificateRenewal(
  rt: Runtime,
  check: (rt: Runtime) => Promise<void> = checkOwnCertificate,
): () => void {
  if (!rt.config.tls.renew) return () => {}
  void check(rt)
  const timer = setInterval(() => void check(rt), DAY_MS)
  timer.unref()
  return () => clearInterval(timer)
}
