/**
 * The level this server declares, decided once for every place that says it:
 * the Haraka EHLO keyword, `linksec record` and `linksec check` of our own
 * domain. It is what the configuration performs (core/levels.ts
 * performedLevel), and nothing at all where STARTTLS cannot be offered: a
 * link-secure server must itself be reachable over TLS (RFC 3207).
 */
import type { LinksecConfig } from './config'
import { enforcementOf } from './enforce'
import { performedLevel, type Level, type LevelPromises } from './levels'

/** What this configuration promises: [main] and the enforcement of [enforce] (enforcementOf). */
function levelPromises(c: LinksecConfig): LevelPromises {
  const e = enforcementOf(c)
  return {
    configuredLevel: c.main.level as Level,
    mailboxesTlsOnly: c.main.mailboxes_tls_only,
    enforceNoDowngrade: e.noDowngrade,
    enforcePeerLevel: e.peerLevel,
  }
}

export interface OwnLevel {
  /** The level to declare; 0 when nothing may be declared. */
  level: Level
  /** False: no STARTTLS here, so no declaration at all (no EHLO keyword). */
  declares: boolean
  /** Why the level is below [main] level, for a person. */
  heldBackBy?: string
}

export const NO_TLS_REASON =
  'no STARTTLS: this server has no usable certificate (run `linksec tls init`, or set [tls] cert_file)'

const NO_ENFORCEMENT_REASON =
  'level 3 needs the outbound no-downgrade duty, which is not running in this process (see the ERROR at start)'

/** Why the performed level is below the configured one: the first promise not kept. */
export function heldBackBy(d: LevelPromises): string | undefined {
  if (performedLevel(d) >= d.configuredLevel) return undefined
  if (!d.mailboxesTlsOnly) return 'level 2 needs [main] mailboxes_tls_only=true'
  if (!d.enforceNoDowngrade) return 'level 3 needs [enforce] enabled=true'
  return 'level 4 needs [enforce] peer_level=true'
}

/** The declared level, from configuration and whether STARTTLS is available where it is declared. */
export function ownLevel(c: LinksecConfig, starttls: boolean, enforcement = true): OwnLevel {
  const promises = levelPromises(c)
  if (!starttls) return { level: 0, declares: false, heldBackBy: NO_TLS_REASON }
  // The configuration asks for enforcement, but this process cannot run it
  // (e.g. the Haraka outbound duty refused on an untested Haraka version):
  // level 3 and 4 are not performed, so they are not declared.
  if (!enforcement && promises.enforceNoDowngrade) {
    const performed = performedLevel({ ...promises, enforceNoDowngrade: false, enforcePeerLevel: false })
    return { level: performed, declares: true, heldBackBy: NO_ENFORCEMENT_REASON }
  }
  return { level: performedLevel(promises), declares: true, heldBackBy: heldBackBy(promises) }
}

/** RFC 8689 REQUIRETLS is a promise about relaying: offered under TLS whenever no-downgrade is enforced. */
export function offersRequireTls(c: LinksecConfig, underTls: boolean, enforcement = true): boolean {
  return c.declare.requiretls && enforcementOf(c).noDowngrade && enforcement && underTls
}
