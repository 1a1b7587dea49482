import { budget } from './budget.js';

// A short fuzz budget (test/fuzz/budget.ts): kernel message decoders and the control request parser.
budget(['netlink', 'pfkey', 'control'], 3000);
