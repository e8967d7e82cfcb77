// Which colour serves a request. For now: an explicit pin (header, for previews and tests), then
// the active colour. Weights and sticky users come with progressive delivery.
import type { IncomingHttpHeaders } from 'node:http';
import type { Color } from '../lib/config.js';

export const COLOR_PIN_HEADER = 'x-changelens-color';

export type RouteDecision = { color: Color; pinned: boolean } | { error: string };

export function pickColor(headers: IncomingHttpHeaders, activeColor: Color): RouteDecision {
  const pin = headers[COLOR_PIN_HEADER];
  if (pin === undefined) return { color: activeColor, pinned: false };
  if (pin === 'blue' || pin === 'green') return { color: pin, pinned: true };
  return { error: `header ${COLOR_PIN_HEADER}: expected blue or green, got ${JSON.stringify(pin)}` };
}
