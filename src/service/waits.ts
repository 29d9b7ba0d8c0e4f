/**
 * What the faces need of kumo's one way to say what a step waits for (exec/waits.ts): the CLI
 * prints notices (reportWaits), an API operation keeps them in its `waiting` field.
 */
export { describeWait, reportWaits, reportingWaitsTo, waiting, waitingFor, WAIT_EVERY_MS, WAIT_FIRST_MS, type WaitListener, type WaitNotice } from '../exec/waits.js';
