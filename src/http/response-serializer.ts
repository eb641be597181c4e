/**
 * Response serialization: the route's zod response schema, converted to JSON Schema the
 * way the OpenAPI document converts it (zod's `toJSONSchema`, OpenAPI 3.0 target,
 * `io: 'output'`, `z.date()` as a `date-time` string, as fastify-type-provider-zod does),
 * compiled once per schema into a `fast-json-stringify` function.
 *
 * Why: fastify-type-provider-zod's serializer encodes every answer with zod and then
 * calls `JSON.stringify`, a walk of the schema and a copy of the payload per response
 * (about 4.5% of the API's CPU). The compiled function writes the same bytes directly.
 *
 * Same bytes: a schema is compiled only if every node of it is one whose zod encoding
 * leaves the value alone and whose `fast-json-stringify` output is `JSON.stringify`'s:
 * strings, numbers, booleans and dates without coercion or rewriting checks (`trim`,
 * `toLowerCase`, `refine`...), `null`, string or number enums and literals, nullable,
 * arrays, objects (stripped, strict, or loose with unknown extra keys), and records with
 * plain string keys. An optional value is accepted only as an object property or a
 * record value, an unknown one only as a record value or a loose object's extra keys:
 * there `fast-json-stringify` skips `undefined`, functions and symbols as `JSON.stringify`
 * does, and writes the rest with `JSON.stringify` (only a value whose `toJSON()` returns
 * undefined would differ). Required properties are kept required only up to the first
 * optional one: `fast-json-stringify` writes required properties first, zod writes them
 * in the schema's order.
 *
 * Fallback: a schema holding anything else (unions, intersections, tuples, transforms,
 * pipes, codecs, defaults, lazy, a declared `z.unknown()` / `z.any()` property, an
 * optional at the top or as an array item...), or one the conversion or the compilation
 * refuses, is answered by fastify-type-provider-zod's serializer, as before: for that
 * route and status only.
 *
 * Guard: the compiled function does not validate. A payload that does not match its
 * schema used to be refused (500 `FST_ERR_RESPONSE_SERIALIZATION`). With `verify` (every
 * environment but production, so every test) each answer is also serialized by zod, which
 * still refuses it, and both outputs must be equal, else the answer is a 500 too. In
 * production a missing required property still fails (`"x" is required!`, a 500) if no
 * optional property comes before it in the schema; any other mismatch is written with
 * `fast-json-stringify`'s coercions (a string in a date field as it is, a fraction in an
 * integer field truncated, `null` in a string field as `""`). Handlers' return types are
 * checked against the schemas' output types, so such a payload needs a cast or a
 * database value of another type than declared.
 */
import type { FastifySerializerCompiler } from 'fastify';
import fastJson from 'fast-json-stringify';
import { serializerCompiler as zodSerializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** A serializer: the payload in, the JSON text out. */
export type Serializer = (data: unknown) => string;

/** What a route declares as a response: a zod schema, or `{ properties: zodSchema }`. */
type ResponseSchema = Parameters<typeof zodSerializerCompiler>[0]['schema'];

/** Options of {@link createResponseSerializerCompiler}. */
export interface ResponseSerializerOptions {
  /** Also serialize with zod: refuse what zod refuses and check both outputs are equal (costs zod's time again). */
  verify: boolean;
}

/**
 * Checks that only validate (they never change the value). `overwrite` (`trim`,
 * `toLowerCase`, `normalize`) rewrites it; `custom` (`refine`, `check`) may.
 */
const VALIDATING_CHECKS = new Set(['less_than', 'greater_than', 'multiple_of', 'number_format', 'length_equals', 'min_length', 'max_length', 'string_format']);

/**
 * Where a schema node sits: the root, an array item or a wrapped value (`value`), an
 * object's declared property (`property`), a record value or a loose object's extra key
 * (`extra`).
 */
type Position = 'value' | 'property' | 'extra';

/** True when every value is of one JSON primitive type (string, number or boolean). */
function onePrimitiveType(values: unknown[]): boolean {
  const types = new Set(values.map((v) => typeof v));
  return types.size === 1 && ['string', 'number', 'boolean'].includes([...types][0]!);
}

/** True when zod's encoding of `schema` is the value itself and `fast-json-stringify` writes it as `JSON.stringify` does. */
function isPlain(schema: z.core.$ZodType, position: Position): boolean {
  const def = (schema as z.core.$ZodTypes)._zod.def;
  if (def.checks?.some((c) => !VALIDATING_CHECKS.has(c._zod.def.check))) return false;
  switch (def.type) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'date':
      return !def.coerce;
    case 'null':
      return true;
    case 'enum':
      return onePrimitiveType(Object.values(def.entries));
    case 'literal':
      return onePrimitiveType(def.values);
    case 'unknown':
    case 'any':
      return position === 'extra';
    case 'optional':
      return position !== 'value' && isPlain(def.innerType, 'value');
    case 'nullable':
      return isPlain(def.innerType, 'value');
    case 'array':
      return isPlain(def.element, 'value');
    case 'object': {
      const catchall = def.catchall?._zod.def.type;
      return (catchall === undefined || catchall === 'unknown' || catchall === 'never') && Object.values(def.shape).every((s) => isPlain(s, 'property'));
    }
    case 'record': {
      const key = (def.keyType as z.core.$ZodTypes)._zod.def;
      return key.type === 'string' && isPlain(def.keyType, 'value') && isPlain(def.valueType, 'extra');
    }
    default:
      return false;
  }
}

/** JSON Schema keywords that `fast-json-stringify` would serialize differently from zod (none is expected after {@link isPlain}). */
const UNSUPPORTED_KEYWORDS = ['$ref', 'allOf', 'anyOf', 'oneOf', 'not', 'if', 'const', 'prefixItems', 'patternProperties'];

/**
 * The keywords of a converted schema that steer `fast-json-stringify`: `type`,
 * `nullable`, the `date-time` format (writes a `Date` as `toISOString()`), `properties`,
 * `required` (cut at the first optional property), `additionalProperties` and `items`.
 * Validation keywords, descriptions and a `default` (zod never writes one) are left out.
 * @throws Error on a keyword it cannot keep the meaning of
 */
function serializationSchema(s: z.core.JSONSchema.BaseSchema): Record<string, unknown> {
  const bad = UNSUPPORTED_KEYWORDS.find((k) => k in s);
  if (bad) throw new Error(`${bad} is not serialized like zod`);
  const out: Record<string, unknown> = {};
  if (s.type !== undefined) out.type = s.type;
  if (s.nullable === true) out.nullable = true;
  if (s.format === 'date-time') out.format = 'date-time';
  if (s.properties) {
    const keys = Object.keys(s.properties);
    out.properties = Object.fromEntries(keys.map((k) => [k, serializationSchema(s.properties![k] as z.core.JSONSchema.BaseSchema)]));
    const required = new Set(s.required);
    const firstOptional = keys.findIndex((k) => !required.has(k));
    out.required = firstOptional === -1 ? keys : keys.slice(0, firstOptional);
  }
  if (typeof s.additionalProperties === 'boolean') out.additionalProperties = s.additionalProperties;
  else if (s.additionalProperties) out.additionalProperties = serializationSchema(s.additionalProperties);
  if (Array.isArray(s.items)) throw new Error('tuples are not serialized like zod');
  if (s.items) out.items = serializationSchema(s.items as z.core.JSONSchema.BaseSchema);
  return out;
}

/** Compiled serializers by zod schema (`null`: not compilable), shared by every app of the process. */
const compiled = new WeakMap<z.core.$ZodType, Serializer | null>();

/**
 * The `fast-json-stringify` serializer of a zod response schema, or undefined when it
 * would not write the same bytes as zod's encoding and `JSON.stringify` (see the module's
 * documentation for the rules). Compiled once per schema object.
 */
export function compileFastSerializer(schema: z.core.$ZodType): Serializer | undefined {
  let serializer = compiled.get(schema);
  if (serializer === undefined) {
    serializer = null;
    if (isPlain(schema, 'value')) {
      try {
        const json = z.toJSONSchema(schema, {
          target: 'openapi-3.0',
          io: 'output',
          unrepresentable: 'any',
          cycles: 'ref',
          reused: 'inline',
          // No ids: every component inline, so the compiled schema has no `$ref`.
          metadata: z.registry(),
          override: ({ zodSchema, jsonSchema }) => {
            if (zodSchema._zod.def.type === 'date') Object.assign(jsonSchema, { type: 'string', format: 'date-time' });
          },
        });
        serializer = fastJson(serializationSchema(json)) as Serializer;
      } catch {
        serializer = null;
      }
    }
    compiled.set(schema, serializer);
  }
  return serializer ?? undefined;
}

/** The zod schema of a route's response, as fastify-type-provider-zod reads it. */
function zodSchemaOf(schema: ResponseSchema): z.core.$ZodType | undefined {
  if (schema instanceof z.core.$ZodType) return schema;
  return schema.properties instanceof z.core.$ZodType ? schema.properties : undefined;
}

/** Where two texts first differ, with a few characters of each from there. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `at ${i}: ${JSON.stringify(a.slice(i, i + 40))} instead of ${JSON.stringify(b.slice(i, i + 40))}`;
}

/**
 * Fastify's serializer compiler for zod response schemas: a compiled
 * `fast-json-stringify` function per route and status when the schema allows it
 * ({@link compileFastSerializer}), fastify-type-provider-zod's serializer otherwise.
 */
export function createResponseSerializerCompiler({ verify }: ResponseSerializerOptions): FastifySerializerCompiler<ResponseSchema> {
  return (route) => {
    // Called first: it refuses a schema that is not zod, as before.
    const zodSerializer = zodSerializerCompiler(route);
    const schema = zodSchemaOf(route.schema);
    const fast = schema && compileFastSerializer(schema);
    if (!fast) return zodSerializer;
    if (!verify) return fast;
    return (data) => {
      const expected = zodSerializer(data);
      const actual = fast(data);
      if (actual !== expected) {
        throw new Error(`${route.method} ${route.url} (${route.httpStatus}): the compiled serializer differs from zod's ${firstDifference(actual, expected)}`);
      }
      return actual;
    };
  };
}
