import { budget } from './budget.js';

// A short fuzz budget (test/fuzz/budget.ts): IKEv2 engine sessions.
budget(['ikev2-engine'], 1000);
