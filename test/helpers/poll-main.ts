import { pollHttp } from './lab.js';

/**
 * `node poll-main.js URL [INTERVAL_MS [REQUEST_TIMEOUT_MS]]`: pollHttp as a process of its own, so a test can run it
 * inside a lab namespace (nsenter --net); prints its statistics as JSON when sent SIGTERM.
 */
const [url, interval, timeout] = process.argv.slice(2);
// `node --test dist/test/` also loads every helper as a test file: without a URL, do nothing.
if (url) {
  const poll = pollHttp(url, { intervalMs: Number(interval ?? 100), requestTimeoutMs: Number(timeout ?? 1000) });
  process.on('SIGTERM', () => {
    void poll.stop().then((stats) => {
      process.stdout.write(`${JSON.stringify(stats)}\n`);
      process.exit(0);
    });
  });
}
