/**
 * What /healthz reports: the listeners this process runs and whether it is
 * shutting down. One per runtime, so `linksec serve` and the Haraka plugin
 * register their services without passing a list around.
 */
import { engineService } from '../engine'
import type { Runtime } from '../runtime'
import type { Service } from '../service'

export interface HealthReport {
  status: 'ok' | 'shutting_down'
  listeners: { name: string; address: string }[]
}

export interface Health {
  /** Lists a running service; it stays listed until removed or shutdown. */
  add(service: Pick<Service, 'name' | 'address'>): void
  remove(name: string): void
  /** From now on /healthz answers 503 so load balancers stop sending. */
  beginShutdown(): void
  readonly shuttingDown: boolean
  report(): HealthReport
}

function createHealth(): Health {
  const services = new Map<string, Pick<Service, 'name' | 'address'>>()
  let shuttingDown = false
  return {
    add: (s) => void services.set(s.name, s),
    remove: (name) => void services.delete(name),
    beginShutdown: () => void (shuttingDown = true),
    get shuttingDown() {
      return shuttingDown
    },
    report: () => ({
      status: shuttingDown ? 'shutting_down' : 'ok',
      listeners: [...services.values()].map(({ name, address }) => ({ name, address })),
    }),
  }
}

/** The Health of a runtime (created on first use). */
export const healthOf: (rt: Runtime) => Health = engineService({
  name: 'health',
  key: () => '',
  build: () => createHealth(),
})
