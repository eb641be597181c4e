/** `silo plans list|add|set`: what tenants on each plan may use. */
import { Command } from 'commander';
import { z } from 'zod';
import type { PlanLimits } from '../src/catalog/types.js';
import { MAX_BYTES, parseByteSize } from '../src/lib/sizes.js';
import { parseOptions, printJson, printTable, say, withContext } from './runtime.js';
import { fmtBytes } from './tenants-backup.js';

// Services are imported inside the actions: a command loads only what it runs (start-up time).
const plansService = () => import('../src/provisioning/plans-service.js');

/** An option that is `unlimited` (null) or a value `parse` reads (its Error's message is the issue). */
const limitOption = (parse: (v: string) => number) =>
  z.string().transform((v, ctx) => {
    if (v.trim().toLowerCase() === 'unlimited') return null;
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** A whole number from `min` to `max`. */
const whole = (min: number, max: number) => (v: string) => {
  if (!/^\s*\d{1,10}\s*$/.test(v)) throw new Error(`must be a whole number or "unlimited", not ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) throw new Error(`must be from ${min} to ${max} or "unlimited"`);
  return n;
};
const countOption = limitOption(whole(0, 1_000_000_000));
const rateOption = limitOption(whole(1, 1_000_000_000));
const bytesOption = limitOption((v) => {
  const n = parseByteSize(v);
  if (n > MAX_BYTES) throw new Error(`must be at most ${MAX_BYTES} bytes (1 PiB) or "unlimited"`);
  return n;
});

/** The options of add and set, as commander gives them (strings). */
interface LimitFlags {
  maxUsers?: string;
  maxContacts?: string;
  maxAttachmentBytes?: string;
  requestsPerMinute?: string;
  json?: boolean;
}

/** Parses the limit options into the API's names (ValidationError, exit 2, naming the option). */
function limitsFrom(o: LimitFlags): Partial<PlanLimits> {
  const p = parseOptions(
    z.object({
      'max-users': countOption.optional(),
      'max-contacts': countOption.optional(),
      'max-attachment-bytes': bytesOption.optional(),
      'requests-per-minute': rateOption.optional(),
    }),
    {
      'max-users': o.maxUsers,
      'max-contacts': o.maxContacts,
      'max-attachment-bytes': o.maxAttachmentBytes,
      'requests-per-minute': o.requestsPerMinute,
    },
  );
  const out: Partial<PlanLimits> = {};
  if (p['max-users'] !== undefined) out.maxUsers = p['max-users'];
  if (p['max-contacts'] !== undefined) out.maxContacts = p['max-contacts'];
  if (p['max-attachment-bytes'] !== undefined) out.maxAttachmentBytes = p['max-attachment-bytes'];
  if (p['requests-per-minute'] !== undefined) out.requestsPerMinute = p['requests-per-minute'];
  return out;
}

/** A limit for people: a number, bytes with a unit, or `unlimited`. */
const show = (v: number | null, bytes = false) => (v === null ? 'unlimited' : bytes ? `${fmtBytes(v)} (${v})` : String(v));

/** Adds the limit options to a command. */
function withLimitOptions(cmd: Command): Command {
  return cmd
    .option('--max-users <n>', 'active users at most, or "unlimited"')
    .option('--max-contacts <n>', 'live contacts at most, or "unlimited"')
    .option(
      '--max-attachment-bytes <size>',
      'bytes of all attachments together: bytes or a size such as 10MB, 1GiB (kB/MB/GB = 1000^n, KiB/MiB/GiB = 1024^n), or "unlimited"',
    )
    .option('--requests-per-minute <n>', 'API requests of a tenant per minute, or "unlimited"')
    .option('--json', 'machine-readable output');
}

export function plansCommand(): Command {
  const cmd = new Command('plans').description('plans: what tenants on each may use (users, contacts, attachment bytes, requests per minute)');

  cmd
    .command('list')
    .description('list the plans with their limits and how many tenants are on each')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      await withContext(async (ctx) => {
        const plans = await (await plansService()).listPlans(ctx);
        if (o.json) return printJson(plans);
        printTable(
          ['plan', 'max users', 'max contacts', 'max attachment bytes', 'requests/min', 'tenants'],
          plans.map((p) => [p.name, show(p.maxUsers), show(p.maxContacts), show(p.maxAttachmentBytes, true), show(p.requestsPerMinute), p.tenants]),
        );
        say(`${plans.length} plan(s)`);
      });
    });

  withLimitOptions(
    cmd
      .command('add')
      .description('add a plan (limits not given are unlimited)')
      .argument('<name>', 'plan name: 1-32 of a-z 0-9 -')
      .addHelpText('after', '\nExample:\n  $ silo plans add free --max-users 3 --max-contacts 100 --max-attachment-bytes 10MiB --requests-per-minute 60'),
  ).action(async (name: string, o: LimitFlags) => {
    const limits = limitsFrom(o);
    await withContext(async (ctx) => {
      const plan = await (await plansService()).addPlan(ctx, { name, ...limits });
      if (o.json) return printJson(plan);
      say(`Plan ${plan.name} added.`);
    });
  });

  withLimitOptions(
    cmd
      .command('set')
      .description('change limits of a plan ("unlimited" clears one); every API process applies them within one poll interval')
      .argument('<name>', 'plan name')
      .addHelpText('after', '\nExamples:\n  $ silo plans set free --max-contacts 200\n  $ silo plans set free --max-users unlimited'),
  ).action(async (name: string, o: LimitFlags) => {
    const limits = limitsFrom(o);
    await withContext(async (ctx) => {
      const plan = await (await plansService()).updatePlan(ctx, name, limits);
      if (o.json) return printJson(plan);
      say(
        `Plan ${plan.name}: users ${show(plan.maxUsers)}, contacts ${show(plan.maxContacts)}, attachment bytes ${show(plan.maxAttachmentBytes, true)}, requests/min ${show(plan.requestsPerMinute)}.`,
      );
    });
  });
  return cmd;
}
