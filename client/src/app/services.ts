import { createContext, useContext } from 'react'
import type { AppConfig } from '../services/api'
import type { StatusPoller } from '../services/status'
import type { Tracker } from '../services/tracker'
import type { RelayUppy } from '../services/uploader'

export interface Services {
  uppy: RelayUppy
  tracker: Tracker
  poller: StatusPoller
  config: AppConfig
}

export const ServicesContext = createContext<Services | null>(null)

export function useServices(): Services {
  const services = useContext(ServicesContext)
  if (!services) throw new Error('useServices outside <ServicesContext.Provider>')
  return services
}
