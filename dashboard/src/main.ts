import { createApp } from 'vue'
import 'uplot/dist/uPlot.min.css'
import './style.css'
import App from './App.vue'
import { router } from './router.ts'

/**
 * The Edgebox dashboard: the admin listener's view of the running server
 * (docs/admin.md). Built by dashboard/build.ts into dist/dashboard, whose
 * index.html loads one hashed script and one hashed style sheet: no inline
 * code, so it runs under `script-src 'self'; style-src 'self'`.
 */
createApp(App).use(router).mount('#app')
