/** Single-file components, for TypeScript's view of the dashboard's .ts files (Vite compiles the .vue files). */
declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}

/** Style sheets: Vite bundles them into the one hashed .css file. */
declare module '*.css' {}
