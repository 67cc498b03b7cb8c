/**
 * The certificate metric: when each certificate linksec made expires
 * (`linksec_tls_certificate_expiry_timestamp_seconds{file}`, a Unix time, as
 * Prometheus' own probes expose certificate expiry). Registered once per
 * registry beside the definitions in core/metrics.ts.
 */
import { Gauge } from 'prom-client'
import type { Metrics } from '../metrics'
import type { OwnCertificate } from './store'

const gauges = new WeakMap<Metrics['registry'], Gauge<'file'>>()

export function certificateExpiryGauge(m: Metrics): Gauge<'file'> {
  let g = gauges.get(m.registry)
  if (!g) {
    g = new Gauge({
      name: 'linksec_tls_certificate_expiry_timestamp_seconds',
      help: 'When a certificate linksec made (and renews) expires, as a Unix time in seconds.',
      labelNames: ['file'],
      registers: [m.registry],
    })
    gauges.set(m.registry, g)
  }
  return g
}

export function recordOwnCertificate(m: Metrics, c: OwnCertificate): void {
  certificateExpiryGauge(m).set({ file: c.paths.cert }, Math.floor(c.notAfter.getTime() / 1000))
}
