/**
 * The tenant lifecycle: create, recreate, delete, suspend, resume, custom domains.
 * One implementation, called by the CLI and the platform API. Every action is an
 * operation row; every step is idempotent (see `steps.ts`), so `repair` can finish
 * what a crash interrupted; every decision is taken under the tenant's lock
 * (`tenant-lock.ts`) on state read again once the lock is held.
 *
 * This module gathers the single-purpose modules that implement it; import them directly
 * inside `src/provisioning` (`tenant-lookup.ts` has no lifecycle logic, so it closes no
 * import circle).
 */
export { getTenant } from './tenant-lookup.js';
export { createTenant, createTenantInput, type CreateTenantInput, type ProvisionResult } from './tenant-create.js';
export { deleteTenant, dropTenantResources, recreateTenant, type DestructiveOptions } from './tenant-destroy.js';
export { resumeTenant, suspendTenant } from './tenant-status.js';
export { addDomain, removeDomain } from './tenant-domains.js';
