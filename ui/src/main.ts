import './app.css';
import { mount } from 'svelte';
import App from './App.svelte';
import { initToken } from './lib/bridge';
import { startClock } from './lib/clock.svelte';
import { startRouter } from './lib/router.svelte';
import { installLockedHandler, loadStatus } from './lib/session.svelte';

// The token first: it arrives in the fragment, which the router reads next.
initToken();
installLockedHandler();
startRouter();
startClock();

const app = mount(App, { target: document.getElementById('app')! });
void loadStatus();

export default app;
