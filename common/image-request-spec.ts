/**
 * The body of POST /v1/images, validated once at the edge: a reference
 * (host[:port]/path/name[:tag][@sha256:...], the grammar of the distribution spec's
 * reference), optional registry credentials, and an optional platform os/arch[/variant].
 * The worker's puller parses the reference again for what it means (registry, repository);
 * this only refuses what no registry could answer, with the field named.
 */
import { z } from 'zod';
import { parseWith } from './validation.js';

/** Docker's limit on a whole reference's name part is 255; a digest and a tag come on top. */
const MAX_REF = 512;
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?|\\[[0-9a-fA-F:]+\\](?::[0-9]{1,5})?';
const REF = new RegExp(`^(?:(?:${DOMAIN})/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$`);

export const imageRefSchema = z
  .string()
  .max(MAX_REF, `an image reference is at most ${MAX_REF} characters`)
  .regex(REF, 'an image reference is host[:port]/path/name[:tag][@sha256:<64 hex>] (lowercase path components)');

export const platformSchema = z
  .string()
  .regex(/^[a-z0-9_]{1,32}\/[a-z0-9_]{1,32}(?:\/[a-z0-9_]{1,32})?$/, 'a platform is os/architecture[/variant], e.g. linux/arm64/v8');

export const imagePullSchema = z.strictObject({
  ref: imageRefSchema,
  creds: z
    .strictObject({
      username: z.string().min(1, 'a username is required with creds').max(256),
      password: z.string().max(8192),
    })
    .optional(),
  platform: platformSchema.optional(),
});

export type ImagePullRequest = z.output<typeof imagePullSchema>;

export function parseImagePull(input: unknown): ImagePullRequest {
  return parseWith(imagePullSchema, input, 'image pull request');
}

/** "linux/arm64/v8" -> { os, architecture, variant }; the text was checked by platformSchema. */
export function platformOf(text: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = text.split('/') as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}
