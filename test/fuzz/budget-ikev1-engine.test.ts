import { budget } from './budget.js';

// A short fuzz budget (test/fuzz/budget.ts): IKEv1 engine sessions.
budget(['ikev1-engine'], 1000);
