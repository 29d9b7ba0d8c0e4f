import { Command, Option } from 'commander';
import { named, namedOption } from '../names.js';
import { collect, actor, context } from '../app.js';
import { json, table } from '../render.js';
import { LoadBalancerService, type LoadBalancerView } from '../../service/loadbalancers.js';
import { parseCount, PORT_RANGE, WAF_LOG_LIMIT } from '../../model/sizes.js';

export function lbCommand(): Command {
  const cmd = new Command('lb').description('load balancers: HAProxy with health checks, optionally behind a web application firewall');
  cmd.command('create').argument('<name>')
    .addOption(namedOption('host', '--host <host>', 'the host (role lb) it runs on').makeOptionMandatory())
    .requiredOption('--frontend <addr[:port]>', 'the public address (the host\'s own) and port, default port 80')
    .addOption(namedOption('network', '--network <network>', 'the network the LB reaches its instances on').makeOptionMandatory())
    .addOption(namedOption('instance', '--instance <name>', 'an instance behind it (repeatable)').argParser(collect).default([] as string[]))
    .option('--backend-port <port>', 'the instances\' port', '8080')
    .option('--waf', 'ModSecurity with the OWASP Core Rule Set in front (attacks get 403)')
    .option('--waf-detect-only', 'the WAF logs attacks but lets them through')
    .addOption(new Option('--paranoia <level>', 'OWASP CRS paranoia level').choices(['1', '2', '3', '4']).default('1'))
    .action(async (name: string, o: { host: string; frontend: string; network: string; instance: string[]; backendPort: string; waf?: boolean; wafDetectOnly?: boolean; paranoia: string }) => {
      const port = parseCount('--backend-port', o.backendPort, PORT_RANGE);
      const lb = await new LoadBalancerService(await context(), actor()).create({
        name, host: o.host, frontend: o.frontend, network: o.network, instances: o.instance, backendPort: port,
        ...(o.waf || o.wafDetectOnly ? { waf: { enabled: !o.wafDetectOnly, paranoia: Number(o.paranoia) } } : {}),
      });
      console.log(`load balancer ${lb.name}: http://${lb.frontend.address}:${lb.frontend.port}/ on ${lb.host} -> ${lb.instances.length} instance(s) on port ${lb.backendPort}${lb.waf ? `, WAF ${lb.waf.enabled ? 'on' : 'detection only'} (paranoia ${lb.waf.paranoia})` : ''}`);
    });
  cmd.command('list').option('--json', 'machine-readable output').action(async (o: { json?: boolean }) => {
    const lbs = await new LoadBalancerService(await context(), actor()).list();
    if (o.json) return console.log(json(lbs));
    console.log(table(['Name', 'Host', 'Frontend', 'State', 'WAF', 'Backends up'],
      lbs.map((l) => [l.name, l.host, `${l.frontend.address}:${l.frontend.port}`, l.running ? 'running' : 'STOPPED',
        l.waf ? `${l.waf.enabled ? 'on' : 'detect'} p${l.waf.paranoia}${l.wafRunning ? '' : ' (STOPPED)'}` : 'off',
        `${l.backends.filter((b) => b.status === 'UP').length}/${l.backends.length}`])));
  });
  cmd.command('show').addArgument(named('lb', '<name>')).option('--json', 'machine-readable output').action(async (name: string, o: { json?: boolean }) => {
    const l = await new LoadBalancerService(await context(), actor()).get(name);
    if (o.json) return console.log(json(l));
    printLb(l);
  });
  cmd.command('set').addArgument(named('lb', '<name>')).description('change the instances behind it')
    .addOption(namedOption('instance', '--instance <name>', 'an instance behind it (repeatable; replaces the list)').argParser(collect).default([] as string[]))
    .action(async (name: string, o: { instance: string[] }) => {
      printLb(await new LoadBalancerService(await context(), actor()).setInstances(name, o.instance));
    });
  cmd.command('sync').addArgument(named('lb', '<name>')).description('make the LB host match kumo\'s record again (addresses, config, daemons)')
    .action(async (name: string) => {
      const svc = new LoadBalancerService(await context(), actor());
      await svc.sync(name);
      printLb(await svc.get(name));
    });
  cmd.command('delete').addArgument(named('lb', '<name>')).action(async (name: string) => {
    await new LoadBalancerService(await context(), actor()).delete(name);
    console.log(`load balancer ${name} deleted`);
  });
  return cmd;
}

export function wafCommand(): Command {
  const cmd = new Command('waf').description('the web application firewall of a load balancer');
  cmd.command('log').addArgument(named('lb', '<lb>')).description('recent requests the WAF blocked (or flagged), with the rules that matched')
    .option('--limit <n>', 'how many', '20').option('--json', 'machine-readable output')
    .action(async (lb: string, o: { limit: string; json?: boolean }) => {
      const events = await new LoadBalancerService(await context(), actor()).wafLog(lb, parseCount('--limit', o.limit, WAF_LOG_LIMIT));
      if (o.json) return console.log(json(events));
      console.log(table(['Time', 'Client', 'Request', 'Status', 'Rules'],
        events.map((e) => [e.time, e.client, `${e.method} ${e.uri}`.slice(0, 60), `${e.status}${e.blocked ? ' blocked' : ''}`, e.ruleIds.join(',')])));
    });
  return cmd;
}

function printLb(l: LoadBalancerView): void {
  console.log(`${l.name} on ${l.host}: http://${l.frontend.address}:${l.frontend.port}/ (${l.running ? 'running' : 'STOPPED'})`);
  if (l.waf) console.log(`WAF: ${l.waf.enabled ? 'on' : 'detection only'}, paranoia ${l.waf.paranoia}${l.wafRunning ? '' : ' (STOPPED)'}`);
  console.log(table(['Instance', 'Address', 'Status', 'Last check'],
    l.backends.map((b) => [b.instance, b.address ? `${b.address}:${l.backendPort}` : undefined, b.status, b.check])));
}
