// ModSecurity's JSON audit log, read back as the requests the WAF blocked.

/** One request ModSecurity blocked, or would have blocked in DetectionOnly mode. */
export interface WafEvent {
  /** ISO 8601, UTC. */
  time: string;
  client: string;
  method: string;
  uri: string;
  /** What the client got: 403 when blocked; the backend's answer in DetectionOnly mode. */
  status: number;
  blocked: boolean;
  /** Every rule that matched, e.g. ['942100', '949110']. */
  ruleIds: string[];
  messages: string[];
  /** ModSecurity's transaction id (also in nginx's error log). */
  id: string;
}

interface AuditTransaction {
  transaction?: {
    client_ip?: string; time_stamp?: string; unique_id?: string;
    request?: { method?: string; uri?: string };
    response?: { http_code?: number };
    producer?: { secrules_engine?: string };
    messages?: { message?: string; details?: { ruleId?: string } }[];
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Sat Nov 28 03:23:14 2026" (UTC, see `env TZ=UTC`) → ISO 8601; unknown shapes are kept. */
function auditTime(text: string): string {
  const m = /^\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(text.trim());
  const month = m ? MONTHS.indexOf(m[1]!) : -1;
  if (!m || month < 0) return text;
  return new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]))).toISOString();
}

/**
 * The anomaly-score verdicts (949xxx inbound, 959xxx outbound) and the recommended config's own
 * deny rules (2000xx) mean "blocked, or would have been"; other matches alone are notes (e.g.
 * 920350, a numeric Host header) that the audit log also keeps.
 */
const VERDICT = /^(?:9[45]9\d{3}|2000\d\d)$/;

/** Parses ModSecurity's JSON audit log (one transaction per line) into blocks, oldest first. */
export function parseAuditLog(text: string, limit = 100): WafEvent[] {
  const events: WafEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let doc: AuditTransaction;
    try {
      doc = JSON.parse(line) as AuditTransaction;
    } catch {
      continue; // a line being written right now, or cut by rotation
    }
    const t = doc.transaction;
    if (!t) continue;
    const messages = t.messages ?? [];
    const ruleIds = messages.map((m) => m.details?.ruleId ?? '').filter(Boolean);
    if (!ruleIds.some((id) => VERDICT.test(id))) continue;
    const status = Number(t.response?.http_code ?? 0);
    events.push({
      time: auditTime(t.time_stamp ?? ''),
      client: t.client_ip ?? '',
      method: t.request?.method ?? '',
      uri: t.request?.uri ?? '',
      status,
      blocked: t.producer?.secrules_engine === 'Enabled' && status === 403,
      ruleIds,
      messages: messages.map((m) => m.message ?? '').filter(Boolean),
      id: t.unique_id ?? '',
    });
  }
  return events.slice(-limit);
}
