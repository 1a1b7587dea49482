import { budget } from './budget.js';

// A short fuzz budget (test/fuzz/budget.ts): the IKE codecs and fresh responders.
budget(['ikev1-codec', 'ikev2-codec', 'ikev1-responder', 'ikev2-responder'], 2000);
