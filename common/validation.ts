/** Turning schema failures into the one error shape the API answers with. */
import { z } from 'zod';
import { ValidationError, type ValidationIssue } from './errors.js';

export function issuesOf(error: z.ZodError): ValidationIssue[] {
  const at = (path: PropertyKey[]) => (path.length === 0 ? '(root)' : path.map(String).join('.'));
  // A record key that fails its schema is one "Invalid key in record" issue with the key's
  // own issues inside: those say what is wrong (e.g. that an env name is reserved).
  return error.issues.flatMap((issue) =>
    issue.code === 'invalid_key' && issue.issues.length > 0
      ? issue.issues.map((inner) => ({ path: at([...issue.path, ...inner.path]), message: inner.message }))
      : [{ path: at(issue.path), message: issue.message }],
  );
}

export function validationErrorFrom(error: z.ZodError, what: string): ValidationError {
  const issues = issuesOf(error);
  const first = issues[0];
  const summary = first ? `${first.path}: ${first.message}` : 'invalid';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new ValidationError(`invalid ${what}: ${summary}${more}`, issues);
}

/** Parse or throw a ValidationError naming every offending path. */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw validationErrorFrom(result.error, what);
  return result.data;
}
