/** The STUN/TURN client lives in src/ (`mxstack doctor` uses it at run time); tests import it from here. */
export * from '../../src/ops/doctor/turn-client.js';
