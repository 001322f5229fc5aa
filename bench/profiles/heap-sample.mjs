// Preload (node --import): SIGWINCH starts V8's sampling heap profiler counting every allocation, also those the
// GC has already collected; the next SIGWINCH writes the profile to $HEAPOUT. Summarize with heap-sample-sum.mjs.
import fs from 'node:fs'
import inspector from 'node:inspector'
const session = new inspector.Session()
session.connect()
let sampling = false
process.on('SIGWINCH', () => {
  if (!sampling) {
    sampling = true
    session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  } else session.post('HeapProfiler.stopSampling', (err, r) => fs.writeFileSync(process.env.HEAPOUT, JSON.stringify(err ?? r.profile)))
})
