// The location.hash relay: origin B's frame loads this page (from the top
// page's origin) with its data in the fragment. Being same-origin with the top
// page, the relay may set the top page's fragment, which fires its hashchange.
'use strict'
try {
  if (location.hash.length > 1) top.location.hash = `xo-hash=${location.hash.slice(1)}`
} catch (e) {
  // not the lab's layout (opened on its own or from another origin): nothing to relay
}
