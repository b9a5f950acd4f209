// The probe's verifier step in a process of its own (probe.ts,
// verifierCheckElsewhere): prints "pass", or why weft's programs do not load.
import { checkVerifier } from './probe.js';

const reason = checkVerifier(process.argv[2]);
process.stdout.write(reason === null ? 'pass\n' : `${reason}\n`);
