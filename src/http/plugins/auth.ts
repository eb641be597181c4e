/**
 * Access tokens (JWT, HS256, `@fastify/jwt`). Tenant tokens carry `aud: "tenant"`,
 * `sub` (user id), `tid` (tenant id), `role` (the role's name), `rid` (the role's id),
 * `gen` (the tenant's token generation),
 * `tv` (the user's `token_version`) and `av` (the tenant's `auth_version`) at issue, and
 * live 15 minutes; platform tokens carry `aud: "platform"`, `sub` and `role`
 * (`operator|support`). A token never opens routes of the other audience, and a tenant
 * token presented to another tenant is refused with 401 `TOKEN_TENANT_MISMATCH`.
 *
 * Revocation, checked against the tenant row the tenant plugin already holds (cached,
 * re-read by every process within one change-poll interval of a change):
 * - `gen` other than the tenant's generation (recreate, restore, delete, revoke-tokens):
 *   401 `TOKEN_REVOKED`. A `gen` newer than the cached row re-reads the row once.
 * - `av` older than the tenant's auth version (some user was deactivated, changed role or
 *   had its password reset since the token was issued): the user's current state is read
 *   (once per user and auth version, {@link UserTokenStates}); a `tv` or role that is no
 *   longer the user's, or an inactive user, is 401 `TOKEN_REVOKED`. A lowered role is
 *   therefore refused, not applied: the client refreshes and gets a token with the new role.
 * - otherwise no query at all.
 * Tokens of before these claims existed count as `gen` 1, `tv` 0, `av` 0.
 *
 * Permissions (`requirePermission`): a token carries its role, never its permissions; the
 * role's permissions come from {@link RolePermissions} (per process, re-read within one
 * change-poll interval of a change in another process, at once after one in this
 * process). So a role's new permissions apply to its users' current tokens within one
 * interval, while a user moved to another role is revoked as above. A token without `rid`
 * (issued before roles) is resolved by its role name.
 */
import fastifyJwt from '@fastify/jwt';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { LRUCache } from 'lru-cache';
import type { PlatformRole, Tenant } from '../../catalog/index.js';
import type { Permission } from '../../crm/permissions.js';
import { RolePermissions } from '../../crm/role-permissions.js';
import { UserTokenStates } from '../../crm/token-states.js';
import type { TenantRole } from '../../crm/users-repository.js';
import { ForbiddenError, UnauthorizedError } from '../../lib/errors.js';

/** Access token lifetime, seconds. */
export const ACCESS_TTL_S = 15 * 60;

/** Claims of a tenant access token. */
export interface TenantClaims {
  aud: 'tenant';
  sub: string;
  tid: number;
  role: TenantRole;
  /** The role's id at issue (absent: resolve `role` by name). */
  rid?: number;
  /** The tenant's token generation at issue (absent: 1). */
  gen?: number;
  /** The user's `token_version` at issue (absent: 0). */
  tv?: number;
  /** The tenant's `auth_version` at issue (absent: 0). */
  av?: number;
}

/** Claims of a platform access token. */
export interface PlatformClaims {
  aud: 'platform';
  sub: string;
  role: PlatformRole;
  email: string;
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: TenantClaims | PlatformClaims;
    user: TenantClaims | PlatformClaims;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * onRequest: a valid tenant token for the identified tenant, with one of `roles` (any when empty).
     * @deprecated for role lists: use {@link requirePermission} (`requireTenantUser()` without roles stays: any signed-in user)
     */
    requireTenantUser(roles?: TenantRole[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /**
     * onRequest: a valid tenant token for the identified tenant whose role holds `permission` (or one of them, given a list)
     * (403 `FORBIDDEN` otherwise); sets `request.tenantUser` and `request.tenantPermissions`.
     */
    requirePermission(permission: Permission | readonly Permission[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** Roles' permissions as this process caches them (`invalidate(tenantId)` after a roles write). */
    rolePermissions: RolePermissions;
    /** preHandler: a valid platform token with one of `roles` (any when empty). */
    requirePlatformUser(roles?: PlatformRole[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** Signs an access token. */
    signAccessToken(claims: TenantClaims | PlatformClaims): string;
    /**
     * Signs a tenant access token for `user` at `tokenVersion` (read from the tenant
     * database), in the generation and auth version of `request.tenant`. That row must have
     * been read before `tokenVersion` was (as the tenant plugin does): a change committed
     * in between then moves the auth version past the token's, and the token is re-checked.
     */
    signTenantToken(request: FastifyRequest, user: { id: number; role: TenantRole; roleId: number }, tokenVersion: number): string;
    /**
     * The identified tenant, re-read from the catalog when a token names a newer
     * generation than the cached row (another process changed it within the poll interval).
     */
    tenantForGeneration(request: FastifyRequest, generation: number): Promise<Tenant>;
  }
  interface FastifyRequest {
    /** Set by requireTenantUser and requirePermission. */
    tenantUser?: TenantClaims;
    /** The permissions of the user's role, set by requirePermission. */
    tenantPermissions?: ReadonlySet<Permission>;
    /** Set by requirePlatformUser. */
    platformUser?: PlatformClaims;
  }
}

/** How many verified tokens are kept (~0.5 KB each). */
const VERIFIED_KEPT = 10_000;

/**
 * Tokens whose signature and claims were verified, by their exact text, until their `exp`:
 * a client sends the same token for up to 15 minutes, and a hit costs a map lookup instead
 * of fast-jwt's own cache (which hashes the token with SHA-256 on every request) and decode.
 * The key is the whole token, so only a byte-identical token hits; the claims are frozen.
 * One cache per app (per signing secret).
 */
type VerifiedTokens = LRUCache<string, { claims: TenantClaims | PlatformClaims; expiresAtMs: number }>;

async function verify(request: FastifyRequest, verified: VerifiedTokens): Promise<TenantClaims | PlatformClaims> {
  const header = request.headers.authorization;
  if (!header) throw new UnauthorizedError('send Authorization: Bearer <access token>', 'UNAUTHORIZED');
  if (!/^Bearer [A-Za-z0-9._~+/-]+=*$/.test(header)) throw new UnauthorizedError('the Authorization header must be "Bearer <token>"', 'INVALID_TOKEN');
  const token = header.slice(7);
  const hit = verified.get(token);
  // fast-jwt's rule: expired once now >= exp (no clock tolerance).
  if (hit && Date.now() < hit.expiresAtMs) {
    request.user = hit.claims;
    return hit.claims;
  }
  const claims = Object.freeze(await request.jwtVerify<TenantClaims | PlatformClaims>());
  const exp = (claims as { exp?: unknown }).exp;
  if (typeof exp === 'number') verified.set(token, { claims, expiresAtMs: exp * 1000 });
  return claims;
}

const revoked = () => new UnauthorizedError('this token was revoked: refresh it or sign in again', 'TOKEN_REVOKED');

/** Options: the signing secret (at least 32 bytes); how long roles' permissions are cached, ms (the change-poll interval). */
export default fp<{ secret: string; rolesTtlMs: number }>(
  async (app, opts) => {
    await app.register(fastifyJwt, {
      secret: opts.secret,
      sign: { expiresIn: ACCESS_TTL_S, algorithm: 'HS256' },
      // Verified tokens are cached by verify() above.
      verify: { algorithms: ['HS256'] },
    });

    app.decorate('signAccessToken', (claims: TenantClaims | PlatformClaims) => app.jwt.sign(claims));

    app.decorate('signTenantToken', (request: FastifyRequest, user: { id: number; role: TenantRole; roleId: number }, tokenVersion: number) => {
      const tenant = request.tenant!;
      return app.jwt.sign({
        aud: 'tenant',
        sub: String(user.id),
        tid: tenant.id,
        role: user.role,
        rid: user.roleId,
        gen: tenant.generation,
        tv: tokenVersion,
        av: tenant.authVersion,
      } satisfies TenantClaims);
    });

    app.decorate('tenantForGeneration', async (request: FastifyRequest, generation: number) => {
      const tenant = request.tenant!;
      if (generation <= tenant.generation) return tenant;
      app.tenantResolver.invalidate(tenant.slug);
      request.tenant = await app.tenantResolver.load(tenant.slug);
      return request.tenant;
    });

    const states = new UserTokenStates();
    const verified: VerifiedTokens = new LRUCache({ max: VERIFIED_KEPT });
    /** @throws UnauthorizedError `TOKEN_REVOKED` (see the module comment) */
    async function assertCurrent(request: FastifyRequest, claims: TenantClaims): Promise<void> {
      const tenant = await app.tenantForGeneration(request, claims.gen ?? 1);
      if ((claims.gen ?? 1) !== tenant.generation) throw revoked();
      if ((claims.av ?? 0) >= tenant.authVersion) return;
      const userId = Number(claims.sub);
      if (!Number.isSafeInteger(userId)) throw revoked();
      const state = await states.get(tenant, userId, () => app.tenantKnex(request));
      if (!state || !state.active || state.tokenVersion !== (claims.tv ?? 0) || state.role !== claims.role) throw revoked();
      if (claims.rid !== undefined && state.roleId !== claims.rid) throw revoked();
    }

    /** The current claims of a tenant token for the identified tenant. @throws UnauthorizedError */
    async function tenantClaims(request: FastifyRequest): Promise<TenantClaims> {
      const claims = await verify(request, verified);
      if (claims.aud !== 'tenant') throw new UnauthorizedError('a platform token does not open tenant routes', 'WRONG_AUDIENCE');
      if (!request.tenant || claims.tid !== request.tenant.id) {
        throw new UnauthorizedError('this token belongs to another tenant', 'TOKEN_TENANT_MISMATCH');
      }
      await assertCurrent(request, claims);
      return claims;
    }

    app.decorate('requireTenantUser', (roles: TenantRole[] = []) => async (request: FastifyRequest) => {
      const claims = await tenantClaims(request);
      if (roles.length && !roles.includes(claims.role)) throw new ForbiddenError(`this needs the role ${roles.join(' or ')}`, 'FORBIDDEN');
      request.tenantUser = claims;
    });

    const rolePermissions = new RolePermissions(opts.rolesTtlMs);
    app.decorate('rolePermissions', rolePermissions);
    app.decorate('requirePermission', (permission: Permission | readonly Permission[]) => async (request: FastifyRequest) => {
      const claims = await tenantClaims(request);
      const tenant = request.tenant!;
      const role = claims.rid !== undefined ? { id: claims.rid } : { name: claims.role };
      const permissions = await rolePermissions.get(tenant, role, () => app.tenantKnex(request));
      const wanted: readonly Permission[] = typeof permission === 'string' ? [permission] : permission;
      if (!wanted.some((p) => permissions.has(p)))
        throw new ForbiddenError(`this needs the permission ${wanted.join(' or ')}`, 'FORBIDDEN', { permission: wanted.join(' or ') });
      request.tenantUser = claims;
      request.tenantPermissions = permissions;
    });

    app.decorate('requirePlatformUser', (roles: PlatformRole[] = []) => async (request: FastifyRequest) => {
      const claims = await verify(request, verified);
      if (claims.aud !== 'platform') throw new UnauthorizedError('a tenant token does not open platform routes', 'WRONG_AUDIENCE');
      if (roles.length && !roles.includes(claims.role)) throw new ForbiddenError(`this needs the role ${roles.join(' or ')}`, 'FORBIDDEN');
      request.platformUser = claims;
    });
  },
  { name: 'silo-auth', dependencies: ['silo-tenant'] },
);
