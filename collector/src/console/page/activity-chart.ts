/**
 * The overview's chart: blocked, masked and approved actions (and, hidden
 * until picked in the legend, allowed ones) per time bucket, drawn by uPlot
 * on a canvas. uPlot styles its own elements through the CSSOM (never a
 * style attribute or an inline style sheet), which the console's CSP allows;
 * its labels are ours, fixed words.
 */
import uPlot from 'uplot';
import { h } from './dom.ts';
import type { Overview } from './query-types.ts';

const SERIES = [
  { key: 'blocked', label: 'Blocked', stroke: '#b42318', show: true },
  { key: 'masked', label: 'Masked', stroke: '#b7791f', show: true },
  { key: 'approved', label: 'Approved', stroke: '#1a7f37', show: true },
  { key: 'allowed', label: 'Allowed', stroke: '#8a94a0', show: false },
] as const;

/** The chart's data: bucket starts in seconds, then one count array per series. */
export function chartData(o: Pick<Overview, 'series'>): number[][] {
  return [o.series.map((p) => Date.parse(p.t) / 1000), ...SERIES.map((s) => o.series.map((p) => p[s.key]))];
}

export interface ActivityChart {
  readonly el: HTMLElement;
  destroy(): void;
}

export function activityChart(o: Overview, width: number): ActivityChart {
  const el = h('div', {
    class: 'chart',
    role: 'img',
    'aria-label': 'Blocked, masked and approved actions over time',
  });
  const plot = new uPlot(
    {
      width: Math.max(320, width),
      height: 260,
      scales: { x: { time: true } },
      axes: [{}, { label: 'actions', size: 50 }],
      series: [
        {},
        ...SERIES.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 2,
          show: s.show,
          points: { show: o.series.length < 40 },
        })),
      ],
    },
    chartData(o) as uPlot.AlignedData,
    el,
  );
  return { el, destroy: () => plot.destroy() };
}
