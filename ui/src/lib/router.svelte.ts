// The current hash route, as reactive state.

import { LOG_OPEN, mark } from './marks';
import { parseHash, type Route } from './routes';

class Router {
  route = $state<Route>({ name: 'home' });
}

export const router = new Router();

let logOpenMarked = false;

function update(): void {
  const next = parseHash(location.hash);
  if (next.name === 'log' && router.route.name !== 'log' && !logOpenMarked) mark(LOG_OPEN);
  logOpenMarked = false;
  router.route = next;
}

/** Follows the address bar's hash from now on. */
export function startRouter(): void {
  router.route = parseHash(location.hash);
  if (router.route.name === 'log') mark(LOG_OPEN);
  window.addEventListener('hashchange', update);
  // Mark the opening of the access log when the click happens, before the hash changes.
  document.addEventListener(
    'click',
    (e) => {
      const a = (e.target as Element | null)?.closest?.('a[href^="#/log"]');
      if (a && router.route.name !== 'log') {
        mark(LOG_OPEN);
        logOpenMarked = true;
      }
    },
    true,
  );
}

/** Goes to a route (adds a history entry). */
export function navigate(hash: string): void {
  if (location.hash === hash) update();
  else location.hash = hash;
}

/** Changes the address without a history entry or a hashchange (e.g. the log's filters). */
export function replaceHash(hash: string): void {
  history.replaceState(history.state, '', hash);
  router.route = parseHash(hash);
}
