/**
 * Access tokens (JWT, HS256, `@fastify/jwt`). Tenant tokens carry `aud: "tenant"`,
 * `sub` (user id), `tid` (tenant id) and `role`, and live 15 minutes; platform tokens
 * carry `aud: "platform"`, `sub` and `role` (`operator|support`). A token never opens
 * routes of the other audience, and a tenant token presented to another tenant is
 * refused with 401 `TOKEN_TENANT_MISMATCH`.
 */
import fastifyJwt from '@fastify/jwt';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { PlatformRole } from '../../catalog/index.js';
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
    /** preHandler: a valid tenant token for the identified tenant, with one of `roles` (any when empty). */
    requireTenantUser(roles?: TenantRole[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** preHandler: a valid platform token with one of `roles` (any when empty). */
    requirePlatformUser(roles?: PlatformRole[]): (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /** Signs an access token. */
    signAccessToken(claims: TenantClaims | PlatformClaims): string;
  }
  interface FastifyRequest {
    /** Set by requireTenantUser. */
    tenantUser?: TenantClaims;
    /** Set by requirePlatformUser. */
    platformUser?: PlatformClaims;
  }
}

async function verify(request: FastifyRequest): Promise<TenantClaims | PlatformClaims> {
  const header = request.headers.authorization;
  if (!header) throw new UnauthorizedError('send Authorization: Bearer <access token>', 'UNAUTHORIZED');
  if (!/^Bearer [A-Za-z0-9._~+/-]+=*$/.test(header)) throw new UnauthorizedError('the Authorization header must be "Bearer <token>"', 'INVALID_TOKEN');
  return request.jwtVerify<TenantClaims | PlatformClaims>();
}

/** Options: the signing secret (at least 32 bytes). */
export default fp<{ secret: string }>(
  async (app, opts) => {
    await app.register(fastifyJwt, { secret: opts.secret, sign: { expiresIn: ACCESS_TTL_S, algorithm: 'HS256' }, verify: { algorithms: ['HS256'], cache: 10_000, cacheTTL: 60_000 } });

    app.decorate('signAccessToken', (claims: TenantClaims | PlatformClaims) => app.jwt.sign(claims));

    app.decorate('requireTenantUser', (roles: TenantRole[] = []) => async (request: FastifyRequest) => {
      const claims = await verify(request);
      if (claims.aud !== 'tenant') throw new UnauthorizedError('a platform token does not open tenant routes', 'WRONG_AUDIENCE');
      if (!request.tenant || claims.tid !== request.tenant.id) {
        throw new UnauthorizedError('this token belongs to another tenant', 'TOKEN_TENANT_MISMATCH');
      }
      if (roles.length && !roles.includes(claims.role)) throw new ForbiddenError(`this needs the role ${roles.join(' or ')}`, 'FORBIDDEN');
      request.tenantUser = claims;
    });

    app.decorate('requirePlatformUser', (roles: PlatformRole[] = []) => async (request: FastifyRequest) => {
      const claims = await verify(request);
      if (claims.aud !== 'platform') throw new UnauthorizedError('a tenant token does not open platform routes', 'WRONG_AUDIENCE');
      if (roles.length && !roles.includes(claims.role)) throw new ForbiddenError(`this needs the role ${roles.join(' or ')}`, 'FORBIDDEN');
      request.platformUser = claims;
    });
  },
  { name: 'silo-auth', dependencies: ['silo-tenant'] },
);
