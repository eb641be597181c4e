/**
 * One place that turns every error into problem+json (see `../problem.ts`), and the 404
 * for unknown routes. 5xx causes are logged; 4xx are logged at debug level.
 */
import fp from 'fastify-plugin';
import { PROBLEM_CONTENT_TYPE, problemType, toProblem } from '../problem.js';

declare module 'fastify' {
  interface FastifyReply {
    /** The problem `code` of an error answer (read by the request history). */
    problemCode?: string;
  }
}

export default fp(
  async (app) => {
    app.setErrorHandler((err, request, reply) => {
      const { problem, headers, unexpected } = toProblem(err, request.id);
      if (unexpected) request.log.error({ err }, 'request failed');
      else request.log.debug({ code: problem.code, status: problem.status }, problem.detail);
      reply.problemCode = problem.code;
      return reply.code(problem.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(problem);
    });
    app.setNotFoundHandler((request, reply) => {
      reply.problemCode = 'ROUTE_NOT_FOUND';
      return reply
        .code(404)
        .type(PROBLEM_CONTENT_TYPE)
        .send({ type: problemType('ROUTE_NOT_FOUND'), title: 'Not Found', status: 404, detail: `no route ${request.method} ${request.url.split('?')[0]}`, code: 'ROUTE_NOT_FOUND', requestId: request.id });
    });
  },
  { name: 'silo-errors' },
);
