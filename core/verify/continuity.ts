/**
 * Key continuity for a passing signature (docs/architecture.md §6.7): the
 * signing key is compared with the keys recently seen for the From address
 * (core/keys/continuity.ts). A different key is a change; it is explained
 * when the sender domain's counted CA certifies the new key, or when a
 * remembered key is still published beside it (a rotation overlap: the
 * owner published both). Every change is counted
 * (`linksec_key_changes_total{certified}`); an unexplained one is also
 * reported (`policy.key-change=` in Authentication-Results, a log line) and
 * handled per `[verify] on_key_change`:
 *
 *   tag       accept; the new key is remembered
 *   tempfail  451 4.7.1, the new key not remembered: the sender retries
 *             until the change is explained (certified, or published with
 *             the old key) or the remembered key expires
 *   reject    550 5.7.1, the new key not remembered
 *
 * Keys from the local store are the operator's own facts: not tracked.
 */
import type { KeyContinuity } from '../keys'
import type { KeyRing } from '../keys/material'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'

export interface ContinuityOutcome {
  /** The fingerprint remembered before, when the change is not explained. */
  unexplainedFrom?: string
}

export async function checkContinuity(
  address: string,
  signer: string,
  ring: KeyRing,
  keySource: string,
  certified: boolean,
  deps: { store: KeyContinuity; metrics: Metrics; log: Logger; rememberUnexplained: boolean },
): Promise<ContinuityOutcome> {
  if (keySource === 'local') return {}
  let seen = await deps.store.seen(address)
  // Another host of the fleet may have seen this key already.
  if (seen.length > 0 && !seen.some((k) => k.fpr === signer))
    seen = await deps.store.seen(address, { fresh: true })
  if (seen.length === 0 || seen.some((k) => k.fpr === signer)) {
    await deps.store.remember(address, signer)
    return {}
  }
  deps.metrics.keyChanges.inc({ certified: String(certified) })
  const published = new Set(ring.keys.map((k) => k.getFingerprint().toUpperCase()))
  const overlap = seen.find((k) => published.has(k.fpr))
  const previous = seen[0]!.fpr
  if (certified || overlap) {
    deps.log.info('sender key changed', {
      from: address,
      previous,
      key: signer,
      explained: certified ? 'certified by the domain CA' : `published beside ${overlap!.fpr}`,
    })
    await deps.store.remember(address, signer)
    return {}
  }
  deps.log.warn('sender key changed', {
    from: address,
    previous,
    previous_seen: new Date(seen[0]!.seen).toISOString(),
    key: signer,
    source: keySource,
    explained: 'no: not certified by a declared domain CA, and no remembered key is still published',
  })
  if (deps.rememberUnexplained) await deps.store.remember(address, signer)
  return { unexplainedFrom: previous }
}
