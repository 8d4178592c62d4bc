/** Turning schema failures into the one error shape the API answers with. */
import { z } from 'zod';
import { ValidationError, type ValidationIssue } from './errors.js';

export function issuesOf(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.'),
    message: issue.message,
  }));
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
