/**
 * What a guest's serial console log says about its current boot: whether a kernel started, how
 * far cloud-init got, and what went wrong. kumo keeps every instance's console in a file
 * (appended across boots), so this needs nothing from the guest beyond what it prints.
 */
export interface BootReport {
  /** A kernel started: the log has a "Linux version" line (the last one begins the current boot). */
  booted: boolean;
  /** cloud-init in the current boot: absent when it printed nothing (yet, or no cloud-init). */
  cloudInit?: {
    stage: 'running' | 'done';
    version?: string;
    /** The guest's uptime when cloud-init finished. */
    upSeconds?: number;
    /** The instance id its final message names, when kumo's seed set that message. */
    instanceId?: string;
  };
  /** cloud-init's warnings and errors in the current boot, as printed (at most MAX_ERRORS). */
  errors: string[];
  /** The kernel's panic message, when it panicked. */
  panic?: string;
}

const MAX_ERRORS = 5;
/** Written into cloud-init's final message by kumo's seed, so a finish names its instance. */
export const FINAL_MESSAGE_MARK = 'kumo instance';
/**
 * cloud-init's default final message plus the instance, in its own template. Braces, not
 * `$version`: cloud-init's basic renderer reads `$timestamp.` as a dotted name and fails.
 * The line still starts as every cloud-init's does, so images that ignore it still match.
 */
export const finalMessageFor = (instanceId: string): string =>
  `Cloud-init v. \${version} finished at \${timestamp}. Datasource \${datasource}.  Up \${uptime} seconds. ${FINAL_MESSAGE_MARK} ${instanceId}`;

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const KERNEL_TIME = /^\[\s*\d+\.\d+\]\s*/;
const BOOT = /\bLinux version \d/;
const RUNNING = /\bCloud-init v\. (\S+) running '/;
const FINISHED = new RegExp(`\\bCloud-init v\\. (\\S+) finished at .*?Up ([\\d.]+) seconds(?:\\. ${FINAL_MESSAGE_MARK} (\\S+))?`);
// cloud-init's log lines on the console: "2026-12-07 01:02:03,456 - util.py[WARNING]: Failed …".
const CLOUD_INIT_PROBLEM = /\b[\w.-]+\.py\[(WARNING|ERROR|CRITICAL)\]: (.*)$/;
const UNIT_FAILED = /Failed to start .*cloud-(init|config|final)/i;
const PANIC = /Kernel panic - not syncing: (.*)$/;

export function readBootReport(log: string): BootReport {
  const lines = log.split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) if (BOOT.test(lines[i]!)) { start = i; break; }
  const report: BootReport = { booted: start >= 0, errors: [] };
  for (const raw of lines.slice(Math.max(start, 0))) {
    const line = raw.replace(ANSI, '').replace(/\r/g, '').replace(KERNEL_TIME, '').trim();
    const finished = FINISHED.exec(line);
    if (finished) {
      report.cloudInit = { stage: 'done', version: finished[1]!, upSeconds: Number(finished[2]), ...(finished[3] ? { instanceId: finished[3] } : {}) };
      continue;
    }
    const running = RUNNING.exec(line);
    if (running && report.cloudInit?.stage !== 'done') report.cloudInit = { stage: 'running', version: running[1]! };
    const problem = CLOUD_INIT_PROBLEM.exec(line);
    if (problem) addError(report, `${problem[1]}: ${problem[2]!}`);
    else if (UNIT_FAILED.test(line)) addError(report, line);
    const panic = PANIC.exec(line);
    if (panic) report.panic = panic[1]!.trim();
  }
  return report;
}

function addError(report: BootReport, text: string): void {
  if (report.errors.length < MAX_ERRORS && !report.errors.includes(text)) report.errors.push(text);
}
