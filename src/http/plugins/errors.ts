/**
 * One place that turns every error into problem+json (see `../problem.ts`), and the 404
 * for unknown routes. 5xx causes are logged; 4xx are logged at debug level.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { PROBLEM_CONTENT_TYPE, problemType, toProblem } from '../problem.js';

declare module 'fastify' {
  interface FastifyReply {
    /** The problem `code` of an error answer (read by the request history). */
    problemCode?: string;
  }
}

/**
 * Answers an error as problem+json. Used by the error handler, and by the app's
 * `frameworkErrors` option for what Fastify's router refuses before any route runs (a
 * malformed percent-encoding, an over-long path parameter).
 */
export function sendProblem(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { problem, headers, unexpected } = toProblem(err, request.id);
  if (unexpected) request.log.error({ err }, 'request failed');
  else request.log.debug({ code: problem.code, status: problem.status }, problem.detail);
  reply.problemCode = problem.code;
  // Set here too: the router's own errors do not run the app's onSend hook that sets it.
  reply.header('x-request-id', request.id);
  return reply.code(problem.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(problem);
}

export default fp(
  (app, _opts, done) => {
    app.setErrorHandler((err, request, reply) => sendProblem(err, request, reply));
    app.setNotFoundHandler((request, reply) => {
      reply.problemCode = 'ROUTE_NOT_FOUND';
      return reply
        .code(404)
        .type(PROBLEM_CONTENT_TYPE)
        .send({
          type: problemType('ROUTE_NOT_FOUND'),
          title: 'Not Found',
          status: 404,
          detail: `no route ${request.method} ${request.url.split('?')[0]}`,
          code: 'ROUTE_NOT_FOUND',
          requestId: request.id,
        });
    });
    done();
  },
  { name: 'silo-errors' },
);
