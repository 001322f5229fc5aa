import uPlot from 'uplot'

/**
 * Time charts on uPlot (a canvas per chart, no DOM per point): the
 * overview's charts over the last hour, updated once a second. A chart
 * takes its container's width and follows it (ResizeObserver), so it fits
 * a phone as well as a wide screen. uPlot styles its own elements through
 * the CSSOM (`element.style`), which the strict CSP allows; its style sheet
 * is bundled with the app's.
 */

export interface SeriesSpec {
  readonly label: string
  /** A CSS color for the line (canvas colors: no custom properties). */
  readonly stroke: string
}

export interface ChartSpec {
  readonly series: readonly SeriesSpec[]
  /** How a value is written on the axis and in the legend. */
  readonly format: (v: number | null) => string
  /** The y axis' fixed range, when it has one (a ratio: 0 to 1). */
  readonly range?: readonly [number, number]
  readonly height?: number
}

export interface Chart {
  /** x: seconds since the epoch; one array of y values (null: no value) per series. */
  setData(x: readonly number[], ys: readonly (readonly (number | null)[])[]): void
  destroy(): void
}

/** The palette of the charts' lines: distinguishable in light and dark themes. */
export const COLORS = {
  blue: '#2563eb',
  green: '#16a34a',
  amber: '#d97706',
  red: '#dc2626',
  violet: '#7c3aed',
  teal: '#0d9488',
  grey: '#6b7280',
}

/** The text color the container inherits (canvas axes cannot use `currentColor`). */
function inkOf(el: HTMLElement): { ink: string; grid: string } {
  const ink = getComputedStyle(el).color || '#444'
  return { ink, grid: 'rgba(128,128,128,0.18)' }
}

export function createChart(el: HTMLElement, spec: ChartSpec): Chart {
  const { ink, grid } = inkOf(el)
  const height = spec.height ?? 170
  const width = () => Math.max(200, Math.floor(el.clientWidth))
  const axisValues = (_u: uPlot, vals: number[]) => vals.map((v) => spec.format(v))
  const opts: uPlot.Options = {
    width: width(),
    height,
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: spec.range ? { range: [spec.range[0], spec.range[1]] } : { range: (_u, min, max) => [0, Math.max(max, min, 1) * 1.1] } },
    axes: [
      { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid } },
      { stroke: ink, grid: { stroke: grid }, ticks: { stroke: grid }, values: axisValues, size: 78 },
    ],
    series: [{}, ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: false, value: (_u: uPlot, v: number | null) => spec.format(v) }))],
  }
  const empty: uPlot.AlignedData = [[], ...spec.series.map(() => [])]
  const plot = new uPlot(opts, empty, el)
  let last = width()
  const observer = new ResizeObserver(() => {
    const w = width()
    if (w === last) return
    last = w
    plot.setSize({ width: w, height })
  })
  observer.observe(el)
  return {
    setData(x, ys) {
      plot.setData([x as number[], ...ys.map((y) => y as (number | null)[])])
    },
    destroy() {
      observer.disconnect()
      plot.destroy()
    },
  }
}
