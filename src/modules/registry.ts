import type { HandlerModule } from '../core/types.ts'
import { labModule } from './lab/index.ts'
import { proxyModule } from './proxy/index.ts'
import { realtimeModule } from './realtime/index.ts'
import { redirectModule } from './redirect/index.ts'
import { staticModule } from './static/index.ts'

/**
 * Every handler kind Edgebox knows, explicitly. A route names exactly one of
 * these kinds (`{ path: '/', static: {...} }`); the configuration schema is
 * built from this list. Adding a kind: write `src/modules/<kind>/index.ts`
 * exporting a HandlerModule, and add it here.
 */
export const handlerModules = [staticModule, redirectModule, proxyModule, realtimeModule, labModule] as const satisfies readonly HandlerModule[]
