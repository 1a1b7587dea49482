import { budget } from './budget.js';

// A short fuzz budget (test/fuzz/budget.ts): peers.json and the importers.
budget(['config', 'import-swanctl', 'import-isakmpd', 'import-neutron'], 2000);
