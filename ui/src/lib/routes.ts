// Hash routes: `#/home`, `#/scan`, `#/grants`, `#/grants/new`, `#/grants/ID`, `#/log?…`, `#/settings`,
// `#/card` (the emergency card), `#/guardians` (the patient's guardians), `#/inbox` (as someone's guardian).

export type Route =
  | { name: 'home' }
  | { name: 'scan' }
  | { name: 'grants' }
  | { name: 'new-grant' }
  | { name: 'grant'; id: string }
  | { name: 'log'; query: string }
  | { name: 'settings' }
  | { name: 'card' }
  | { name: 'guardians' }
  | { name: 'inbox' }
  | { name: 'not-found'; path: string };

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, '');
  const q = h.indexOf('?');
  const path = (q >= 0 ? h.slice(0, q) : h).replace(/\/+$/, '');
  const query = q >= 0 ? h.slice(q + 1) : '';
  if (path === '' || path === '/home') return { name: 'home' };
  if (path === '/scan') return { name: 'scan' };
  if (path === '/grants') return { name: 'grants' };
  if (path === '/grants/new') return { name: 'new-grant' };
  const g = /^\/grants\/([^/]+)$/.exec(path);
  if (g) {
    try {
      return { name: 'grant', id: decodeURIComponent(g[1]) };
    } catch {
      return { name: 'not-found', path };
    }
  }
  if (path === '/log') return { name: 'log', query };
  if (path === '/settings') return { name: 'settings' };
  if (path === '/card') return { name: 'card' };
  if (path === '/guardians') return { name: 'guardians' };
  if (path === '/inbox') return { name: 'inbox' };
  return { name: 'not-found', path };
}

export function href(route: Route): string {
  switch (route.name) {
    case 'home':
      return '#/home';
    case 'scan':
      return '#/scan';
    case 'grants':
      return '#/grants';
    case 'new-grant':
      return '#/grants/new';
    case 'grant':
      return `#/grants/${encodeURIComponent(route.id)}`;
    case 'log':
      return route.query ? `#/log?${route.query}` : '#/log';
    case 'settings':
      return '#/settings';
    case 'card':
      return '#/card';
    case 'guardians':
      return '#/guardians';
    case 'inbox':
      return '#/inbox';
    case 'not-found':
      return `#${route.path}`;
  }
}

export function grantHref(id: string): string {
  return href({ name: 'grant', id });
}

/** The navigation section a route belongs to (for aria-current in the nav). */
export function section(route: Route): 'home' | 'scan' | 'grants' | 'new-grant' | 'log' | 'settings' | null {
  switch (route.name) {
    case 'home':
    case 'scan':
    case 'grants':
    case 'new-grant':
    case 'log':
    case 'settings':
      return route.name;
    case 'grant':
      return 'grants';
    case 'guardians':
    case 'inbox':
      return 'settings';
    default:
      return null;
  }
}
