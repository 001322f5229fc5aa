import type { FilterModule, HandlerModule } from '../core/types.ts'
import { earlyHintsModule } from '../core/early-hints.ts'
import { wireTraceModule } from '../core/wire-trace.ts'
import { pageViewModule } from '../rum/page-view.ts'
import { rumInjectModule } from '../rum/inject.ts'
import { corsModule } from './security/cors.ts'
import { csrfModule } from './security/csrf.ts'
import { headersModule } from './security/headers.ts'
import { jsonpModule } from './security/jsonp.ts'
import { rateLimitModule } from './security/rate-limit.ts'
import { labModule } from './lab/index.ts'
import { proxyModule } from './proxy/index.ts'
import { realtimeModule } from './realtime/index.ts'
import { redirectModule } from './redirect/index.ts'
import { staticModule } from './static/index.ts'
import { dohModule } from './doh/index.ts'
import { idpModule } from './idp/index.ts'
import { forwardAuthModule } from './forward-auth/index.ts'

/**
 * Every handler kind Edgebox knows, explicitly. A route names exactly one of
 * these kinds (`{ path: '/', static: {...} }`); the configuration schema is
 * built from this list. Adding a kind: write `src/modules/<kind>/index.ts`
 * exporting a HandlerModule, and add it here.
 */
export const handlerModules = [staticModule, redirectModule, proxyModule, realtimeModule, labModule, dohModule, forwardAuthModule, idpModule] as const satisfies readonly HandlerModule[]

/**
 * Every filter module, explicitly: each reads the route option of its name
 * and gives routes a step before the handler and/or a response filter. The
 * order they run in is not this list's: it is declared in
 * src/core/pipeline.ts (ROUTE_STEPS, RESPONSE_FILTERS).
 */
export const filterModules = [rateLimitModule, corsModule, jsonpModule, csrfModule, headersModule, earlyHintsModule, wireTraceModule, pageViewModule, rumInjectModule] as const satisfies readonly FilterModule[]
