/**
 * The JSON body parser: Fastify's own (secure-json-parse, refusing `__proto__` and
 * `constructor.prototype` keys), behind a bound on nesting. A body nested deeper than
 * {@link MAX_JSON_DEPTH} levels is refused with 400 `BODY_TOO_DEEP` before it is parsed,
 * so no later walk over a body (validation, the lone-surrogate scan, idempotency hashing,
 * serialization) meets thousands of levels, whatever fits under the body limit.
 * RFC 8259 §9 lets a parser limit the depth of nesting.
 */
import fp from 'fastify-plugin';
import { ValidationError } from '../../lib/errors.js';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../../lib/validation.js';

export default fp(
  (app, _opts, done) => {
    const parse = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
      if (jsonDepthExceeds(body as string, MAX_JSON_DEPTH)) {
        done(
          new ValidationError(`the request body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`, { maxDepth: MAX_JSON_DEPTH }, 'BODY_TOO_DEEP'),
          undefined,
        );
        return;
      }
      void parse(request, body as string, done);
    });
    done();
  },
  { name: 'silo-json-body' },
);
