/**
 * The tap a click selected, from the value of vega-lite's point-selection signal (`pick`, fields ['tap']).
 * vega-lite 6 gives `{ tap: [name] }` for a projected point selection; an empty selection is `{}` or null.
 */
export function pickedTap(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = (value as Record<string, unknown>).tap;
  const first = Array.isArray(v) ? v[0] : v;
  return typeof first === 'string' ? first : null;
}
